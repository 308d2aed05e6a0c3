// Functions compiled for AVX-512 (x86-64-v4), AVX2 (v3) and baseline x86-64 and picked when the
// program loads (GCC's target_clones), so one binary runs everywhere at full width. Under
// ThreadSanitizer the load-time resolvers would run instrumented code before its runtime exists
// (a crash at start), so that build keeps the baseline version only; so does clang (the fuzzers'
// build), whose clones of a function that grows a std::vector link against an iterator it never
// emits.
#pragma once

#if defined(__SANITIZE_THREAD__) || defined(__clang__)
#define ZEPHYR_CLONES_V4_V3
#define ZEPHYR_CLONES_V3
#else
#define ZEPHYR_CLONES_V4_V3 __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define ZEPHYR_CLONES_V3 __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
