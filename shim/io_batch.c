/* The batch backend: write-behind, reads from the stash, accepts from the
 * queue; everything it does not cover goes to the strict backend, after
 * whatever the shim holds for the fd has been dealt with so the byte order
 * never changes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "batch.h"
#include "config.h"
#include "internal_fds.h"
#include "io_strict.h"
#include "log.h"
#include "real.h"
#include "signals.h"

static bool nonblocking(const struct rs_call *c)
{
	return RS_FD_FLAGS(c->st) & RS_FD_NONBLOCK;
}

static bool wb_eligible(const struct rs_call *c)
{
	unsigned f = RS_FD_FLAGS(c->st);
	return rs_kind_is_stream(RS_FD_KIND(c->st)) && (f & RS_FD_NONBLOCK) &&
	       (f & RS_FD_STREAM_CONNECTED);
}

/* Whatever is queued for b must reach the kernel before a strict call may
 * send after it. Waiting for that is part of the call, so it waits the way
 * the call would: its socket timeout, EINTR/SA_RESTART, and EAGAIN when the
 * call is nonblocking. */
static int drain_before_strict(struct rs_call *c, struct rs_fdb *b, int flags)
{
	if (!b)
		return 0;
	struct rs_call_wait cw = { 0 };
	for (;;) {
		pthread_mutex_lock(&b->lock);
		bool pending = b->wq.bytes || b->send_busy;
		int err = rs_fdb_take_error(b);
		pthread_mutex_unlock(&b->lock);
		if (err)
			return -err;
		if (!pending)
			return 0;
		rs_ring_lock(c->ring);
		pending = rs_wb_kick(c->ring, b);
		rs_ring_unlock(c->ring);
		if (!pending)
			continue;
		if (nonblocking(c) || (flags & MSG_DONTWAIT))
			return -EAGAIN;
		int w = rs_strict_wait_ready(c, POLLOUT, true, &cw);
		if (w == RS_TIMED_OUT)
			return -EAGAIN;
		if (w < 0 && w != RS_RESTART)
			return w;
	}
}

/* ---- writes ------------------------------------------------------------- */

/* A send that went to the kernel (res) on a stream socket with batch
 * state, `want` bytes asked. The shim's readiness for the fd (emulated
 * epoll, poll, select) says EPOLLOUT from the write-behind queue's room:
 * when the kernel's own buffer is what filled up (EAGAIN, or a short
 * count), that must be told to it, or EPOLLOUT would stay up over a full
 * socket and a program writing until EAGAIN then waiting for EPOLLOUT
 * would spin. */
