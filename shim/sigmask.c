#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>

#include "common.h"
#include "real.h"
#include "signals.h"
#include "sigmask.h"

/* The mask as last learnt, valid while `known` holds and no handler has
 * started or returned on this thread since (the `delivered` and `returned`
 * marks): a handler runs under its own mask, may change it, and its return
 * puts the interrupted one back, all without us. Every
 * libc call that can change a thread's mask outside a handler is
 * interposed below to forget it. Not seen: a raw rt_sigprocmask syscall
 * (docs/semantics.md, "Known limits"). */
static RS_TLS struct {
	bool known;
	unsigned long delivered, returned;
	sigset_t mask;
} cached;

static inline void forget(void)
{
	cached.known = false;
}

bool rs_sigmask_current(sigset_t *out)
{
	if (cached.known && cached.delivered == rs_sig.delivered &&
	    cached.returned == rs_sig.returned) {
		*out = cached.mask;
		return true;
	}
	/* Marks first: a handler from here on makes the next call ask again. */
	unsigned long delivered = rs_sig.delivered, returned = rs_sig.returned;
	sigset_t cur;
	if (RS_REAL(pthread_sigmask)(SIG_BLOCK, NULL, &cur) != 0)
		return false;
	cached.mask = cur;
	cached.delivered = delivered;
	cached.returned = returned;
	cached.known = true;
	*out = cur;
	return true;
}

bool rs_sigmask_only_unblocks(const sigset_t *wait_mask, const sigset_t *cur)
{
	/* The kernel's sigset is the first 64 bits of glibc's (signal n is
	 * bit n-1); SIGKILL and SIGSTOP can never be blocked, whatever a mask
	 * says. One word test on the sleep path instead of 64 calls. */
	unsigned long never = (1ul << (SIGKILL - 1)) | (1ul << (SIGSTOP - 1));
	return !(wait_mask->__val[0] & ~cur->__val[0] & ~never);
}

RS_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	int r = RS_REAL(pthread_sigmask)(how, set, old);
	forget();
	return r;
}

RS_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	int r = RS_REAL(sigprocmask)(how, set, old);
	forget();
	return r;
}

/* The BSD and System V calls change the mask inside libc, where our
 * sigprocmask is not on the way. */
RS_EXPORT int sigblock(int mask)
{
	int r = RS_REAL(sigblock)(mask);
	forget();
	return r;
}

RS_EXPORT int sigsetmask(int mask)
{
	int r = RS_REAL(sigsetmask)(mask);
	forget();
	return r;
}

RS_EXPORT int sighold(int sig)
{
	int r = RS_REAL(sighold)(sig);
	forget();
	return r;
}

RS_EXPORT int sigrelse(int sig)
{
	int r = RS_REAL(sigrelse)(sig);
	forget();
	return r;
}

/* A jump restores the mask saved by sigsetjmp; a context switch installs
 * the context's. Forgotten before (the jump does not come back) and, for
 * swapcontext, after (it comes back under whatever mask was switched to). */
RS_EXPORT void siglongjmp(sigjmp_buf env, int val)
{
	forget();
	RS_REAL(siglongjmp)(env, val);
	__builtin_unreachable();
}

RS_EXPORT void longjmp(jmp_buf env, int val)
{
	forget();
	RS_REAL(longjmp)(env, val);
	__builtin_unreachable();
}

RS_EXPORT void __longjmp_chk(jmp_buf env, int val)
{
	forget();
	RS_REAL(__longjmp_chk)(env, val);
	__builtin_unreachable();
}

RS_EXPORT int setcontext(const ucontext_t *ucp)
{
	forget();
	return RS_REAL(setcontext)(ucp);
}

RS_EXPORT int swapcontext(ucontext_t *oucp, const ucontext_t *ucp)
{
	forget();
	int r = RS_REAL(swapcontext)(oucp, ucp);
	forget();
	return r;
}
