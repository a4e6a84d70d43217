/* Signal bookkeeping the kernel does for real system calls and that an
 * io_uring wait cannot: io_uring_enter returns EINTR for every caught
 * signal, SA_RESTART or not. The shim installs a trampoline in front of each
 * handler so it knows, per thread, whether a handler ran during a wait and
 * whether that handler asked for restart. The program still sees its own
 * handlers and flags in sigaction()'s old-action results. */
#ifndef RS_SIGNALS_H
#define RS_SIGNALS_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

struct rs_sig_tls {
	unsigned long delivered; /* handlers run on this thread */
	unsigned long norestart; /* ... of which without SA_RESTART */
	unsigned long sigpipe;	 /* SIGPIPE handlers run on this thread */
	unsigned long returned;	 /* handlers that returned (mask put back) */
};

extern RS_TLS volatile struct rs_sig_tls rs_sig;

struct rs_sig_mark {
	unsigned long delivered, norestart, sigpipe;
};

static inline struct rs_sig_mark rs_sig_mark(void)
{
	struct rs_sig_mark m = { rs_sig.delivered, rs_sig.norestart, rs_sig.sigpipe };
	return m;
}

/* After a wait was cut short: should the call fail with EINTR (true), or
 * carry on waiting as the kernel's restart would (false)? `never_restart`
 * is for calls the kernel never restarts (epoll_wait, poll, select, socket
 * calls with a timeout set). */
static inline bool rs_sig_interrupted(const struct rs_sig_mark *m, bool never_restart)
{
	if (rs_sig.norestart != m->norestart)
		return true;
	return never_restart && rs_sig.delivered != m->delivered;
}

/* Wrap the handlers installed before the shim started. */
void rs_signals_init(void);
void rs_signals_after_fork_child(void);

/* Raise SIGPIPE on the calling thread the way the kernel does for a write to
 * a broken pipe or socket, unless a SIGPIPE was already delivered since `m`
 * (the kernel raised it itself). */
void rs_raise_sigpipe(const struct rs_sig_mark *m);

/* Copy between program-supplied pointers without crashing on a bad one:
 * -EFAULT, as the kernel would answer, instead of SIGSEGV in the shim. */
int rs_safe_copy(void *dst, const void *src, size_t n);

#endif