static ssize_t kernel_sent(struct rs_call *c, ssize_t res, size_t want)
{
	if (!c->ring || !(res == -EAGAIN || (res >= 0 && (size_t)res < want)))
		return res;
	struct rs_fdb *b = rs_fdb_get(c->fd);
	if (!b || !(b->flags & FDB_WB))
		return res;
	int saved_errno = errno;
	rs_ring_lock(c->ring);
	rs_wb_kernel_full(c->ring, b);
	rs_ring_unlock(c->ring);
	errno = saved_errno;
	return res;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t t = 0;
	for (int i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

static ssize_t wb_send(struct rs_call *c, const struct iovec *iov, int cnt, int flags,
		       bool sigpipe, bool *handled)
{
	*handled = false;
	struct rs_fdb *b = rs_fdb_get(c->fd);
	if (!b && wb_eligible(c) && !(flags & MSG_OOB))
		b = rs_fdb_attach(c->fd, c->st);
	if (!b || !(b->flags & FDB_WB) || !nonblocking(c) || (flags & MSG_OOB)) {
		int err = drain_before_strict(c, b, flags);
		if (err) {
			*handled = true;
			if (err == -EPIPE && sigpipe)
				rs_raise_sigpipe(NULL);
			return err;
		}
		return 0;
	}
	size_t total = 0;
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	rs_ring_lock(c->ring);
	bool direct = rs_wb_write_direct(c->ring, b);
	pthread_mutex_lock(&b->lock);
	bool idle = !b->wq.bytes && !b->send_busy && !b->sk_err;
	pthread_mutex_unlock(&b->lock);
	/* Writes of nothing queue nothing, but the kernel still fails them on
	 * a shut or failed socket: with nothing queued, it answers. */
	bool to_kernel = direct || (!total && idle);
	long n = to_kernel || !total ? 0 : rs_wb_write(c->ring, b, iov, cnt, total);
	rs_ring_unlock(c->ring);
	*handled = true;
	if (to_kernel || n == -ENOMEM) {
		/* No memory to queue the bytes, or the socket is in a state
		 * only the kernel answers for: send them now instead, after
		 * what is queued. */
		int err = drain_before_strict(c, b, flags);
		if (err) {
			if (err == -EPIPE && sigpipe)
				rs_raise_sigpipe(NULL);
			return err;
		}
		*handled = false;
		return 0;
	}
	if (n > 0 && c->borrowed) {
		/* A borrower has no flush point of its own later on: its bytes
		 * go to the kernel before the call returns. The lending ring
		 * is submitted by rs_ring_borrow_end; a send still prepared in
		 * another thread's ring (the queue's head) is submitted here. */
		pthread_mutex_lock(&b->lock);
		struct rs_ring *sr = rs_ring_hold(b->send_busy ? b->send_ring : NULL);
		pthread_mutex_unlock(&b->lock);
		if (sr && sr != c->ring) {
			rs_ring_lock(sr);
			rs_ring_poke(sr);
			rs_ring_reap(sr);
			rs_ring_unlock(sr);
		}
		rs_ring_put(sr);
	}
	if (n == -EPIPE && sigpipe)
		rs_raise_sigpipe(NULL);
	if (n >= 0)
		c->served = RS_C_served_writebehind;
	return n;
}

static ssize_t b_write(struct rs_call *c, const void *buf, size_t len)
{
	/* Sizes beyond MAX_RW_COUNT fail the kernel's range check (EFAULT):
	 * the strict path hands those to libc. */
	if (rs_kind_is_stream(RS_FD_KIND(c->st)) && len <= (size_t)(INT_MAX & ~4095)) {
		struct iovec iov = { (void *)buf, len };
		bool handled;
		ssize_t n = wb_send(c, &iov, 1, 0, true, &handled);
		if (handled)
			return n;
		return kernel_sent(c, rs_io_strict.write(c, buf, len), len);
	}
	return rs_io_strict.write(c, buf, len);
}

static ssize_t b_sendto(struct rs_call *c, const void *buf, size_t len, int flags,
			const struct sockaddr *addr, socklen_t alen)
{
	if (!addr && rs_kind_is_stream(RS_FD_KIND(c->st))) {
		struct iovec iov = { (void *)buf, len > INT_MAX ? INT_MAX : len };
		bool handled;
		ssize_t n = wb_send(c, &iov, 1, flags, !(flags & MSG_NOSIGNAL), &handled);
		if (handled)
			return n;
		return kernel_sent(c, rs_io_strict.sendto(c, buf, len, flags, addr, alen),
				   iov.iov_len);
	}
	return rs_io_strict.sendto(c, buf, len, flags, addr, alen);
}

static ssize_t b_writev(struct rs_call *c, const struct iovec *iov, int cnt)
{
	if (rs_kind_is_stream(RS_FD_KIND(c->st)) && cnt > 0 && cnt <= IOV_MAX) {
		struct iovec local[64];
		if (cnt <= 64 && !rs_safe_copy(local, iov, (size_t)cnt * sizeof(*iov))) {
			bool handled;
			ssize_t n = wb_send(c, local, cnt, 0, true, &handled);
			if (handled)
				return n;
			return kernel_sent(c, rs_io_strict.writev(c, iov, cnt),
					   iov_total(local, cnt));
		} else {
			int err = drain_before_strict(c, rs_fdb_get(c->fd), 0);
			if (err)
				return err;
		}
	}
	return rs_io_strict.writev(c, iov, cnt);
}

static ssize_t b_sendmsg(struct rs_call *c, const struct msghdr *msg, int flags)
{
	struct msghdr m;
	if (rs_kind_is_stream(RS_FD_KIND(c->st)) && !rs_safe_copy(&m, msg, sizeof(m)) &&
	    !m.msg_name && !m.msg_controllen && m.msg_iovlen <= 64) {
		struct iovec local[64];
		if (!rs_safe_copy(local, m.msg_iov, m.msg_iovlen * sizeof(struct iovec))) {
			bool handled;
			ssize_t n = wb_send(c, local, (int)m.msg_iovlen, flags,
					    !(flags & MSG_NOSIGNAL), &handled);
			if (handled)
				return n;
			return kernel_sent(c, rs_io_strict.sendmsg(c, msg, flags),
					   iov_total(local, (int)m.msg_iovlen));
		}
	} else {
		/* Ancillary data (SCM_RIGHTS...) travels with its bytes: send
		 * it after everything queued before. */
		int err = drain_before_strict(c, rs_fdb_get(c->fd), flags);
		if (err)
			return err;
	}
	return rs_io_strict.sendmsg(c, msg, flags);
}

/* sendfile on a write-behind socket: read the range into the queue. */
static ssize_t b_sendfile(struct rs_call *c, int in_fd, off_t *offp, size_t count)
{
	struct rs_fdb *b = rs_fdb_get(c->fd);
	if (!b && wb_eligible(c))
		b = rs_fdb_attach(c->fd, c->st);
	uint32_t in_st = rs_fd_state(in_fd);
	bool direct = false;
	if (b && (b->flags & FDB_WB) && nonblocking(c)) {
		rs_ring_lock(c->ring);
		direct = rs_wb_write_direct(c->ring, b);
		rs_ring_unlock(c->ring);
	}
	if (!b || !(b->flags & FDB_WB) || !nonblocking(c) || RS_FD_KIND(in_st) != RS_KIND_FILE ||
	    direct) {
		int err = drain_before_strict(c, b, 0);
		if (err) {
			if (err == -EPIPE)
				rs_raise_sigpipe(NULL);
			return err;
		}
		return kernel_sent(c, rs_io_strict.sendfile(c, in_fd, offp, count), count);
	}
	off_t off = -1;
	if (offp) {
		if (rs_safe_copy(&off, offp, sizeof(off)))
			return -EFAULT;
		if (off < 0)
			return -EINVAL;
	}
	if (count > (size_t)(INT_MAX & ~4095))
		count = (size_t)(INT_MAX & ~4095);
	rs_ring_lock(c->ring);
	char *bounce = rs_ring_bounce(c->ring);
	rs_ring_unlock(c->ring);
	if (!bounce)
		return rs_io_strict.sendfile(c, in_fd, offp, count);
	struct rs_call in = *c;
	in.fd = in_fd;
	in.st = in_st;
	/* The file's own read is served as a read() of it would be: through
	 * the ring unless RINGSHIM_FDS leaves files to libc. */
	bool files_on_ring = rs_cfg.fds & RS_FDS_FILES;
	size_t done = 0;
	ssize_t err = 0;
	while (done < count) {
		pthread_mutex_lock(&b->lock);
		size_t room = b->wq.bytes < rs_cfg.wb_fd_max ? rs_cfg.wb_fd_max - b->wq.bytes : 0;
		pthread_mutex_unlock(&b->lock);
		size_t want = count - done;
		if (want > RS_RING_BOUNCE_SIZE)
			want = RS_RING_BOUNCE_SIZE;
		if (want > room)
			want = room;
		if (!want) {
			err = -EAGAIN; /* a full queue, as a full socket buffer */
			break;
		}
		ssize_t got;
		if (files_on_ring) {
			struct iovec riov = { bounce, want };
			got = rs_io_strict.preadv2(&in, &riov, 1, offp ? off + (off_t)done : -1, 0);
		} else {
			got = offp ? RS_REAL(pread64)(in_fd, bounce, want, off + (off_t)done)
				   : RS_REAL(read)(in_fd, bounce, want);
			if (got < 0)
				got = -errno;
		}
		if (got <= 0) {
			err = got;
			break;
		}
		struct iovec wiov = { bounce, (size_t)got };
		rs_ring_lock(c->ring);
		long n = rs_wb_write(c->ring, b, &wiov, 1, (size_t)got);
		rs_ring_unlock(c->ring);
		if (n < 0) {
			err = n;
			if (!offp)
				lseek(in_fd, -(off_t)got, SEEK_CUR);
			break;
		}
		done += (size_t)n;
	}
	if (offp) {
		off_t end = off + (off_t)done;
		if (rs_safe_copy(offp, &end, sizeof(end)))
			return -EFAULT;
	}
	if (done) {
		c->served = RS_C_served_writebehind;
		return (ssize_t)done;
	}
	if (err == -EPIPE)
		rs_raise_sigpipe(NULL);
	return err;
}

/* ---- reads -------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether the kernel has taken the SQE whose tail mark is seq from r's SQ. */
static bool sqe_seen(struct rs_ring *r, unsigned seq)
{
	return (int)(io_uring_smp_load_acquire(r->uring.sq.khead) - seq) >= 0;
}

/* Under SQPOLL: give the SQ thread a moment (bounded, 1 ms) to take it. */
static void wait_sqe_seen(struct rs_ring *r, unsigned seq)
{
	uint64_t until = now_ns() + 1000000;
	while (!sqe_seen(r, seq) && now_ns() < until)
		sched_yield();
}

/* Wait for news on rr (locked) for a blocking read. Returns 0 to look
 * again, -EINTR, RS_TIMED_OUT. */
static int wait_news(struct rs_call *c, struct rs_ring *rr, uint64_t deadline,
		     struct rs_sig_mark *mark, bool never_restart)
{
	/* Our own queued sends go first: the peer may be waiting for them. */
	if (rr != c->ring) {
		rs_ring_lock(c->ring);
		rs_ring_poke(c->ring);
		rs_ring_unlock(c->ring);
	}
	struct __kernel_timespec ts, *tsp = NULL;
	if (deadline) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return RS_TIMED_OUT;
		ts.tv_sec = (long long)((deadline - now) / 1000000000u);
		ts.tv_nsec = (long long)((deadline - now) % 1000000000u);
		tsp = &ts;
	}
	rs_ring_wait_any(rr, tsp, NULL);
	rs_ring_reap(rr);
	if (rs_sig.delivered != mark->delivered) {
		if (rs_sig_interrupted(mark, never_restart))
			return -EINTR;
		*mark = rs_sig_mark(); /* SA_RESTART: the read carries on */
	}
	return 0;
}

/* iov minus its first `skip` bytes, into out (at most 64 entries). */
static int iov_rest(const struct iovec *iov, int cnt, size_t skip, struct iovec *out)
{
	int n = 0;
	for (int i = 0; i < cnt && n < 64; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		out[n].iov_base = (char *)iov[i].iov_base + skip;
		out[n].iov_len = iov[i].iov_len - skip;
		skip = 0;
		n++;
	}
	return n;
}

/* A read took n bytes from the stash of b (b->lock held) and has room
 * for more. While no receive is armed, the stash is not being refilled:
 * bytes after it are in the socket itself (receive-ahead turned off, or
 * paused), and the kernel would have handed them to this same call. Take
 * them now, without waiting, in the same call and under b->lock so that
 * no receive can be armed in between. An error the socket reports here
 * comes after the bytes already copied: it stays pending in the state for
 * the next call, as the kernel leaves it pending when it has copied some. */
static long stash_top_up(struct rs_call *c, struct rs_fdb *b, const struct iovec *iov, int cnt,
			 int flags, long n)
{
	if (n <= 0 || b->rx_armed || b->rx_eof || b->sk_err || (b->flags & FDB_RESET))
		return n;
	size_t stashed = b->rq.bytes + rs_fork_stash_bytes(b);
	if (!(flags & MSG_PEEK) && stashed)
		return n; /* the read was filled from the stash */
	if ((flags & MSG_PEEK) && (size_t)n < stashed)
		return n;
	struct iovec rest[64];
	int rc = iov_rest(iov, cnt, (size_t)n, rest);
	if (!rc)
		return n;
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	m.msg_iov = rest;
	m.msg_iovlen = (size_t)rc;
	ssize_t k = RS_REAL(recvmsg)(c->fd, &m, (flags & (MSG_PEEK | MSG_TRUNC)) | MSG_DONTWAIT);
	if (k > 0)
		return n + k;
	if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		rs_fdb_set_error(b, errno);
		rs_fdb_update_ready(b, true);
	}
	return n;
}

