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

/* TSan models an fd number as a memory location that fd-creating calls and
 * close() write. It never sees io_uring_setup make a ring's fd, nor an
 * accept or close done through a ring, so a later call on such a number
 * looks like a race with whichever thread TSan last saw use it. Calls on
 * numbers the ring has just given us (no one else can hold them) go
 * between these, unseen. */
#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define RS_FRESH_FD_BEGIN() AnnotateIgnoreWritesBegin(__FILE__, __LINE__)
#define RS_FRESH_FD_END() AnnotateIgnoreWritesEnd(__FILE__, __LINE__)
#else
#define RS_FRESH_FD_BEGIN() ((void)0)
#define RS_FRESH_FD_END() ((void)0)
#endif

#endif
