/* Logging for a library that lives inside someone else's process: no stdio,
 * no allocation, safe from signal handlers, written with the real write(2)
 * so it never re-enters the shim. */
#ifndef RS_LOG_H
#define RS_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum rs_log_level { RS_LOG_QUIET, RS_LOG_WARN, RS_LOG_INFO, RS_LOG_DEBUG };

extern int rs_log_level;

void rs_log_init(int level, const char *path);
void rs_log_after_fork(void);
void rs_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Log a message the first time `key` (a small integer < 64) is seen. */
void rs_log_once(unsigned key, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));


/* A tiny snprintf: %s %c %d %i %u %ld %lu %lld %llu %zu %zd %x %lx %p %%.
 * Returns the number of bytes written (truncated to size-1, always
 * NUL-terminated). */
size_t rs_fmt(char *buf, size_t size, const char *fmt, va_list ap);
size_t rs_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define rs_warn(...) rs_logf(RS_LOG_WARN, __VA_ARGS__)
#define rs_info(...) rs_logf(RS_LOG_INFO, __VA_ARGS__)
#define rs_debug(...)                                                          \
	do {                                                                   \
		if (rs_log_level >= RS_LOG_DEBUG)                              \
			rs_logf(RS_LOG_DEBUG, __VA_ARGS__);                    \
	} while (0)

#endif