/* MSG_WAITALL on a blocking socket took `got` bytes from a stash that is
 * now empty and not refilled: the rest comes from the socket, the way the
 * kernel's call would have gone on waiting for it. */
static long waitall_rest(struct rs_call *c, struct rs_fdb *b, const struct iovec *iov, int cnt,
			 int flags, size_t got)
{
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	m.msg_iov = (struct iovec *)iov;
	m.msg_iovlen = (size_t)cnt;
	int saved_errno = errno;
	ssize_t k = rs_io_strict.recvmsg(c, &m, flags);
	errno = saved_errno;
	if (k > 0)
		return (long)(got + (size_t)k);
	if (k < 0 && k != -EAGAIN && k != -EINTR) {
		pthread_mutex_lock(&b->lock);
		rs_fdb_set_error(b, (int)-k);
		rs_fdb_update_ready(b, true);
		pthread_mutex_unlock(&b->lock);
	}
	return (long)got;
}

/* MSG_PEEK|MSG_WAITALL on a blocking socket peeked all `stashed` bytes of
 * a stash that is not refilled, and the socket's bytes after them (n in
 * all) fall short: the kernel's peek would wait until the buffer is full.
 * Peek the socket again from its start, right after the stashed bytes,
 * waiting as the kernel's call does. */
