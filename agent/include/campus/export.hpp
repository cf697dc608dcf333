// What libcampus-core.so exports: the plugin API in agent/include/campus/ and nothing else.
// The library is built with -fvisibility=hidden; each declaration a plugin (or the daemon, or
// the county center) calls across the library boundary is marked CAMPUS_API. The daemon's own
// parts (agent/src/core/) are a static library linked into the programs that run them.
#pragma once

#define CAMPUS_API __attribute__((visibility("default")))
