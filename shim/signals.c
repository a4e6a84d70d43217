#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "common.h"
#include "init.h"
#include "real.h"
#include "signals.h"
#include "stats.h"

RS_TLS volatile struct rs_sig_tls rs_sig;

/* What the program installed, per signal. `handler` is what it passed
 * (sa_handler or sa_sigaction); NULL means no trampoline is installed.
 * SIGSEGV and SIGBUS always keep the trampoline (rs_safe_copy needs it), so
 * for them SIG_DFL and SIG_IGN are recorded here too. */
struct user_action {
	void *handler;
	int flags;
};

static RS_TLS sigjmp_buf *fault_guard;
static RS_TLS sigset_t fault_mask;

static bool is_fault_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS;
}

/* glibc sets SA_RESTORER itself and does not export the flag. */
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static struct user_action actions[_NSIG];
static pthread_mutex_t actions_lock = PTHREAD_MUTEX_INITIALIZER;
/* Signals for which signal() must not ask for SA_RESTART (siginterrupt). */
static sigset_t interrupting;

static bool is_handler_ptr(void *h)
{
	return h != (void *)SIG_DFL && h != (void *)SIG_IGN;
}

static bool wrappable(int sig)
{
	return sig > 0 && sig < _NSIG && sig != SIGKILL && sig != SIGSTOP &&
	       !(sig >= 32 && sig < SIGRTMIN); /* glibc's reserved signals */
}

static void set_kernel_default(int sig)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	RS_REAL(sigaction)(sig, &dfl, NULL);
}

/* SIGSEGV/SIGBUS while the program's disposition is SIG_DFL or SIG_IGN:
 * do what the kernel would have done without our handler in the way. */
static void fault_default(int sig, siginfo_t *info, void *handler)
{
	bool sent = info->si_code <= 0; /* kill()/sigqueue(), not a fault */
	if (sent && handler == (void *)SIG_IGN)
		return;
	set_kernel_default(sig);
	/* A real fault re-executes and now takes the default action; a sent
	 * signal has to be sent again. */
	if (sent)
		raise(sig);
}

static void trampoline(int sig, siginfo_t *info, void *uc)
{
	if (is_fault_signal(sig) && fault_guard) {
		fault_mask = ((ucontext_t *)uc)->uc_sigmask;
		siglongjmp(*fault_guard, 1);
	}
	void *handler = __atomic_load_n(&actions[sig].handler, __ATOMIC_ACQUIRE);
	int flags = __atomic_load_n(&actions[sig].flags, __ATOMIC_ACQUIRE);
	if (is_fault_signal(sig) && (!handler || !is_handler_ptr(handler))) {
		fault_default(sig, info, handler);
		return;
	}

	rs_sig.delivered++;
	if (!(flags & SA_RESTART))
		rs_sig.norestart++;
	if (sig == SIGPIPE)
		rs_sig.sigpipe++;
	/* The kernel has already reset the disposition: mirror it. */
	if (flags & SA_RESETHAND)
		__atomic_store_n(&actions[sig].handler, NULL, __ATOMIC_RELEASE);
	if (!handler || handler == (void *)SIG_DFL || handler == (void *)SIG_IGN)
		return;
	if (flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))handler)(sig, info, uc);
	else
		((void (*)(int))handler)(sig);
	/* The return restores the interrupted mask, whatever the handler set
	 * (shim/sigmask.c). */
	rs_sig.returned++;
}


/* from_user: the program's call, which glibc completes with SA_RESTORER;
 * otherwise an action read back from the kernel at start-up. */