static long peek_waitall_rest(struct rs_call *c, const struct iovec *iov, int cnt, int flags,
			      long stashed, long n)
{
	struct iovec rest[64];
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	m.msg_iov = rest;
	m.msg_iovlen = (size_t)iov_rest(iov, cnt, (size_t)stashed, rest);
	/* The strict backend leaves a blocking peek until full to libc (it
	 * cannot be rebuilt from nonblocking tries): so does this. */
	int saved_errno = errno;
	ssize_t k = RS_REAL(recvmsg)(c->fd, &m, flags);
	errno = saved_errno;
	return k > 0 && stashed + k > n ? stashed + k : n;
}

/* A pending error the receive did not take (a queued send that failed:
 * wb.c) comes after the bytes the socket received before it, as the
 * kernel's read returns its queue before sk_err. With the stash empty and
 * no receive armed (never armed, paused, or ended) those bytes are still in
 * the socket: read them first (b->lock held). Returns them, or RS_RX_EMPTY
 * when there are none and the error is due. */
static long bytes_before_error(struct rs_call *c, struct rs_fdb *b, const struct iovec *iov,
			       int cnt, int flags)
{
	if (!b->sk_err || b->rq.bytes || rs_fork_stash_bytes(b) || b->rx_armed || b->rx_eof)
		return RS_RX_EMPTY;
	struct iovec local[64];
	if (cnt > 64)
		return RS_RX_EMPTY;
	memcpy(local, iov, (size_t)cnt * sizeof(*iov));
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	m.msg_iov = local;
	m.msg_iovlen = (size_t)cnt;
	ssize_t k = RS_REAL(recvmsg)(c->fd, &m, (flags & (MSG_PEEK | MSG_TRUNC)) | MSG_DONTWAIT);
	return k > 0 ? (long)k : RS_RX_EMPTY;
}

