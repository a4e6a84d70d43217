/* poll()/select() over fds the shim holds state for. The shim's readiness
 * (stash, accept queue, write-behind room) answers at once when something
 * is ready; otherwise the receive and accept the shim armed for those fds are
 * cancelled — the kernel then sees the sockets exactly as they are — and the
 * real call does the waiting. Programs that mix poll() with io_uring
 * receives therefore keep write-behind but read each time through the ring. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "acceptq.h"
#include "batch.h"
#include "config.h"
#include "epoll.h"
#include "pollsel.h"
#include "real.h"
#include "signals.h"

#define CHUNK 64

static bool holds_state(struct rs_fdb *b)
{
	return rs_rx_active(b) || rs_acq_active(b) || b->wq.bytes >= rs_cfg.wb_fd_max;
}

/* What the shim says about b for a pollfd asking `events`. */
static short shim_revents(struct rs_fdb *b, short events)
{
	uint32_t ready = __atomic_load_n(&b->ready, __ATOMIC_ACQUIRE);
	short r = 0;
	if (ready & RS_EV_IN)
		r |= POLLIN | POLLRDNORM;
	if (ready & RS_EV_OUT)
		r |= POLLOUT | POLLWRNORM;
	if (ready & RS_EV_RDHUP)
		r |= POLLRDHUP;
	return (short)((r & events) | (ready & (RS_EV_ERR | RS_EV_HUP)));
}

static void disarm(struct rs_ring *r, struct rs_fdb *b)
{
	if (b->flags & FDB_LISTEN)
		rs_acq_disarm(r, b);
	else
		rs_rx_disarm(r, b);
}

int rs_poll(struct pollfd *ufds, nfds_t n, const struct timespec *timeout)
{
	if (n > (nfds_t)INT_MAX)
		return RS_POLL_NOT_OURS;
	bool any = false;
	for (nfds_t i = 0; i < n && !any; i += CHUNK) {
		struct pollfd chunk[CHUNK];
		nfds_t m = n - i < CHUNK ? n - i : CHUNK;
		if (rs_safe_copy(chunk, ufds + i, m * sizeof(*chunk)))
			return RS_POLL_NOT_OURS; /* the real call reports EFAULT */
		for (nfds_t j = 0; j < m && !any; j++) {
			struct rs_fdb *b = chunk[j].fd >= 0 ? rs_fdb_get(chunk[j].fd) : NULL;
			any = b && holds_state(b);
		}
	}
	if (!any)
		return RS_POLL_NOT_OURS;

	enum rs_ring_unavailable why;
	struct rs_ring *r = rs_ring_get(&why);
	if (r) {
		rs_ring_lock(r);
		rs_ring_poke(r); /* queued sends first; completions in */
		rs_ring_reap(r);
		rs_ring_unlock(r);
	}
	for (int pass = 0; pass < 2; pass++) {
		/* Is anything ready by the shim's own account? */
		bool shim_ready = false;
		for (nfds_t i = 0; i < n; i++) {
			struct pollfd p;
			if (rs_safe_copy(&p, &ufds[i], sizeof(p)))
				return -EFAULT;
			struct rs_fdb *b = p.fd >= 0 ? rs_fdb_get(p.fd) : NULL;
			if (b && holds_state(b) && shim_revents(b, p.events))
				shim_ready = true;
		}
		bool zero = timeout && !timeout->tv_sec && !timeout->tv_nsec;
		if (shim_ready || zero) {
			struct timespec none = { 0, 0 };
			int k = RS_REAL(ppoll)(ufds, n, &none, NULL);
			if (k < 0)
				return -errno;
			int count = 0;
			for (nfds_t i = 0; i < n; i++) {
				struct pollfd p;
				if (rs_safe_copy(&p, &ufds[i], sizeof(p)))
					return -EFAULT;
				struct rs_fdb *b = p.fd >= 0 ? rs_fdb_get(p.fd) : NULL;
				if (b && holds_state(b)) {
					short keep = (short)(p.revents & (POLLPRI | POLLNVAL));
					p.revents = (short)(keep | shim_revents(b, p.events));
					if (rs_safe_copy(&ufds[i], &p, sizeof(p)))
						return -EFAULT;
				}
				count += p.revents != 0;
			}
			return count;
		}
		if (pass || !r)
			break;
		/* Nothing ready: let the kernel watch these sockets directly. */
		rs_ring_lock(r);
		for (nfds_t i = 0; i < n; i++) {
			struct pollfd p;
			if (rs_safe_copy(&p, &ufds[i], sizeof(p)))
				break;
			struct rs_fdb *b = p.fd >= 0 ? rs_fdb_get(p.fd) : NULL;
			if (b && holds_state(b))
				disarm(r, b);
		}
		rs_ring_unlock(r);
	}
	return RS_POLL_NOT_OURS;
}

int rs_select(int nfds, fd_set *rs, fd_set *ws, fd_set *es, const struct timespec *timeout)
{
	if (nfds < 0 || nfds > FD_SETSIZE)
		return RS_POLL_NOT_OURS;
	fd_set r0, w0, e0;
	FD_ZERO(&r0);
	FD_ZERO(&w0);
	FD_ZERO(&e0);
	if ((rs && rs_safe_copy(&r0, rs, sizeof(r0))) || (ws && rs_safe_copy(&w0, ws, sizeof(w0))) ||
	    (es && rs_safe_copy(&e0, es, sizeof(e0))))
		return RS_POLL_NOT_OURS;
	struct pollfd fds[FD_SETSIZE];
	int n = 0;
	bool any = false;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;
		if (FD_ISSET(fd, &r0))
			ev |= POLLIN | POLLRDNORM | POLLRDBAND;
		if (FD_ISSET(fd, &w0))
			ev |= POLLOUT | POLLWRNORM | POLLWRBAND;
		if (FD_ISSET(fd, &e0))
			ev |= POLLPRI;
		if (!ev)
			continue;
		struct rs_fdb *b = rs_fdb_get(fd);
		any |= b && holds_state(b);
		fds[n].fd = fd;
		fds[n].events = ev;
		fds[n].revents = 0;
		n++;
	}
	if (!any)
		return RS_POLL_NOT_OURS;
	int k = rs_poll(fds, (nfds_t)n, timeout);
	if (k == RS_POLL_NOT_OURS || k < 0)
		return k;
	FD_ZERO(&r0);
	FD_ZERO(&w0);
	FD_ZERO(&e0);
	int count = 0;
	for (int i = 0; i < n; i++) {
		short re = fds[i].revents;
		if (re & POLLNVAL)
			return -EBADF;
		if ((fds[i].events & POLLIN) && (re & (POLLIN | POLLRDNORM | POLLHUP | POLLERR))) {
			FD_SET(fds[i].fd, &r0);
			count++;
		}
		if ((fds[i].events & POLLOUT) && (re & (POLLOUT | POLLWRNORM | POLLERR))) {
			FD_SET(fds[i].fd, &w0);
			count++;
		}
		if ((fds[i].events & POLLPRI) && (re & POLLPRI)) {
			FD_SET(fds[i].fd, &e0);
			count++;
		}
	}
	if ((rs && rs_safe_copy(rs, &r0, sizeof(r0))) || (ws && rs_safe_copy(ws, &w0, sizeof(w0))) ||
	    (es && rs_safe_copy(es, &e0, sizeof(e0))))
		return -EFAULT;
	return count;
}