static int do_sigaction_as(int sig, const struct sigaction *act, struct sigaction *old,
			   bool from_user)
{
	if (!wrappable(sig))
		return RS_REAL(sigaction)(sig, act, old);

	struct sigaction kact, kold;
	struct user_action prev, next = { NULL, 0 };
	if (act) {
		kact = *act;
		void *h = (act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction
						       : (void *)act->sa_handler;
		if (is_handler_ptr(h) || is_fault_signal(sig)) {
			next.handler = h;
			/* Kept as the kernel reports flags back to the program. */
			next.flags = act->sa_flags | (from_user ? SA_RESTORER : 0);
			kact.sa_sigaction = trampoline;
			kact.sa_flags |= SA_SIGINFO;
			if (!is_handler_ptr(h))
				kact.sa_flags &= ~SA_RESETHAND;
		}
	}
	pthread_mutex_lock(&actions_lock);
	prev = actions[sig];
	int ret = RS_REAL(sigaction)(sig, act ? &kact : NULL, &kold);
	int err = errno;
	if (ret == 0 && act) {
		/* Publish flags before the handler so the trampoline never
		 * pairs a new handler with stale flags. */
		__atomic_store_n(&actions[sig].flags, next.flags, __ATOMIC_RELEASE);
		__atomic_store_n(&actions[sig].handler, next.handler, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&actions_lock);
	if (ret == 0 && old) {
		*old = kold;
		/* Our trampoline is installed, or the kernel reset it after an
		 * SA_RESETHAND delivery (keeping the flags, ours included):
		 * either way, report what the program set. */
		bool reset = kold.sa_handler == SIG_DFL && !prev.handler &&
			     (prev.flags & SA_RESETHAND);
		if (kold.sa_sigaction == trampoline || reset) {
			old->sa_flags = prev.flags;
			if (!is_handler_ptr(prev.handler))
				old->sa_handler = (void (*)(int))prev.handler;
			else if (prev.flags & SA_SIGINFO)
				old->sa_sigaction = (void (*)(int, siginfo_t *, void *))prev.handler;
			else
				old->sa_handler = (void (*)(int))prev.handler;
		}
	}
	errno = err;
	return ret;
}

static int do_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return do_sigaction_as(sig, act, old, true);
}

/* Calls that went straight to libc because start-up had not begun, still
 * running. rs_signals_init waits for them so that it sees what they
 * installed (and wraps it); seq_cst on both sides makes this a Dekker pair:
 * either the call sees the state past NEW and takes the wrapped path, or
 * start-up sees it counted here. */
static int early_in_flight;
/* ... of which on this thread: a handler that interrupts one of them and
 * starts the shim must not wait for its own thread. (Static TLS exists on
 * every thread before any code runs there, the main thread's before
 * _dl_init.) */
static RS_TLS int early_in_flight_here;

static int wrapped_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int saved = errno;
	int ret = do_sigaction(sig, act, old);
	if (ret == 0)
		errno = saved;
	return ret;
}

/* The sanitizer runtimes install their own handlers through the first
 * sigaction after them in the lookup order -- this one -- while they start,
 * before our constructor and before their per-thread state exists, when no
 * instrumented code may run (TSan crashed in __tsan_func_entry here). So
 * this entry is not instrumented, and until start-up begins it passes the
 * call to libc untouched; rs_signals_init then wraps whatever it left
 * installed, as it does handlers inherited through exec. */
RS_EXPORT RS_NO_SANITIZE int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	early_in_flight_here++;
	__atomic_fetch_add(&early_in_flight, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&rs_state, __ATOMIC_SEQ_CST) == RS_STATE_NEW) {
		int ret = RS_REAL(sigaction)(sig, act, old);
		__atomic_fetch_sub(&early_in_flight, 1, __ATOMIC_RELEASE);
		early_in_flight_here--;
		return ret;
	}
	__atomic_fetch_sub(&early_in_flight, 1, __ATOMIC_RELAXED);
	early_in_flight_here--;
	return wrapped_sigaction(sig, act, old);
}

/* Not RS_ALIAS: its copy() of the no_sanitize attribute makes gcc 12 crash
 * under -fsanitize=thread. */
RS_EXPORT RS_NO_SANITIZE int __sigaction(int sig, const struct sigaction *act,
					 struct sigaction *old)
{
	return sigaction(sig, act, old);
}

/* glibc's signal() has BSD semantics: the signal is blocked while its
 * handler runs and calls are restarted unless siginterrupt() said not to. */