/* Serve a read from b's stash. Returns bytes, -errno, or RS_RX_EMPTY when
 * the stash is not in use (the strict path reads the socket). */
static long stash_read(struct rs_call *c, struct rs_fdb *b, struct iovec *iov, int cnt,
		       int flags)
{
	size_t want = 0;
	for (int i = 0; i < cnt; i++)
		want += iov[i].iov_len;
	bool nb = nonblocking(c) || (flags & MSG_DONTWAIT);
	uint64_t timeo = nb ? 0 : rs_strict_timeout_us(c, false);
	uint64_t deadline = timeo ? now_ns() + timeo * 1000 : 0;
	struct rs_sig_mark mark = rs_sig_mark();
	size_t got = 0;
	/* The armed receive's SQE is pushed to the kernel at most once per
	 * call: a receive that ends at once and is armed again (buffers that
	 * run out, no memory for the stash) would otherwise keep this loop
	 * submitting for ever. */
	bool pushed = false;
	for (;;) {
		pthread_mutex_lock(&b->lock);
		if (!rs_rx_active(b)) {
			pthread_mutex_unlock(&b->lock);
			if (got && (flags & MSG_WAITALL) && !(flags & MSG_PEEK) && !nb)
				return waitall_rest(c, b, iov, cnt, flags, got);
			return got ? (long)got : RS_RX_EMPTY;
		}
		int saved_errno = errno;
		long n0 = bytes_before_error(c, b, iov, cnt, flags);
		if (n0 == RS_RX_EMPTY)
			n0 = rs_rx_read(b, iov, cnt, flags);
		long n = stash_top_up(c, b, iov, cnt, flags, n0);
		errno = saved_errno;
		bool final = !b->rx_armed && !b->rx_eof && !b->sk_err && !(b->flags & FDB_RESET);
		/* Held until this pass is done with it: its thread may
		 * exit meanwhile. */
		struct rs_ring *rr = rs_ring_hold(b->rx_ring);
		bool armed = b->rx_armed;
		unsigned rx_seq = b->rx_seq;
		bool resume = b->rx_paused && n > 0;
		pthread_mutex_unlock(&b->lock);
		if (resume) {
			/* On this thread's ring if the one that paused it has
			 * gone with its thread. */
			struct rs_ring *ar = rr ? rr : c->ring;
			rs_ring_lock(ar);
			pthread_mutex_lock(&b->lock);
			rs_rx_maybe_resume(ar, b);
			pthread_mutex_unlock(&b->lock);
			rs_ring_unlock(ar);
		}
	if (n > 0 && (flags & (MSG_PEEK | MSG_WAITALL)) == (MSG_PEEK | MSG_WAITALL) && !nb &&
		    final && (size_t)n < want)
			return peek_waitall_rest(c, iov, cnt, flags, n0, n);
		if (n != RS_RX_EMPTY) {
			rs_ring_put(rr);
			if (n < 0)
				return got ? (long)got : n;
			got += (size_t)n;
			/* MSG_WAITALL: keep going until full, EOF or error. */
			if (!(flags & MSG_WAITALL) || got >= want || n == 0 || (flags & MSG_PEEK))
				return (long)got;
			size_t skip = (size_t)n;
			while (cnt && skip >= iov->iov_len) {
				skip -= iov->iov_len;
				iov++;
				cnt--;
			}
			if (cnt) {
				iov->iov_base = (char *)iov->iov_base + skip;
				iov->iov_len -= skip;
			}
			continue;
		}
		if (!rr)
			return got ? (long)got : RS_RX_EMPTY;
		/* Nothing stashed: completions may be waiting to be run. */
		rs_ring_lock(rr);
		bool news = rs_ring_has_news(rr);
		if (news) {
			if (rr == c->ring)
				rs_ring_poke(rr);
			news = rs_ring_reap(rr) > 0;
		}
		if (!news && armed && !pushed && !sqe_seen(rr, rx_seq)) {
			pushed = true;
			/* The receive was armed again (by whichever thread
			 * reaped its end, or a resume) and its SQE is still in
			 * rr's SQ: the socket may hold bytes nothing receives.
			 * Submit it now; with bytes there it completes in the
			 * enter (under SQPOLL, once the SQ thread took it). */
			rs_ring_poke(rr);
			if (rr->sqpoll)
				wait_sqe_seen(rr, rx_seq);
			news = rs_ring_reap(rr) > 0 || rs_ring_has_news(rr);
			if (news && rr == c->ring)
				rs_ring_poke(rr);
			news = rs_ring_reap(rr) > 0 || news;
		}
		if (news) {
			rs_ring_unlock(rr);
			rs_ring_put(rr);
			continue;
		}
		if (nb) {
			rs_ring_unlock(rr);
			rs_ring_put(rr);
			return got ? (long)got : -EAGAIN;
		}
		int w = wait_news(c, rr, deadline, &mark, timeo != 0);
		rs_ring_unlock(rr);
		rs_ring_put(rr);
		if (w == RS_TIMED_OUT)
			return got ? (long)got : -EAGAIN;
		if (w < 0)
			return got ? (long)got : w;
	}
}

