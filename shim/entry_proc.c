/* Process-wide moments: exec replaces the program, so every byte the shim
 * still holds for it is delivered first; vfork is served by fork. */
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "batch.h"
#include "entry.h"
#include "stats.h"
#include "real.h"
#include "ring.h"

static void before_exec(void)
{
	if (!rs_ready() || rs_depth)
		return;
	if (rs_cfg.mode == RS_MODE_BATCH && (rs_tls_ring || rs_wb_pending_total()))
		rs_batch_flush_all(true);
	/* The new image keeps this pid: it must not find our segment. */
	rs_stats_unpublish();
}

/* exec only returns when it failed: the process goes on, and is seen again. */
static int after_exec(int ret)
{
	int saved = errno;
	if (rs_ready())
		rs_stats_republish();
	errno = saved;
	return ret;
}

RS_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	before_exec();
	return after_exec(RS_REAL(execve)(path, argv, envp));
}

RS_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		       int flags)
{
	before_exec();
	return after_exec(RS_REAL(execveat)(dirfd, path, argv, envp, flags));
}

RS_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	before_exec();
	return after_exec(RS_REAL(fexecve)(fd, argv, envp));
}

RS_EXPORT int execv(const char *path, char *const argv[])
{
	before_exec();
	return after_exec(RS_REAL(execv)(path, argv));
}

RS_EXPORT int execvp(const char *file, char *const argv[])
{
	before_exec();
	return after_exec(RS_REAL(execvp)(file, argv));
}

RS_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	before_exec();
	return after_exec(RS_REAL(execvpe)(file, argv, envp));
}

/* The execl family builds argv and calls execve/execvp inside libc, where
 * we cannot see it; collect the arguments the same way here. */
#define MAX_EXECL_ARGS 4096

static int collect_args(const char *arg0, va_list ap, const char **argv)
{
	int n = 0;
	argv[n++] = arg0;
	while (argv[n - 1]) {
		if (n == MAX_EXECL_ARGS) {
			errno = E2BIG;
			return -1;
		}
		argv[n++] = va_arg(ap, const char *);
	}
	return n;
}

RS_EXPORT int execl(const char *path, const char *arg, ...)
{
	const char *argv[MAX_EXECL_ARGS];
	va_list ap;
	va_start(ap, arg);
	int n = collect_args(arg, ap, argv);
	va_end(ap);
	if (n < 0)
		return -1;
	return execv(path, (char *const *)argv);
}

RS_EXPORT int execlp(const char *file, const char *arg, ...)
{
	const char *argv[MAX_EXECL_ARGS];
	va_list ap;
	va_start(ap, arg);
	int n = collect_args(arg, ap, argv);
	va_end(ap);
	if (n < 0)
		return -1;
	return execvp(file, (char *const *)argv);
}

RS_EXPORT int execle(const char *path, const char *arg, ...)
{
	const char *argv[MAX_EXECL_ARGS];
	va_list ap;
	va_start(ap, arg);
	int n = collect_args(arg, ap, argv);
	char *const *envp = n < 0 ? NULL : va_arg(ap, char *const *);
	va_end(ap);
	if (n < 0)
		return -1;
	return execve(path, (char *const *)argv, envp);
}

/* _exit() skips atexit and destructors: deliver what is queued, leave the
 * counters line (forked workers often end this way) and remove the
 * segment here. */
static void before_exit(void)
{
	if (!rs_ready() || rs_depth)
		return;
	if (rs_cfg.mode == RS_MODE_BATCH && (rs_tls_ring || rs_wb_pending_total()))
		rs_batch_flush_all(true);
	rs_stats_report_exit();
	rs_stats_unpublish();
}

RS_EXPORT void _exit(int status)
{
	before_exit();
	RS_REAL(_exit)(status);
	__builtin_unreachable();
}

RS_EXPORT void _Exit(int status)
{
	before_exit();
	RS_REAL(_exit)(status);
	__builtin_unreachable();
}

/* vfork() shares the parent's memory: a vfork child calling close() or
 * dup2() through the shim would rewrite the parent's fd table and use the
 * parent's ring. fork() gives the child its own copy, which is all a
 * conforming vfork child may rely on anyway. */
RS_EXPORT pid_t vfork(void)
{
	return fork();
}

RS_EXPORT pid_t __vfork(void) RS_ALIAS(vfork);
