/* Integration-test helpers. A test program performs a fixed script of calls
 * and prints one line per observable result: return value, errno name, and
 * the bytes moved. tests/run runs it natively and under the shim and diffs
 * the two transcripts, so anything the shim changes shows up as a diff.
 *
 * Lines starting with "#expect " are instructions to the runner about the
 * shim's counters (RINGSHIM_STATS), e.g. "#expect served_ring>0"; they are
 * printed identically in every run. Lines starting with "#skip " make the
 * runner report the test as skipped (exit 77 does the same). */
#ifndef RS_TEST_CHECK_H
#define RS_TEST_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline const char *t_errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

/* Print "label: ret=R" or "label: ret=-1 errno=ENAME". errno is read before
 * anything else can change it. */
#define T(label, expr)                                                         \
	({                                                                     \
		errno = 0;                                                     \
		long t_r_ = (long)(expr);                                      \
		int t_e_ = errno;                                              \
		if (t_r_ < 0)                                                  \
			printf("%s: ret=%ld errno=%s\n", label, t_r_, t_errname(t_e_)); \
		else                                                           \
			printf("%s: ret=%ld\n", label, t_r_);                  \
		fflush(stdout);                                                \
		errno = t_e_;                                                  \
		t_r_;                                                          \
	})

/* Like T, and also show that errno was left alone on success: it is set to
 * a sentinel first and must still hold it afterwards. */
#define TE(label, expr)                                                        \
	({                                                                     \
		errno = EDOM;                                                  \
		long t_r_ = (long)(expr);                                      \
		int t_e_ = errno;                                              \
		if (t_r_ < 0)                                                  \
			printf("%s: ret=%ld errno=%s\n", label, t_r_, t_errname(t_e_)); \
		else                                                           \
			printf("%s: ret=%ld errno-kept=%s\n", label, t_r_,     \
			       t_e_ == EDOM ? "yes" : t_errname(t_e_));        \
		fflush(stdout);                                                \
		errno = t_e_;                                                  \
		t_r_;                                                          \
	})

static inline void t_bytes(const char *label, const void *buf, long n)
{
	const unsigned char *p = buf;
	printf("%s: %ld bytes \"", label, n);
	for (long i = 0; i < n && i < 64; i++)
		printf(p[i] >= 32 && p[i] < 127 && p[i] != '"' ? "%c" : "\\x%02x", p[i]);
	if (n > 64) {
		uint64_t h = 1469598103934665603ULL;
		for (long i = 0; i < n; i++)
			h = (h ^ p[i]) * 1099511628211ULL;
		printf("...\" fnv=%016llx\n", (unsigned long long)h);
	} else {
		printf("\"\n");
	}
	fflush(stdout);
}

static inline void t_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static inline void t_expect(const char *what)
{
	printf("#expect %s\n", what);
	fflush(stdout);
}

static inline void t_die(const char *what)
{
	fprintf(stderr, "test setup failed: %s: %s\n", what, strerror(errno));
	exit(99);
}

#endif
