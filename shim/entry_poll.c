/* epoll, poll and select. In strict mode they pass through to libc (the
 * kernel's readiness is exact because the shim holds nothing back); in batch
 * mode epoll.c and pollsel.c take them over. */
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>

#include "entry.h"
#include "internal_fds.h"
#include "epoll.h"
#include "pollsel.h"
#include "real.h"

extern void __chk_fail(void) __attribute__((noreturn));

static bool batch(void)
{
	return rs_cfg.mode == RS_MODE_BATCH && !rs_depth;
}

/* Turn an emulation result into the libc convention, or say "not ours". */
static bool finish(int r, int *out)
{
	if (r == RS_EPOLL_NOT_OURS || r == RS_POLL_NOT_OURS)
		return false;
	if (r < 0) {
		errno = -r;
		*out = -1;
	} else {
		*out = r;
	}
	return true;
}

RS_EXPORT int epoll_create1(int flags)
{
	int fd = RS_FDGATE(RS_REAL(epoll_create1)(flags));
	if (fd >= 0 && rs_ready()) {
		rs_fd_created(fd, RS_KIND_EPOLL, (flags & EPOLL_CLOEXEC) ? RS_FD_CLOEXEC : 0);
		if (rs_cfg.mode == RS_MODE_BATCH)
			rs_epoll_created(fd);
	}
	return fd;
}

RS_EXPORT int epoll_create(int size)
{
	int fd = RS_FDGATE(RS_REAL(epoll_create)(size));
	if (fd >= 0 && rs_ready()) {
		rs_fd_created(fd, RS_KIND_EPOLL, 0);
		if (rs_cfg.mode == RS_MODE_BATCH)
			rs_epoll_created(fd);
	}
	return fd;
}

RS_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (rs_ready()) {
		rs_count(RS_C_call_epoll_ctl);
		int saved = errno, out;
		bool borrowed = batch() && rs_borrow_if_ringless(epfd);
		bool done = batch() && finish(rs_epoll_ctl(epfd, op, fd, ev), &out);
		if (borrowed) {
			int e = errno;
			rs_ring_borrow_end();
			errno = e;
		}
		if (done) {
			if (out >= 0)
				errno = saved;
			return out;
		}
	}
	return RS_REAL(epoll_ctl)(epfd, op, fd, ev);
}

static int epoll_common(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
			const sigset_t *mask, bool *handled)
{
	*handled = false;
	if (!rs_ready())
		return 0;
	rs_count(RS_C_call_epoll_wait);
	int saved = errno, out;
	bool borrowed = batch() && rs_borrow_if_ringless(epfd);
	bool done = batch() && finish(rs_epoll_wait(epfd, evs, max, ts, mask), &out);
	if (borrowed) {
		int e = errno;
		rs_ring_borrow_end();
		errno = e;
	}
	if (done) {
		*handled = true;
		if (out >= 0)
			errno = saved;
		return out;
	}
	return 0;
}

static const struct timespec *ms_timeout(int ms, struct timespec *ts)
{
	if (ms < 0)
		return NULL;
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
	return ts;
}

RS_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	struct timespec ts;
	bool handled;
	int r = epoll_common(epfd, evs, max, ms_timeout(timeout, &ts), NULL, &handled);
	return handled ? r : RS_REAL(epoll_wait)(epfd, evs, max, timeout);
}

RS_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
			  const sigset_t *mask)
{
	struct timespec ts;
	bool handled;
	int r = epoll_common(epfd, evs, max, ms_timeout(timeout, &ts), mask, &handled);
	return handled ? r : RS_REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
}

RS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max,
			   const struct timespec *timeout, const sigset_t *mask)
{
	bool handled;
	int r = epoll_common(epfd, evs, max, timeout, mask, &handled);
	return handled ? r : RS_REAL(epoll_pwait2)(epfd, evs, max, timeout, mask);
}

/* Whether a poll set holds an fd with shim state: only then does a thread
 * without a ring borrow one for it. */
static bool poll_set_has_batch(const struct pollfd *fds, nfds_t n)
{
	for (nfds_t i = 0; i < n; i++) {
		int fd;
		if (rs_safe_copy(&fd, &fds[i].fd, sizeof(fd)))
			return false; /* the real call reports EFAULT */
		if (fd >= 0 && rs_fd_has_batch(fd))
			return true;
	}
	return false;
}

static bool poll_common(struct pollfd *fds, nfds_t n, const struct timespec *ts,
			const sigset_t *mask, int *out)
{
	if (!rs_ready())
		return false;
	rs_count(RS_C_call_poll);
	int saved = errno;
	bool borrowed = batch() && !rs_tls_ring && poll_set_has_batch(fds, n) &&
			rs_borrow_if_ringless(-1);
	bool done = batch() && finish(rs_poll(fds, n, ts, mask), out);
	if (borrowed) {
		int e = errno;
		rs_ring_borrow_end();
		errno = e;
	}
	if (done) {
		if (*out >= 0)
			errno = saved;
		return true;
	}
	return false;
}

RS_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts;
	int out;
	if (poll_common(fds, n, ms_timeout(timeout, &ts), NULL, &out))
		return out;
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
	int out;
	if (poll_common(fds, n, timeout, mask, &out))
		return out;
	return RS_REAL(ppoll)(fds, n, timeout, mask);
}

RS_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
			  const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return ppoll(fds, n, timeout, mask);
}

static bool select_common(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
			  const sigset_t *mask, struct timeval *left, int *out)
{
	if (!rs_ready())
		return false;
	rs_count(RS_C_call_select);
	int saved = errno;
	bool any = false;
	for (int fd = 0; fd < n && !any && batch() && !rs_tls_ring; fd++)
		any = rs_fd_has_batch(fd);
	bool borrowed = any && rs_borrow_if_ringless(-1);
	bool done = batch() && finish(rs_select(n, r, w, e, ts, mask, left), out);
	if (borrowed) {
		int en = errno;
		rs_ring_borrow_end();
		errno = en;
	}
	if (done) {
		if (*out >= 0)
			errno = saved;
		return true;
	}
	return false;
}

RS_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
	struct timespec ts, *tsp = NULL;
	if (timeout) {
		ts.tv_sec = timeout->tv_sec;
		ts.tv_nsec = timeout->tv_usec * 1000;
		tsp = &ts;
	}
	int out;
	if (select_common(n, r, w, e, tsp, NULL, timeout, &out))
		return out;
	return RS_REAL(select)(n, r, w, e, timeout);
}

RS_EXPORT int __select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
	RS_ALIAS(select);

RS_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
		      const sigset_t *mask)
{
	struct timespec ts, *tsp = NULL;
	if (timeout) {
		ts = *timeout;
		tsp = &ts;
	}
	int out;
	if (select_common(n, r, w, e, tsp, mask, NULL, &out))
		return out;
	return RS_REAL(pselect)(n, r, w, e, timeout, mask);
}