/* Whether a read must look at b's stash first. Not only while receiving
 * ahead is allowed (FDB_RX): once it is turned off (SO_RCVLOWAT, an epoll
 * handed to the kernel, fork) the bytes, EOF or error the receive already
 * took from the socket are in the stash alone, and a read that went to the
 * kernel would skip them. stash_read checks again under b->lock. */
static bool stash_applies(struct rs_fdb *b, int flags)
{
	if (!b || (flags & (MSG_OOB | MSG_ERRQUEUE)))
		return false;
	return __atomic_load_n(&b->rx_allowed, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&b->rx_used, __ATOMIC_ACQUIRE);
}
static ssize_t b_read(struct rs_call *c, void *buf, size_t len)
{
	struct rs_fdb *b = RS_FD_KIND(c->st) == RS_KIND_TCP ? rs_fdb_get(c->fd) : NULL;
	if (stash_applies(b, 0)) {
		if (!len)
			return 0;
		struct iovec iov = { buf, len > INT_MAX ? INT_MAX : len };
		long n = stash_read(c, b, &iov, 1, 0);
		if (n != RS_RX_EMPTY) {
			c->served = RS_C_served_stash;
			return n;
		}
	}
	return rs_io_strict.read(c, buf, len);
}

/* recvfrom's address for a connected TCP socket: the kernel reports none. */
static int no_addr(struct sockaddr *addr, socklen_t *alen)
{
	if (!addr)
		return 0;
	socklen_t ulen, zero = 0;
	if (rs_safe_copy(&ulen, alen, sizeof(ulen)))
		return -EFAULT;
	if ((int)ulen < 0)
		return -EINVAL;
	return rs_safe_copy(alen, &zero, sizeof(zero)) ? -EFAULT : 0;
}

static ssize_t b_recvfrom(struct rs_call *c, void *buf, size_t len, int flags,
			  struct sockaddr *addr, socklen_t *alen)
{
	struct rs_fdb *b = RS_FD_KIND(c->st) == RS_KIND_TCP ? rs_fdb_get(c->fd) : NULL;
	if (stash_applies(b, flags)) {
		struct iovec iov = { buf, len > INT_MAX ? INT_MAX : len };
		long n = stash_read(c, b, &iov, 1, flags);
		if (n != RS_RX_EMPTY) {
			c->served = RS_C_served_stash;
			if (n >= 0) {
				int err = no_addr(addr, alen);
				if (err)
					return err;
			}
			return n;
		}
	}
	return rs_io_strict.recvfrom(c, buf, len, flags, addr, alen);
}

