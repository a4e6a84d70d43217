/* Integration-test helpers. A test program performs a fixed script of calls
 * and prints one line per observable result: return value, errno name, and
 * the bytes moved. tests/run runs it natively and under the shim and diffs
 * the two transcripts, so anything the shim changes shows up as a diff.
 *
 * Lines starting with "~ " hold values batch mode may change by design (how
 * many bytes a full stream socket takes under write-behind): tests/run
 * compares them natively and in strict mode only. See docs/semantics.md.
 *
 * Lines starting with "#expect " are instructions to the runner about the
 * shim's counters (RINGSHIM_STATS), e.g. "#expect served_ring>0"; they are
 * printed identically in every run. "#expect batch,sqpoll:pt_fds_filter==5"
 * holds only in the modes listed. Lines starting with "#skip " make the
 * runner report the test as skipped (exit 77 does the same). */
#ifndef RS_TEST_CHECK_H
#define RS_TEST_CHECK_H

#include <errno.h>
#include <sched.h>
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

/* Under SQPOLL (RINGSHIM_SQPOLL=1 and no RINGSHIM_SQPOLL_CPU yet), run this
 * program again pinned to CPU `cpu`, with the SQ thread on `sq_cpu`: the
 * same CPU to make it wait for the program, another to let it keep up.
 * Returns where that does not apply (no SQPOLL, too few CPUs). */
static inline void t_sqpoll_pin(char **argv, int cpu, int sq_cpu)
{
	const char *sq = getenv("RINGSHIM_SQPOLL");
	if (!sq || strcmp(sq, "1") || getenv("RINGSHIM_SQPOLL_CPU"))
		return;
	if (sysconf(_SC_NPROCESSORS_ONLN) <= (cpu > sq_cpu ? cpu : sq_cpu))
		return;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		return;
	char v[16];
	snprintf(v, sizeof(v), "%d", sq_cpu);
	setenv("RINGSHIM_SQPOLL_CPU", v, 1);
	execv("/proc/self/exe", argv);
	t_die("re-exec");
}

/* ---- helpers for tests that need another process or thread to act while
 * the test is blocked in a call (added for the semantics tests) ---------- */
#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

/* State letter of /proc/PID/task/TID/stat (TID 0: the process's main
 * thread), or 0 if it cannot be read. Uses raw read() on a /proc file, which
 * every libc and the shim pass straight through. */
static inline int t_task_stat_open(pid_t pid, pid_t tid)
{
	char path[64];
	if (tid > 0)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static inline char t_task_state_of(int fd)
{
	char buf[512];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

static inline char t_task_state(pid_t pid, pid_t tid)
{
	int fd = t_task_stat_open(pid, tid);
	if (fd < 0)
		return 0;
	char s = t_task_state_of(fd);
	close(fd);
	return s;
}

static inline void t_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wait until the task has been asleep ('S') for 5 checks in a row, 10 ms
 * apart, then 20 ms more: it is then blocked in the call under test, not
 * passing through a short sleep on the way. Gives up after ~20 s (the test
 * then fails visibly rather than hanging). Only the caller's timing
 * depends on this, never the transcript. */
/* The stat file is opened once, and kept at a high number: a number taken
 * and given back on every look would race with the watched thread's own
 * (a blocking accept takes the lowest free number before it sleeps). */
static inline void t_wait_blocked_task(pid_t pid, pid_t tid)
{
	t_sleep_ms(20);
	int fd = t_task_stat_open(pid, tid);
	if (fd >= 0) {
		int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
		if (high >= 0) {
			close(fd);
			fd = high;
		}
	}
	int in_a_row = 0;
	for (int i = 0; fd >= 0 && i < 2000 && in_a_row < 5; i++) {
		char s = t_task_state_of(fd);
		in_a_row = s == 'S' ? in_a_row + 1 : 0;
		t_sleep_ms(10);
	}
	if (fd >= 0)
		close(fd);
	t_sleep_ms(20);
}

static inline void t_wait_blocked(pid_t pid)
{
	t_wait_blocked_task(pid, 0);
}

/* FNV-1a over a buffer, continuing from `h` (start with T_FNV_INIT). */
#define T_FNV_INIT 1469598103934665603ULL
static inline uint64_t t_fnv(uint64_t h, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

/* "exit N" / "signal NAME" for a waitpid() status. */
static inline const char *t_status(int status)
{
	static char buf[64];
	if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "signal %s", sigabbrev_np(WTERMSIG(status)) ?: "?");
	else
		snprintf(buf, sizeof(buf), "status 0x%x", status);
	return buf;
}

#endif
