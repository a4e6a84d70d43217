/* epoll, poll and select. In strict mode they pass through to libc (the
 * kernel's readiness is exact because nothing is held back by the shim);
 * batch mode (epoll.c) takes them over. */
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "entry.h"
#include "real.h"

extern void __chk_fail(void) __attribute__((noreturn));

RS_EXPORT int epoll_create1(int flags)
{
	int fd = RS_REAL(epoll_create1)(flags);
	if (fd >= 0 && rs_ready())
		rs_fd_created(fd, RS_KIND_EPOLL, (flags & EPOLL_CLOEXEC) ? RS_FD_CLOEXEC : 0);
	return fd;
}

RS_EXPORT int epoll_create(int size)
{
	int fd = RS_REAL(epoll_create)(size);
	if (fd >= 0 && rs_ready())
		rs_fd_created(fd, RS_KIND_EPOLL, 0);
	return fd;
}

RS_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (rs_ready())
		rs_count(RS_C_call_epoll_ctl);
	return RS_REAL(epoll_ctl)(epfd, op, fd, ev);
}

RS_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	if (rs_ready())
		rs_count(RS_C_call_epoll_wait);
	return RS_REAL(epoll_wait)(epfd, evs, max, timeout);
}

RS_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
			  const sigset_t *mask)
{
	if (rs_ready())
		rs_count(RS_C_call_epoll_wait);
	return RS_REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
}

RS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max,
			   const struct timespec *timeout, const sigset_t *mask)
{
	if (rs_ready())
		rs_count(RS_C_call_epoll_wait);
	return RS_REAL(epoll_pwait2)(epfd, evs, max, timeout, mask);
}

RS_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (rs_ready())
		rs_count(RS_C_call_poll);
	return RS_REAL(poll)(fds, n, timeout);
}

RS_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return poll(fds, n, timeout);
}

RS_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		    const sigset_t *mask)
{
	if (rs_ready())
		rs_count(RS_C_call_poll);
	return RS_REAL(ppoll)(fds, n, timeout, mask);
}

RS_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
			  const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return ppoll(fds, n, timeout, mask);
}

RS_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
	if (rs_ready())
		rs_count(RS_C_call_select);
	return RS_REAL(select)(n, r, w, e, timeout);
}

RS_EXPORT int __select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
	RS_ALIAS(select);

RS_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
		      const sigset_t *mask)
{
	if (rs_ready())
		rs_count(RS_C_call_select);
	return RS_REAL(pselect)(n, r, w, e, timeout, mask);
}