static ssize_t b_readv(struct rs_call *c, const struct iovec *iov, int cnt)
{
	struct rs_fdb *b = RS_FD_KIND(c->st) == RS_KIND_TCP ? rs_fdb_get(c->fd) : NULL;
	struct iovec local[64];
	if (stash_applies(b, 0) && cnt > 0 && cnt <= 64 &&
	    !rs_safe_copy(local, iov, (size_t)cnt * sizeof(*iov))) {
		size_t total = 0;
		for (int i = 0; i < cnt; i++)
			total += local[i].iov_len;
		if (!total)
			return 0;
		long n = stash_read(c, b, local, cnt, 0);
		if (n != RS_RX_EMPTY) {
			c->served = RS_C_served_stash;
			return n;
		}
	}
	return rs_io_strict.readv(c, iov, cnt);
}

static ssize_t b_recvmsg(struct rs_call *c, struct msghdr *msg, int flags)
{
	struct rs_fdb *b = RS_FD_KIND(c->st) == RS_KIND_TCP ? rs_fdb_get(c->fd) : NULL;
	struct msghdr m;
	struct iovec local[64];
	if (stash_applies(b, flags) && !rs_safe_copy(&m, msg, sizeof(m)) && m.msg_iovlen <= 64 &&
	    !rs_safe_copy(local, m.msg_iov, m.msg_iovlen * sizeof(struct iovec))) {
		long n = stash_read(c, b, local, (int)m.msg_iovlen, flags);
		if (n != RS_RX_EMPTY) {
			c->served = RS_C_served_stash;
			if (n >= 0) {
				/* No address, no ancillary data, no flags: what TCP
				 * reports for plain stream bytes. */
				socklen_t zero = 0;
				size_t zc = 0;
				int zf = 0;
				if ((m.msg_name && rs_safe_copy(&msg->msg_namelen, &zero, sizeof(zero))) ||
				    rs_safe_copy(&msg->msg_controllen, &zc, sizeof(zc)) ||
				    rs_safe_copy(&msg->msg_flags, &zf, sizeof(zf)))
					return -EFAULT;
			}
			return n;
		}
	}
	return rs_io_strict.recvmsg(c, msg, flags);
}

/* ---- accept, shutdown, close -------------------------------------------- */

static int b_accept4(struct rs_call *c, struct sockaddr *addr, socklen_t *alen, int flags)
{
	struct rs_fdb *b = rs_fdb_get(c->fd);
	/* A queue that stopped accepting ahead (fork) still hands out what it
	 * holds before the kernel's backlog is asked. */
	if (!b || !rs_acq_active(b))
		return rs_io_strict.accept4(c, addr, alen, flags);
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return -EINVAL;
	bool nb = nonblocking(c);
	uint64_t timeo = nb ? 0 : rs_strict_timeout_us(c, false);
	uint64_t deadline = timeo ? now_ns() + timeo * 1000 : 0;
	struct rs_sig_mark mark = rs_sig_mark();
	for (;;) {
		pthread_mutex_lock(&b->lock);
		struct rs_ring *qr = rs_acq_ring_hold(b); /* its thread may exit */
		pthread_mutex_unlock(&b->lock);
		if (!qr)
			return rs_io_strict.accept4(c, addr, alen, flags);
		rs_ring_lock(qr);
		int fd = rs_acq_take(qr, b, addr, alen, flags);
		if (fd != RS_ACQ_EMPTY) {
			rs_ring_unlock(qr);
			rs_ring_put(qr);
			c->served = RS_C_served_acceptq;
			return fd;
		}
		bool news = rs_ring_has_news(qr);
		if (news) {
			if (qr == c->ring)
				rs_ring_poke(qr);
			news = rs_ring_reap(qr) > 0;
		}
		if (news) {
			rs_ring_unlock(qr);
			rs_ring_put(qr);
			continue;
		}
		pthread_mutex_lock(&b->lock);
		bool active = rs_acq_active(b);
		pthread_mutex_unlock(&b->lock);
		if (!active) {
			/* Emptied and no longer accepting ahead: the backlog. */
			rs_ring_unlock(qr);
			rs_ring_put(qr);
			return rs_io_strict.accept4(c, addr, alen, flags);
		}
		if (nb) {
			rs_ring_unlock(qr);
			rs_ring_put(qr);
			return -EAGAIN;
		}
		int w = wait_news(c, qr, deadline, &mark, timeo != 0);
		rs_ring_unlock(qr);
		rs_ring_put(qr);
		if (w == RS_TIMED_OUT)
			return -EAGAIN;
		if (w < 0)
			return w;
	}
}

