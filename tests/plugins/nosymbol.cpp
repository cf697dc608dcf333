// A shared module without the factory symbol: the agent must refuse it.
extern "C" __attribute__((visibility("default"))) int campus_something_else() { return 42; }