static sighandler_t install_simple(int sig, sighandler_t handler, int flags, bool block_self)
{
	struct sigaction act, old;
	if (handler == SIG_ERR || sig <= 0 || sig >= _NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	if (block_self)
		sigaddset(&act.sa_mask, sig);
	act.sa_flags = flags;
	if (do_sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

RS_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	int saved = errno;
	int flags = (sig > 0 && sig < _NSIG && sigismember(&interrupting, sig)) ? 0 : SA_RESTART;
	sighandler_t r = install_simple(sig, handler, flags, true);
	if (r != SIG_ERR)
		errno = saved;
	return r;
}

RS_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
	RS_ALIAS(signal);
RS_EXPORT sighandler_t ssignal(int sig, sighandler_t handler)
	RS_ALIAS(signal);

RS_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	int saved = errno;
	sighandler_t r = install_simple(sig, handler, SA_RESETHAND | SA_NODEFER, false);
	if (r != SIG_ERR)
		errno = saved;
	return r;
}

RS_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
	RS_ALIAS(sysv_signal);

RS_EXPORT int siginterrupt(int sig, int flag)
{
	struct sigaction act;
	int saved = errno;
	if (sig <= 0 || sig >= _NSIG) {
		errno = EINVAL;
		return -1;
	}
	if (do_sigaction(sig, NULL, &act) < 0)
		return -1;
	if (flag) {
		sigaddset(&interrupting, sig);
		act.sa_flags &= ~SA_RESTART;
	} else {
		sigdelset(&interrupting, sig);
		act.sa_flags |= SA_RESTART;
	}
	if (do_sigaction(sig, &act, NULL) < 0)
		return -1;
	errno = saved;
	return 0;
}

/* System V sigset(): SIG_HOLD blocks the signal; anything else installs the
 * disposition (no SA_RESTART) and unblocks it. Returns SIG_HOLD if the
 * signal was blocked before. */
RS_EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
	sigset_t set, oldmask;
	struct sigaction act, old;
	int saved = errno;
	if (sig <= 0 || sig >= _NSIG || disp == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (disp == SIG_HOLD) {
		if (sigprocmask(SIG_BLOCK, &set, &oldmask) < 0 || do_sigaction(sig, NULL, &old) < 0)
			return SIG_ERR;
		errno = saved;
		return sigismember(&oldmask, sig) ? SIG_HOLD : old.sa_handler;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = disp;
	sigemptyset(&act.sa_mask);
	if (do_sigaction(sig, &act, &old) < 0 ||
	    sigprocmask(SIG_UNBLOCK, &set, &oldmask) < 0)
		return SIG_ERR;
	errno = saved;
	return sigismember(&oldmask, sig) ? SIG_HOLD : old.sa_handler;
}

void rs_signals_init(void)
{
	/* rs_state is past NEW: no call can start a pass-through now. */
	while (__atomic_load_n(&early_in_flight, __ATOMIC_ACQUIRE) > early_in_flight_here)
		sched_yield();
	for (int sig = 1; sig < _NSIG; sig++) {
		struct sigaction cur;
		if (!wrappable(sig) || RS_REAL(sigaction)(sig, NULL, &cur) != 0)
			continue;
		void *h = (cur.sa_flags & SA_SIGINFO) ? (void *)cur.sa_sigaction
						      : (void *)cur.sa_handler;
		if (cur.sa_sigaction == trampoline)
			continue;
		if (is_handler_ptr(h) || (is_fault_signal(sig) && h == (void *)SIG_DFL))
			do_sigaction_as(sig, &cur, NULL, false);
	}
}

/* ASan checks every byte memcpy touches and would report the very fault we
 * are guarding against; copy by hand in that build. */
#if defined(__SANITIZE_ADDRESS__)
__attribute__((no_sanitize("address", "undefined"), noinline)) static void guarded_copy(void *dst,
									const void *src,
									size_t n)
{
	volatile char *d = dst;
	const volatile char *s = src;
	while (n--)
		*d++ = *s++;
}
#else
__attribute__((no_sanitize("undefined"), noinline)) static void guarded_copy(void *dst,
									   const void *src,
									   size_t n)
{
	memcpy(dst, src, n);
}
#endif

int rs_safe_copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf env;
	sigjmp_buf *volatile prev = fault_guard;
	if (sigsetjmp(env, 0)) {
		fault_guard = prev;
		pthread_sigmask(SIG_SETMASK, &fault_mask, NULL);
		return -EFAULT;
	}
	fault_guard = &env;
	guarded_copy(dst, src, n);
	fault_guard = prev;
	return 0;
}

void rs_signals_after_fork_child(void)
{
	pthread_mutex_init(&actions_lock, NULL);
}

void rs_raise_sigpipe(const struct rs_sig_mark *m)
{
	if (m && rs_sig.sigpipe != m->sigpipe)
		return;
	int saved = errno;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	/* What send_sig(SIGPIPE, current, 0) produces: SI_USER from
	 * ourselves, directed at this thread. */
	si.si_signo = SIGPIPE;
	si.si_code = SI_USER;
	si.si_pid = getpid();
	si.si_uid = getuid();
	syscall(SYS_rt_tgsigqueueinfo, si.si_pid, (pid_t)syscall(SYS_gettid), SIGPIPE, &si);
	rs_count(RS_C_sigpipe_raised);
	errno = saved;
}
