/* poll()/select() over fds the shim holds state for. The shim's readiness
 * (stash, accept queue, write-behind) answers at once when something is
 * ready. Otherwise the receive and accept armed ahead for those fds are
 * cancelled — so the kernel sees the sockets exactly as they are — the real
 * call waits, and afterwards fds that belong to an epoll set are armed
 * again. Queued sends always go out before anything waits. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acceptq.h"
#include "batch.h"
#include "config.h"
#include "epoll.h"
#include "pollsel.h"
#include "real.h"
#include "signals.h"

#define CHUNK 64

/* b->lock held: its completions run on other threads. */
static bool holds_state_locked(struct rs_fdb *b)
{
	return rs_rx_active(b) || rs_acq_active(b) || b->wq.bytes >= rs_cfg.wb_fd_max ||
	       b->pollout_armed || b->send_blocked || b->sk_err;
}

static bool holds_state(struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	bool holds = holds_state_locked(b);
	pthread_mutex_unlock(&b->lock);
	return holds;
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

/* Send what this thread has queued: the peer may be waiting for it while
 * we wait for the peer. */
static struct rs_ring *flush_mine(void)
{
	enum rs_ring_unavailable why;
	struct rs_ring *r = rs_ring_get(&why);
	if (r) {
		rs_ring_lock(r);
		if (io_uring_sq_ready(&r->uring) || rs_ring_has_news(r))
			rs_ring_poke(r);
		rs_ring_reap(r);
		rs_ring_unlock(r);
	}
	return r;
}

/* Scan the set: emulated epoll fds in it move to the kernel (poll sees only
 * the kernel's instance); returns whether any fd holds shim state. */
static int scan(struct pollfd *ufds, nfds_t n)
{
	bool any = false;
	for (nfds_t i = 0; i < n; i += CHUNK) {
		struct pollfd chunk[CHUNK];
		nfds_t m = n - i < CHUNK ? n - i : CHUNK;
		if (rs_safe_copy(chunk, ufds + i, m * sizeof(*chunk)))
			return -EFAULT;
		for (nfds_t j = 0; j < m; j++) {
			if (chunk[j].fd < 0)
				continue;
			uint32_t st = rs_fd_state(chunk[j].fd);
			if (RS_FD_KIND(st) == RS_KIND_EPOLL)
				rs_epoll_demote_fd(chunk[j].fd);
			struct rs_fdb *b = rs_fdb_get(chunk[j].fd);
			any |= b && holds_state(b);
		}
	}
	return any;
}

int rs_poll(struct pollfd *ufds, nfds_t n, const struct timespec *timeout, const sigset_t *mask)
{
	if (n > (nfds_t)INT_MAX)
		return RS_POLL_NOT_OURS;
	struct rs_ring *r = flush_mine();
	int any = scan(ufds, n);
	if (any <= 0)
		return RS_POLL_NOT_OURS; /* the real call reports EFAULT too */

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
	if (!shim_ready && !zero && r) {
		/* Nothing ready: let the kernel watch these sockets directly,
		 * unless a cancelled receive brought bytes in meanwhile. */
		rs_ring_lock(r);
		for (nfds_t i = 0; i < n; i++) {
			struct pollfd p;
			if (rs_safe_copy(&p, &ufds[i], sizeof(p)))
				break;
			struct rs_fdb *b = p.fd >= 0 ? rs_fdb_get(p.fd) : NULL;
			if (!b)
				continue;
			if (b->flags & FDB_LISTEN)
				rs_acq_disarm(r, b);
			else
				rs_rx_disarm(r, b);
			if (holds_state(b) && shim_revents(b, p.events))
				shim_ready = true;
		}
		rs_ring_unlock(r);
	}
	int k;
	if (shim_ready || zero) {
		struct timespec none = { 0, 0 };
		k = RS_REAL(ppoll)(ufds, n, &none, NULL);
	} else {
		k = RS_REAL(ppoll)(ufds, n, timeout, mask);
	}
	if (k < 0)
		k = -errno;
	int count = 0;
	for (nfds_t i = 0; i < n && k >= 0; i++) {
		struct pollfd p;
		if (rs_safe_copy(&p, &ufds[i], sizeof(p)))
			return -EFAULT;
		struct rs_fdb *b = p.fd >= 0 ? rs_fdb_get(p.fd) : NULL;
		bool holds = false, watched = false; /* epoll_ctl in another thread */
		if (b) {
			pthread_mutex_lock(&b->lock);
			holds = holds_state_locked(b);
			watched = r && b->items;
			pthread_mutex_unlock(&b->lock);
		}
		if (holds) {
			short keep = (short)(p.revents & (POLLPRI | POLLNVAL));
			p.revents = (short)(keep | shim_revents(b, p.events));
			if (rs_safe_copy(&ufds[i], &p, sizeof(p)))
				return -EFAULT;
		}
		count += p.revents != 0;
		/* Back to receiving ahead for fds an epoll set watches. */
		if (watched) {
			rs_ring_lock(r);
			pthread_mutex_lock(&b->lock);
			b->flags &= ~FDB_NO_REARM;
			if (b->flags & FDB_LISTEN)
				rs_acq_arm(r, b);
			else
				rs_rx_arm(r, b);
			pthread_mutex_unlock(&b->lock);
			rs_ring_unlock(r);
		}
	}
	return k < 0 ? k : count;
}

int rs_select(int nfds, fd_set *rs, fd_set *ws, fd_set *es, const struct timespec *timeout,
	      const sigset_t *mask, struct timeval *left)
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
		fds[n].fd = fd;
		fds[n].events = ev;
		fds[n].revents = 0;
		n++;
	}
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	int k = rs_poll(fds, (nfds_t)n, timeout, mask);
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
	if (left && timeout) {
		/* Linux's select() leaves the time not slept in its timeout. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t spent = (now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec);
		int64_t total = timeout->tv_sec * 1000000000LL + timeout->tv_nsec;
		int64_t rest = total > spent ? total - spent : 0;
		struct timeval tv = { (time_t)(rest / 1000000000LL), (suseconds_t)(rest % 1000000000LL / 1000) };
		rs_safe_copy(left, &tv, sizeof(tv));
	}
	return count;
}
