// An invariant check for fuzz targets: prints what broke and aborts, which libFuzzer reports as a
// crash (with the input saved) and which fails the corpus regression test.
#pragma once

#include <cstdio>
#include <cstdlib>

#define BEACON_FUZZ_CHECK(cond, what)                                                           \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s (%s)\n", __FILE__, __LINE__, \
                         what, #cond);                                                          \
            std::abort();                                                                       \
        }                                                                                       \
    } while (0)