static int shutdown_(struct rs_call *c, int how)
{
	/* The peer's queued bytes must be in our receive queue before it
	 * closes for them (fdb.c). */
	if ((how == SHUT_RD || how == SHUT_RDWR) && RS_FD_KIND(c->st) == RS_KIND_UNIX_STREAM)
		rs_batch_push_all(false);
	struct rs_fdb *b = rs_fdb_get(c->fd);
	/* Writes later queued must fail with EPIPE as the kernel's would, so
	 * the shutdown is remembered even when nothing was written yet. */
	if (!b && rs_kind_is_stream(RS_FD_KIND(c->st)) && (how == SHUT_WR || how == SHUT_RDWR))
		b = rs_fdb_attach(c->fd, c->st);
	if (!b || (how != SHUT_WR && how != SHUT_RDWR))
		return rs_io_strict.shutdown(c, how);
	pthread_mutex_lock(&b->lock);
	bool pending = b->wq.bytes || b->send_busy;
	/* A socket that stopped queueing (shared by a fork since) may still
	 * have bytes queued from before: the FIN goes after them all the
	 * same (fuzz seed 2330007875 lost them). */
	if (pending) {
		b->flags |= FDB_SHUT_WR | FDB_SHUT_QUEUED;
		rs_fdb_update_ready(b, true);
	}
	pthread_mutex_unlock(&b->lock);
	if (!pending) {
		int r = rs_io_strict.shutdown(c, how);
		if (!r) {
			/* Remembered also where nothing is queued any more
			 * (shared by a fork): its readiness still counts while
			 * the stash or the bytes held at fork are read
			 * (pollsel.c), and the shut write side is part of it,
			 * OUT and HUP (fuzz seed 2639517517: HUP missing). */
			pthread_mutex_lock(&b->lock);
			b->flags |= FDB_SHUT_WR;
			rs_fdb_update_ready(b, true);
			pthread_mutex_unlock(&b->lock);
		}
		return r;
	}
	/* The write side closes once the queue has gone out (wb.c); the read
	 * side can close now. */
	return how == SHUT_RDWR ? rs_io_strict.shutdown(c, SHUT_RD) : 0;
}

static int b_shutdown(struct rs_call *c, int how)
{
	int r = shutdown_(c, how);
	/* The reading side is shut now (inet_shutdown sets the bits even as
	 * it says ENOTCONN): while the shim answers poll for the socket
	 * (stash, bytes held at fork), that is IN|RDHUP, and HUP once the
	 * write side is shut too (fuzz seed 3150533621: shutdown SHUT_RDWR
	 * with stashed bytes unread, HUP missing). */
	if ((!r || r == -ENOTCONN) && (how == SHUT_RD || how == SHUT_RDWR)) {
		struct rs_fdb *b = rs_fdb_get(c->fd);
		if (b) {
			pthread_mutex_lock(&b->lock);
			b->flags |= FDB_SHUT_RD;
			rs_fdb_update_ready(b, true);
			pthread_mutex_unlock(&b->lock);
		}
	}
	/* A unix peer of ours now has SEND_SHUTDOWN, which its watch cannot
	 * see: its next write must fail with EPIPE, as natively (fdb.c). */
	if (!r && (how == SHUT_RD || how == SHUT_RDWR) &&
	    RS_FD_KIND(c->st) == RS_KIND_UNIX_STREAM)
		rs_batch_after_shut_rd();
	return r;
}

/* close(): settle the shim's state for the number (fdb.c), then close it. */
static int b_close(struct rs_call *c)
{
	rs_batch_number_closing(c->fd);
	return rs_io_strict.close(c);
}

static ssize_t b_preadv2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off, int fl)
{
	return rs_io_strict.preadv2(c, iov, cnt, off, fl);
}

static ssize_t b_pwritev2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off, int fl)
{
	return rs_io_strict.pwritev2(c, iov, cnt, off, fl);
}

static int b_connect(struct rs_call *c, const struct sockaddr *addr, socklen_t alen)
{
	return rs_io_strict.connect(c, addr, alen);
}

const struct rs_io rs_io_batch = {
	.read = b_read,
	.write = b_write,
	.readv = b_readv,
	.writev = b_writev,
	.preadv2 = b_preadv2,
	.pwritev2 = b_pwritev2,
	.recvfrom = b_recvfrom,
	.recvmsg = b_recvmsg,
	.sendto = b_sendto,
	.sendmsg = b_sendmsg,
	.sendfile = b_sendfile,
	.accept4 = b_accept4,
	.connect = b_connect,
	.shutdown = b_shutdown,
	.close = b_close,
};
