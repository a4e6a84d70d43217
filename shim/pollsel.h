/* poll/ppoll/select/pselect in batch mode (pollsel.c). */
#ifndef RS_POLLSEL_H
#define RS_POLLSEL_H

#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <time.h>

/* Returned when no fd in the set has batch state: use the real call. */
#define RS_POLL_NOT_OURS (-4096 - 40)

int rs_poll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask);
/* `left`: select()'s timeval, which Linux updates with the time not slept. */
int rs_select(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
	      const sigset_t *mask, struct timeval *left);

#endif
