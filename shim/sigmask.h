/* The calling thread's signal mask, known without a system call where
 * possible. epoll_pwait's mask can then go into the io_uring wait itself
 * (IORING_ENTER_EXT_ARG) instead of two sigprocmask calls around the wait,
 * whenever that is exact: see rs_epoll_wait. */
#ifndef RS_SIGMASK_H
#define RS_SIGMASK_H

#include <signal.h>
#include <stdbool.h>

/* Fill `out` with the calling thread's blocked signals: from what the shim
 * saw last (no system call) or else by asking the kernel once. false only
 * if the kernel would not say. */
bool rs_sigmask_current(sigset_t *out);

/* Does waiting with `wait_mask` only unblock signals (every signal it blocks
 * is blocked in `cur` too)? Then a signal taking effect between two waits of
 * one call, under `cur`, stays pending exactly as it would have during the
 * kernel's own wait. */
bool rs_sigmask_only_unblocks(const sigset_t *wait_mask, const sigset_t *cur);

#endif
