#include <dlfcn.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "common.h"
#include "real.h"

struct rs_real_table rs_real;

/* A name we cannot find (a libc too old for epoll_pwait2, say) resolves to a
 * function that fails with ENOSYS, as the missing system call would. */
static long rs_real_missing(void)
{
	errno = ENOSYS;
	return -1;
}

/* Not instrumented: a sanitizer runtime reaches it through an interposer
 * (sigaction) while it starts, before instrumented code may run. dlsym of a
 * name that exists does not allocate in glibc >= 2.34; a missing one sets
 * up the dlerror buffer with malloc, which is why the early callers only
 * ask for names every glibc has. */
RS_NO_SANITIZE void *rs_real_resolve_one(void **slot, const char *name)
{
	void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (fn)
		return fn;
	fn = dlsym(RTLD_NEXT, name);
	if (!fn)
		fn = (void *)rs_real_missing;
	__atomic_store_n(slot, fn, __ATOMIC_RELEASE);
	return fn;
}

void rs_real_resolve_all(void)
{
#define RS_RESOLVE(ret, name, params) \
	rs_real_resolve_one((void **)&rs_real.name, #name);
	RS_REAL_FUNCS(RS_RESOLVE)
#undef RS_RESOLVE
}

/* For the interposers a sanitizer runtime reaches before it is set up: no
 * instrumentation, and the raw system call in place of dlsym. */
static RS_NO_SANITIZE int early_setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
	return (int)syscall(SYS_setrlimit, res, rl);
}

static RS_NO_SANITIZE int early_prlimit(pid_t pid, __rlimit_resource_t res,
					const struct rlimit *nrl, struct rlimit *orl)
{
	return (int)syscall(SYS_prlimit64, pid, res, nrl, orl);
}

RS_NO_SANITIZE int (*rs_real_early_setrlimit(void))(__rlimit_resource_t, const struct rlimit *)
{
	return early_setrlimit;
}

RS_NO_SANITIZE int (*rs_real_early_prlimit(void))(pid_t, __rlimit_resource_t,
						   const struct rlimit *, struct rlimit *)
{
	return early_prlimit;
}
