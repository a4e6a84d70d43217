/* Calls that put a thread to sleep outside the shim. Write-behind holds a
 * thread's queued bytes until its next io_uring_enter; a thread that goes
 * to sleep here (a condition variable, a child, a timer) would hold them
 * for as long as it sleeps, and the peer might be waiting for exactly
 * those bytes. So each of these first hands the queue to the kernel. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "entry.h"
#include "ring.h"

static void flush_before_sleep(void)
{
	struct rs_ring *r = rs_tls_ring;
	if (!r || rs_cfg.mode != RS_MODE_BATCH || rs_depth ||
	    __atomic_load_n(&rs_state, __ATOMIC_ACQUIRE) != RS_STATE_READY)
		return;
	int saved = errno;
	/* The SQ is looked at under the lock: another thread may be queueing
	 * on this ring (a cancel for an fd it adopts, say). A sleep can
	 * afford the uncontended lock. */
	rs_ring_lock(r);
	if (r->uring.sq.sqe_tail != r->uring.sq.sqe_head) {
		rs_ring_poke(r);
		rs_ring_reap(r);
	}
	if (r->sqpoll)
		rs_wb_settle(r);
	rs_ring_unlock(r);
	errno = saved;
}

/* The real function, resolved on first use; pthread_cond_* carry symbol
 * versions, and binaries built this century use GLIBC_2.3.2's. */
#define REAL_LOOKUP(name, lookup)                                              \
	static __typeof__(&name) real_##name;                                  \
	if (!__atomic_load_n(&real_##name, __ATOMIC_ACQUIRE)) {                \
		__typeof__(&name) fn = (__typeof__(&name))(lookup);            \
		__atomic_store_n(&real_##name, fn, __ATOMIC_RELEASE);          \
	}
#define REAL_FN(name) REAL_LOOKUP(name, dlsym(RTLD_NEXT, #name))
#define REAL_FNV(name, version) REAL_LOOKUP(name, dlvsym(RTLD_NEXT, #name, version))

RS_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	REAL_FN(nanosleep);
	flush_before_sleep();
	return real_nanosleep(req, rem);
}

RS_EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
			      struct timespec *rem)
{
	REAL_FN(clock_nanosleep);
	flush_before_sleep();
	return real_clock_nanosleep(clk, flags, req, rem);
}

RS_EXPORT unsigned int sleep(unsigned int secs)
{
	REAL_FN(sleep);
	flush_before_sleep();
	return real_sleep(secs);
}

RS_EXPORT int usleep(useconds_t usec)
{
	REAL_FN(usleep);
	flush_before_sleep();
	return real_usleep(usec);
}

RS_EXPORT int pause(void)
{
	REAL_FN(pause);
	flush_before_sleep();
	return real_pause();
}

RS_EXPORT int sigsuspend(const sigset_t *mask)
{
	REAL_FN(sigsuspend);
	flush_before_sleep();
	return real_sigsuspend(mask);
}

RS_EXPORT int sigwait(const sigset_t *set, int *sig)
{
	REAL_FN(sigwait);
	flush_before_sleep();
	return real_sigwait(set, sig);
}

RS_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	REAL_FN(sigwaitinfo);
	flush_before_sleep();
	return real_sigwaitinfo(set, info);
}

RS_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts)
{
	REAL_FN(sigtimedwait);
	flush_before_sleep();
	return real_sigtimedwait(set, info, ts);
}

RS_EXPORT pid_t wait(int *status)
{
	REAL_FN(wait);
	flush_before_sleep();
	return real_wait(status);
}

RS_EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
	REAL_FN(waitpid);
	if (!(options & WNOHANG))
		flush_before_sleep();
	return real_waitpid(pid, status, options);
}

RS_EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
	REAL_FN(wait4);
	if (!(options & WNOHANG))
		flush_before_sleep();
	return real_wait4(pid, status, options, ru);
}

RS_EXPORT int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
	REAL_FN(waitid);
	if (!(options & WNOHANG))
		flush_before_sleep();
	return real_waitid(type, id, info, options);
}

RS_EXPORT int pthread_join(pthread_t t, void **ret)
{
	REAL_FN(pthread_join);
	flush_before_sleep();
	return real_pthread_join(t, ret);
}

RS_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	REAL_FNV(pthread_cond_wait, "GLIBC_2.3.2");
	flush_before_sleep();
	return real_pthread_cond_wait(c, m);
}

RS_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
				     const struct timespec *ts)
{
	REAL_FNV(pthread_cond_timedwait, "GLIBC_2.3.2");
	flush_before_sleep();
	return real_pthread_cond_timedwait(c, m, ts);
}

RS_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
				     const struct timespec *ts)
{
	REAL_FN(pthread_cond_clockwait);
	flush_before_sleep();
	return real_pthread_cond_clockwait(c, m, clk, ts);
}

RS_EXPORT int sem_wait(sem_t *s)
{
	REAL_FN(sem_wait);
	flush_before_sleep();
	return real_sem_wait(s);
}

RS_EXPORT int sem_timedwait(sem_t *s, const struct timespec *ts)
{
	REAL_FN(sem_timedwait);
	flush_before_sleep();
	return real_sem_timedwait(s, ts);
}

RS_EXPORT int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *ts)
{
	REAL_FN(sem_clockwait);
	flush_before_sleep();
	return real_sem_clockwait(s, clk, ts);
}
