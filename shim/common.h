/* Shared macros for the shim. Internal functions return -errno; only the
 * interposed entry points (entry_*.c) touch errno. */
#ifndef RS_COMMON_H
#define RS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define RS_EXPORT __attribute__((visibility("default")))
/* A second exported name for an interposer (read -> __read, pread -> pread64). */
#define RS_ALIAS(target) __attribute__((alias(#target), copy(target)))
/* For interposers a sanitizer runtime calls while it starts (setrlimit):
 * instrumented code must not run before its shadow memory exists. */
#define RS_NO_SANITIZE __attribute__((no_sanitize("address", "undefined", "thread")))
#define RS_TLS __thread __attribute__((tls_model("initial-exec")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define RS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define RS_CACHELINE 64

#endif
