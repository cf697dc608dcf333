// campus-agent entry point (being written: see issue 2).
#include "campus/plugin.hpp"
int main() { return 0; }
