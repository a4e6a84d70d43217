/* The strict backend: every call becomes io_uring ops on the calling
 * thread's ring, and returns only after their CQEs are in.
 *
 * io_uring ignores O_NONBLOCK on sockets and pipes (it arms a poll instead),
 * so the shim always asks for the nonblocking form (MSG_DONTWAIT,
 * RWF_NOWAIT, IORING_ACCEPT_DONTWAIT). When that would block on a blocking
 * fd, it waits for readiness with a poll — an op that moves no data, so a
 * signal can end the wait and give EINTR exactly as the kernel would, with
 * nothing consumed behind the program's back — and then tries again. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "io_strict.h"
#include "internal_fds.h"
#include "log.h"
#include "real.h"
#include "signals.h"
#include "vg.h"

#ifndef IORING_ACCEPT_DONTWAIT
#define IORING_ACCEPT_DONTWAIT (1U << 1)
#endif

/* The kernel clamps a single read or write to this. */
#define MAX_RW_COUNT ((size_t)(INT_MAX & ~4095))
/* Not an errno: the call must go to libc (sizes the ring would get wrong). */
#define RS_USE_LIBC (-4096 - 50)

static bool nonblocking(const struct rs_call *c)
{
	return RS_FD_FLAGS(c->st) & RS_FD_NONBLOCK;
}

static bool shared(const struct rs_call *c)
{
	return RS_FD_FLAGS(c->st) & RS_FD_SHARED;
}

static enum rs_kind kind(const struct rs_call *c)
{
	return RS_FD_KIND(c->st);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Another process (or a dup we could not follow) may have changed
 * O_NONBLOCK: ask the kernel, and remember the answer. Only done where the
 * call is about to block or to report EAGAIN, so it costs nothing on the
 * fast path. */
static bool really_nonblocking(struct rs_call *c)
{
	int fl = RS_REAL(fcntl64)(c->fd, F_GETFL);
	if (fl < 0)
		return nonblocking(c);
	bool nb = fl & O_NONBLOCK;
	rs_fd_set_flags(c->fd, nb ? RS_FD_NONBLOCK : 0, nb ? 0 : RS_FD_NONBLOCK);
	c->st = (c->st & ~((uint32_t)RS_FD_NONBLOCK << 8)) | (nb ? (uint32_t)RS_FD_NONBLOCK << 8 : 0);
	return nb;
}

/* O_NONBLOCK lives in the open file description: through a dup it may have
 * changed behind this fd's back, so shared fds ask the kernel. */
static bool nonblocking_now(struct rs_call *c)
{
	return shared(c) ? really_nonblocking(c) : nonblocking(c);
}

/* For choosing between one try and a blocking loop: only "nonblocking" can
 * be stale in the costly direction (a blocking loop notices a nonblocking
 * fd by itself: rs_strict_exec re-checks shared fds on EAGAIN), so only a
 * shared fd believed nonblocking pays for asking the kernel. */
static bool nonblocking_for_loop(struct rs_call *c)
{
	return nonblocking(c) && (!shared(c) || really_nonblocking(c));
}

/* ---- socket timeouts ---------------------------------------------------- */

static uint64_t timeval_to_us(const struct timeval *tv)
{
	if (tv->tv_sec > 1000000000L) /* decades: the kernel's "no timeout" */
		return RS_TIMEO_NONE;
	return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}

static uint64_t kernel_timeo(int fd, int opt)
{
	struct timeval tv = { 0, 0 };
	socklen_t len = sizeof(tv);
	if (RS_REAL(getsockopt)(fd, SOL_SOCKET, opt, &tv, &len) != 0)
		return RS_TIMEO_NONE;
	return timeval_to_us(&tv);
}

uint64_t rs_strict_timeo_from_user(int fd, int opt, const struct timeval *tv)
{
	/* sock_set_timeout(): negative means "give up at once"; otherwise
	 * read back what the kernel stored (rounded to jiffies, or 0 for
	 * none when the value is too large). */
	if (tv->tv_sec < 0)
		return RS_TIMEO_NOW;
	return kernel_timeo(fd, opt);
}

uint64_t rs_strict_timeout_us(const struct rs_call *c, bool send_side)
{
	int opt = send_side ? SO_SNDTIMEO : SO_RCVTIMEO;
	struct rs_fd *e = rs_fd_peek(c->fd);
	uint64_t ours = RS_TIMEO_NONE;
	if (e && (RS_FD_FLAGS(c->st) & RS_FD_TIMEO))
		ours = send_side ? RS_FD_LOAD(e, sndtimeo_us) : RS_FD_LOAD(e, rcvtimeo_us);
	if (!shared(c))
		return ours;
	/* The timeout belongs to the socket: a dup, or another process, may
	 * have set it where we could not see. The kernel reads back "none" for
	 * a negative timeout too, which only our own record can tell apart. */
	uint64_t kernel = kernel_timeo(c->fd, opt);
	return kernel == RS_TIMEO_NONE && ours == RS_TIMEO_NOW ? RS_TIMEO_NOW : kernel;
}

static void start_wait(struct rs_call *c, const struct rs_exec_opts *o, struct rs_call_wait *cw)
{
	if (cw->started)
		return;
	cw->started = true;
	cw->mark = rs_sig_mark();
	uint64_t t = rs_kind_is_socket(kind(c)) ? rs_strict_timeout_us(c, o->send_side)
					       : RS_TIMEO_NONE;
	cw->timeo_now = t == RS_TIMEO_NOW;
	cw->never_restart = t != RS_TIMEO_NONE;
	cw->deadline_ns = t && t != RS_TIMEO_NOW ? now_ns() + t * 1000 : 0;
}

/* ---- the executor ------------------------------------------------------- */

/* One op, completed before returning; a blocking single op (connect, files)
 * waits in the kernel. */
static int run_op(struct rs_call *c, rs_prep_fn prep, void *args, bool nonblock,
		  const struct rs_wait *w)
{
	struct rs_op op = { 0 };
	struct io_uring_sqe *sqe = rs_ring_sqe(c->ring);
	if (unlikely(!sqe)) {
		rs_warn("the submission queue stays full; failing the call with EBUSY");
		return -EBUSY;
	}
	prep(sqe, c, args, nonblock);
	sqe->user_data = (uint64_t)(uintptr_t)&op;
	if (unlikely(RS_ON_VALGRIND())) {
		struct rs_vg_snap snap;
		rs_vg_snap(&snap, sqe);
		int res = rs_ring_run(c->ring, &op, w);
		rs_vg_completed(&snap, res);
		return res;
	}
	return rs_ring_run(c->ring, &op, w);
}

/* Sleep until fd is ready for `events`. 0 when ready (try again), -EINTR,
 * RS_RESTART, RS_TIMED_OUT. */
/* Calls waiting for readiness, so that close() from another thread can
 * keep their file alive: a thread blocked in read() natively holds the file
 * and still returns the data (or EOF) that arrives after the close; a
 * retry by fd number would get EBADF or, worse, another file. */
struct waiter {
	int fd;
	int held; /* hidden copy made by the closer, or -1 */
	struct waiter *next;
};
static pthread_mutex_t waiters_lock = PTHREAD_MUTEX_INITIALIZER;
static struct waiter *waiters;
static int nwaiters;

static void waiter_add(struct waiter *w)
{
	pthread_mutex_lock(&waiters_lock);
	w->next = waiters;
	waiters = w;
	__atomic_add_fetch(&nwaiters, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&waiters_lock);
}

static void waiter_remove(struct waiter *w)
{
	pthread_mutex_lock(&waiters_lock);
	for (struct waiter **p = &waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	__atomic_sub_fetch(&nwaiters, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&waiters_lock);
}

void rs_strict_fds_closing(int lo, int hi)
{
	if (!__atomic_load_n(&nwaiters, __ATOMIC_ACQUIRE))
		return;
	int saved = errno;
	pthread_mutex_lock(&waiters_lock);
	for (struct waiter *w = waiters; w; w = w->next)
		if (w->fd >= lo && w->fd <= hi && w->held < 0)
			w->held = rs_internal_fd_hide(w->fd, NULL, NULL);
	pthread_mutex_unlock(&waiters_lock);
	errno = saved;
}

void rs_strict_after_fork_child(void)
{
	pthread_mutex_init(&waiters_lock, NULL);
	waiters = NULL;
	nwaiters = 0;
}

void rs_call_drop_held(struct rs_call *c)
{
	int saved = errno;
	rs_internal_fd_remove(c->held_fd);
	RS_REAL(close)(c->held_fd);
	c->held_fd = -1;
	errno = saved;
}

static int wait_ready(struct rs_call *c, short events, struct rs_call_wait *cw)
{
	struct rs_wait w = { 0 };
	w.interruptible = true;
	w.never_restart = cw->never_restart;
	if (cw->deadline_ns) {
		uint64_t now = now_ns();
		if (now >= cw->deadline_ns)
			return RS_TIMED_OUT;
		w.timeout_ns = cw->deadline_ns - now;
	}
	struct rs_op op = { 0 };
	struct io_uring_sqe *sqe = rs_ring_sqe(c->ring);
	if (unlikely(!sqe))
		return -EBUSY;
	io_uring_prep_poll_add(sqe, c->fd, (unsigned)events);
	sqe->user_data = (uint64_t)(uintptr_t)&op;
	struct waiter me = { c->fd, -1, NULL };
	waiter_add(&me);
	int r = rs_ring_run(c->ring, &op, &w);
	waiter_remove(&me);
	if (me.held >= 0) {
		/* Closed by another thread while we waited: the poll kept
		 * the file, and so must the rest of the call. */
		if (c->held_fd >= 0)
			rs_call_drop_held(c);
		c->held_fd = c->fd = me.held;
	}
	cw->revents = r > 0 ? (short)r : 0;
	if (r >= 0 && rs_sig.delivered != cw->mark.delivered) {
		/* Ready, but a handler ran too: the kernel would have ended
		 * the call for the signal. Nothing was taken: no loss. */
		if (rs_sig_interrupted(&cw->mark, cw->never_restart))
			return -EINTR;
		cw->mark = rs_sig_mark();
		return RS_RESTART;
	}
	if (r == RS_RESTART)
		cw->mark = rs_sig_mark();
	return r < 0 ? r : 0;
}

int rs_strict_wait_ready(struct rs_call *c, short events, bool send_side, struct rs_call_wait *cw)
{
	struct rs_exec_opts o = { 0 };
	o.send_side = send_side;
	rs_ring_lock(c->ring);
	start_wait(c, &o, cw);
	int r = cw->timeo_now ? RS_TIMED_OUT : wait_ready(c, events, cw);
	rs_ring_unlock(c->ring);
	return r;
}

int rs_strict_exec(struct rs_call *c, rs_prep_fn prep, void *args, const struct rs_exec_opts *o,
		   struct rs_call_wait *cw)
{
	struct rs_call_wait local = { 0 };
	if (!cw)
		cw = &local;
	bool nonblock = o->force_nonblock || (!o->file && nonblocking(c));
	int res;
	rs_ring_lock(c->ring);
	if (o->file || !o->poll_events) {
		struct rs_wait w = { 0 };
		if (!o->file && !nonblock) {
			start_wait(c, o, cw);
			w.interruptible = true;
			w.never_restart = cw->never_restart;
			w.keep_waiting = true; /* a restarted connect() waits on */
			if (cw->deadline_ns)
				w.timeout_ns = cw->deadline_ns - now_ns();
		}
		res = run_op(c, prep, args, nonblock, &w);
		goto out;
	}
	for (;;) {
		struct rs_wait now = { 0 };
		res = run_op(c, prep, args, true, &now);
		if (res != -EAGAIN)
			break;
		if (nonblock) {
			if (!o->force_nonblock && shared(c) && !really_nonblocking(c)) {
				nonblock = false;
				continue;
			}
			break;
		}
		if (shared(c) && really_nonblocking(c))
			break; /* made nonblocking elsewhere: EAGAIN it is */
		start_wait(c, o, cw);
		if (cw->timeo_now) {
			res = RS_TIMED_OUT;
			break;
		}
		/* A datagram socket shut for reading has nothing to wait
		 * for: a blocking receive returns 0 there, though a
		 * nonblocking one says EAGAIN. */
		bool dgram_rx = !o->send_side && (o->poll_events & POLLIN) &&
				!rs_kind_is_stream(kind(c));
		int w = wait_ready(c, (short)(o->poll_events | (dgram_rx ? POLLRDHUP : 0)), cw);
		if (w == RS_RESTART && !o->restart_to_caller)
			continue;
		if (w) {
			res = w;
			break;
		}
		if (dgram_rx && (cw->revents & POLLRDHUP)) {
			/* The kernel's blocking call cannot block now, and
			 * it alone sets msg_namelen and the rest right. */
			res = RS_USE_LIBC;
			break;
		}
	}
out:
	rs_ring_unlock(c->ring);
	return res;
}

static ssize_t timed_out_as(int res, int err)
{
	return res == RS_TIMED_OUT ? -err : res;
}

/* ---- sockets ------------------------------------------------------------ */

struct recv_args {
	void *buf;
	size_t len;
	int flags;
	struct msghdr *msg;
};

static void prep_recv(struct io_uring_sqe *sqe, const struct rs_call *c, void *p, bool nb)
{
	struct recv_args *a = p;
	int flags = a->flags | (nb ? MSG_DONTWAIT : 0);
	if (a->msg)
		io_uring_prep_recvmsg(sqe, c->fd, a->msg, (unsigned)flags);
	else
		io_uring_prep_recv(sqe, c->fd, a->buf, a->len, flags);
}

static struct rs_exec_opts recv_opts(int flags)
{
	struct rs_exec_opts o = { 0 };
	o.force_nonblock = flags & MSG_DONTWAIT;
	o.poll_events = (flags & MSG_OOB) ? POLLPRI : POLLIN;
	return o;
}

static ssize_t msg_total(const struct msghdr *msg)
{
	struct msghdr m;
	if (rs_safe_copy(&m, msg, sizeof(m)))
		return -EFAULT;
	size_t total = 0;
	for (size_t i = 0; i < m.msg_iovlen && i < IOV_MAX; i++) {
		struct iovec v;
		if (rs_safe_copy(&v, &m.msg_iov[i], sizeof(v)))
			return -EFAULT;
		total += v.iov_len;
	}
	return (ssize_t)total;
}

/* Advance an iovec array past `skip` bytes into `out` (at most 64 entries).
 * Returns the count, or -EFAULT. */
static int iov_rest(const struct iovec *iov, int cnt, size_t skip, struct iovec *out)
{
	int n = 0;
	for (int i = 0; i < cnt && n < 64; i++) {
		struct iovec v;
		if (rs_safe_copy(&v, &iov[i], sizeof(v)))
			return -EFAULT;
		if (skip >= v.iov_len) {
			skip -= v.iov_len;
			continue;
		}
		out[n].iov_base = (char *)v.iov_base + skip;
		out[n].iov_len = v.iov_len - skip;
		skip = 0;
		n++;
	}
	return n;
}

/* A blocking stream receive with MSG_WAITALL: gather until full, EOF, an
 * error or a signal; what was gathered is returned in every case. */
static ssize_t recv_waitall(struct rs_call *c, struct recv_args *first)
{
	struct rs_call_wait cw = { 0 };
	struct rs_exec_opts o = recv_opts(first->flags);
	o.restart_to_caller = true;
	struct msghdr m;
	size_t want = first->len;
	if (first->msg) {
		ssize_t t = msg_total(first->msg);
		if (t < 0)
			return t;
		rs_safe_copy(&m, first->msg, sizeof(m));
		want = (size_t)t;
	}
	if (!want) /* the kernel still runs the call: it sets msg_namelen */
		return timed_out_as(rs_strict_exec(c, prep_recv, first, &o, NULL), EAGAIN);
	size_t done = 0;
	while (done < want) {
		struct recv_args a = *first;
		struct iovec iov[64];
		struct msghdr rest = { 0 };
		if (done && first->msg) {
			/* Name and ancillary data came with the first bytes. */
			int n = iov_rest(m.msg_iov, (int)m.msg_iovlen, done, iov);
			if (n < 0)
				break;
			rest.msg_iov = iov;
			rest.msg_iovlen = (size_t)n;
			a.msg = &rest;
		} else if (done) {
			a.buf = (char *)first->buf + done;
			a.len = first->len - done;
		}
		int r = rs_strict_exec(c, prep_recv, &a, &o, &cw);
		if (r == RS_RESTART) {
			if (done)
				break;
			continue;
		}
		if (r < 0) {
			if (done)
				break;
			return timed_out_as(r, EAGAIN);
		}
		if (!r)
			break; /* end of stream */
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static ssize_t recv_common(struct rs_call *c, struct recv_args *a)
{
	if (a->flags & MSG_ERRQUEUE)
		return RS_USE_LIBC;
	if ((a->flags & MSG_WAITALL) && !(a->flags & MSG_DONTWAIT) && rs_kind_is_stream(kind(c)) &&
	    !nonblocking_for_loop(c)) {
		/* Peeking until the whole length has arrived cannot be
		 * rebuilt from nonblocking tries: the bytes stay queued, so
		 * readiness says nothing about whether more came. */
		if (a->flags & MSG_PEEK)
			return RS_USE_LIBC;
		return recv_waitall(c, a);
	}
	struct rs_exec_opts o = recv_opts(a->flags);
	return timed_out_as(rs_strict_exec(c, prep_recv, a, &o, NULL), EAGAIN);
}

/* recvfrom() with an address: receive into our own storage, then copy out
 * the way move_addr_to_user() does, including its EFAULT after the data was
 * consumed. */
static ssize_t recv_with_addr(struct rs_call *c, void *buf, size_t len, int flags,
			      struct sockaddr *addr, socklen_t *alen)
{
	struct sockaddr_storage ss;
	struct iovec iov = { buf, len };
	struct msghdr m = { 0 };
	m.msg_name = &ss;
	m.msg_namelen = sizeof(ss);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	struct recv_args a = { NULL, len, flags, &m };
	ssize_t res = recv_common(c, &a);
	if (res < 0)
		return res;
	socklen_t ulen;
	if (rs_safe_copy(&ulen, alen, sizeof(ulen)))
		return -EFAULT;
	if ((int)ulen < 0)
		return -EINVAL;
	socklen_t n = ulen < m.msg_namelen ? ulen : m.msg_namelen;
	if (n && rs_safe_copy(addr, &ss, n))
		return -EFAULT;
	if (rs_safe_copy(alen, &m.msg_namelen, sizeof(*alen)))
		return -EFAULT;
	return res;
}

static ssize_t s_recvfrom(struct rs_call *c, void *buf, size_t len, int flags,
			  struct sockaddr *addr, socklen_t *alen)
{
	if (len > INT_MAX)
		len = INT_MAX;
	ssize_t r;
	if (addr) {
		r = (flags & MSG_ERRQUEUE) ? RS_USE_LIBC
					   : recv_with_addr(c, buf, len, flags, addr, alen);
	} else {
		struct recv_args a = { buf, len, flags, NULL };
		r = recv_common(c, &a);
	}
	if (r == RS_USE_LIBC) {
		c->served = RS_C_pt_flags;
		return rs_io_passthrough.recvfrom(c, buf, len, flags, addr, alen);
	}
	return r;
}

static ssize_t s_recvmsg(struct rs_call *c, struct msghdr *msg, int flags)
{
	struct recv_args a = { NULL, 0, flags, msg };
	ssize_t res = recv_common(c, &a);
	if (res == RS_USE_LIBC) {
		c->served = RS_C_pt_flags;
		return rs_io_passthrough.recvmsg(c, msg, flags);
	}
	if (res >= 0 && msg->msg_controllen)
		rs_fd_note_received(msg);
	return res;
}

struct send_args {
	const void *buf;
	size_t len;
	int flags;
	const struct msghdr *msg;
};

static void prep_send(struct io_uring_sqe *sqe, const struct rs_call *c, void *p, bool nb)
{
	struct send_args *a = p;
	/* We raise SIGPIPE ourselves (rs_raise_sigpipe), so the kernel must
	 * not. */
	int flags = (a->flags & ~MSG_WAITALL) | MSG_NOSIGNAL | (nb ? MSG_DONTWAIT : 0);
	if (a->msg)
		io_uring_prep_sendmsg(sqe, c->fd, a->msg, (unsigned)flags);
	else
		io_uring_prep_send(sqe, c->fd, a->buf, a->len, flags);
}

/* A blocking send on a stream socket returns once everything is sent, or
 * with the partial count when a signal, a timeout or an error stops it. */
static ssize_t send_stream_blocking(struct rs_call *c, struct send_args *first, size_t total)
{
	struct rs_call_wait cw = { 0 };
	struct rs_exec_opts o = { 0 };
	o.poll_events = POLLOUT;
	o.send_side = true;
	o.restart_to_caller = true;
	struct msghdr m;
	if (first->msg && rs_safe_copy(&m, first->msg, sizeof(m)))
		return -EFAULT;
	size_t done = 0;
	for (;;) {
		struct send_args a = *first;
		struct iovec iov[64];
		struct msghdr rest = { 0 };
		if (done && first->msg) {
			int n = iov_rest(m.msg_iov, (int)m.msg_iovlen, done, iov);
			if (n < 0)
				return (ssize_t)done;
			rest.msg_iov = iov;
			rest.msg_iovlen = (size_t)n;
			a.msg = &rest; /* ancillary data went with the first bytes */
		} else if (done) {
			a.buf = (const char *)first->buf + done;
			a.len = first->len - done;
		}
		int r = rs_strict_exec(c, prep_send, &a, &o, &cw);
		if (r == RS_RESTART) {
			if (done)
				break;
			continue;
		}
		if (r < 0 || r == RS_TIMED_OUT) {
			if (done)
				break;
			return timed_out_as(r, EAGAIN);
		}
		done += (size_t)r;
		if (done >= total)
			break;
	}
	return (ssize_t)done;
}

static ssize_t send_common(struct rs_call *c, struct send_args *a)
{
	bool nb = (a->flags & MSG_DONTWAIT) || nonblocking_for_loop(c);
	ssize_t res;
	if (!nb && rs_kind_is_stream(kind(c))) {
		ssize_t total = a->msg ? msg_total(a->msg) : (ssize_t)a->len;
		if (total <= 0) {
			struct rs_exec_opts o = { 0 };
			o.poll_events = POLLOUT;
			o.send_side = true;
			res = total < 0 ? total
					: timed_out_as(rs_strict_exec(c, prep_send, a, &o, NULL), EAGAIN);
		} else {
			res = send_stream_blocking(c, a, (size_t)total);
		}
	} else {
		struct rs_exec_opts o = { 0 };
		o.force_nonblock = a->flags & MSG_DONTWAIT;
		o.poll_events = POLLOUT;
		o.send_side = true;
		res = timed_out_as(rs_strict_exec(c, prep_send, a, &o, NULL), EAGAIN);
	}
	/* The kernel raises SIGPIPE for a broken stream only. */
	if (res == -EPIPE && !(a->flags & MSG_NOSIGNAL) && rs_kind_is_stream(kind(c)))
		rs_raise_sigpipe(NULL);
	return res;
}

static ssize_t s_sendto(struct rs_call *c, const void *buf, size_t len, int flags,
			const struct sockaddr *addr, socklen_t alen)
{
	if (len > INT_MAX)
		len = INT_MAX;
	if (!addr) {
		struct send_args a = { buf, len, flags, NULL };
		return send_common(c, &a);
	}
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { 0 };
	m.msg_name = (void *)addr;
	m.msg_namelen = alen;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	struct send_args a = { NULL, 0, flags, &m };
	return send_common(c, &a);
}

static ssize_t s_sendmsg(struct rs_call *c, const struct msghdr *msg, int flags)
{
	struct send_args a = { NULL, 0, flags, msg };
	ssize_t res = send_common(c, &a);
	if (res >= 0)
		rs_fd_note_sent(msg);
	return res;
}

/* The total of an iovec array, checked the way read/write(v) need it: 0
 * returns at once without touching the socket (a receive of 0 bytes would
 * block); sizes where the kernel's range checks matter go to libc. */
static ssize_t iov_total(const struct iovec *iov, int cnt)
{
	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	size_t total = 0;
	bool huge = false;
	struct iovec chunk[32];
	for (int i = 0; i < cnt; i += 32) {
		int n = cnt - i < 32 ? cnt - i : 32;
		if (rs_safe_copy(chunk, iov + i, (size_t)n * sizeof(*iov)))
			return -EFAULT;
		for (int j = 0; j < n; j++) {
			if ((ssize_t)chunk[j].iov_len < 0)
				return -EINVAL;
			if (chunk[j].iov_len > MAX_RW_COUNT)
				huge = true;
			total += chunk[j].iov_len;
		}
	}
	if (huge || total > MAX_RW_COUNT)
		return RS_USE_LIBC;
	return (ssize_t)total;
}

static ssize_t sock_readv(struct rs_call *c, const struct iovec *iov, int cnt)
{
	ssize_t total = iov_total(iov, cnt);
	if (total <= 0)
		return total;
	struct msghdr m = { 0 };
	m.msg_iov = (struct iovec *)iov;
	m.msg_iovlen = (size_t)cnt;
	struct recv_args a = { NULL, 0, 0, &m };
	return recv_common(c, &a);
}

static ssize_t sock_writev(struct rs_call *c, const struct iovec *iov, int cnt)
{
	ssize_t total = iov_total(iov, cnt);
	if (total <= 0)
		return total;
	struct msghdr m = { 0 };
	m.msg_iov = (struct iovec *)iov;
	m.msg_iovlen = (size_t)cnt;
	struct send_args a = { NULL, 0, kind(c) == RS_KIND_UNIX_SEQPACKET ? MSG_EOR : 0, &m };
	return send_common(c, &a);
}

/* ---- pipes and files ---------------------------------------------------- */

struct rw_args {
	bool write;
	void *buf;
	size_t len;
	const struct iovec *iov;
	int cnt;
	off_t off;
	int rw_flags;
};

static void prep_rw(struct io_uring_sqe *sqe, const struct rs_call *c, void *p, bool nb)
{
	struct rw_args *a = p;
	if (a->iov) {
		if (a->write)
			io_uring_prep_writev(sqe, c->fd, a->iov, (unsigned)a->cnt, (uint64_t)a->off);
		else
			io_uring_prep_readv(sqe, c->fd, a->iov, (unsigned)a->cnt, (uint64_t)a->off);
	} else {
		if (a->write)
			io_uring_prep_write(sqe, c->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
		else
			io_uring_prep_read(sqe, c->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
	}
	sqe->rw_flags = a->rw_flags | (nb ? RWF_NOWAIT : 0);
}

static ssize_t file_rw(struct rs_call *c, struct rw_args *a)
{
	struct rs_exec_opts o = { 0 };
	o.file = true;
	return rs_strict_exec(c, prep_rw, a, &o, NULL);
}

static ssize_t pipe_read(struct rs_call *c, struct rw_args *a)
{
	struct rs_exec_opts o = { 0 };
	o.poll_events = POLLIN;
	return rs_strict_exec(c, prep_rw, a, &o, NULL);
}

/* A blocking pipe write returns only when everything is written (or a
 * signal or error stops it after a partial write); io_uring completes a
 * partial pipe write as is, so the rest is written here. */
static ssize_t pipe_write_iov(struct rs_call *c, const struct iovec *iov, int cnt, size_t total)
{
	struct rs_sig_mark mark = rs_sig_mark();
	struct rs_call_wait cw = { 0 };
	struct rs_exec_opts o = { 0 };
	o.poll_events = POLLOUT;
	o.restart_to_caller = true;
	size_t done = 0;
	while (done < total || !total) {
		struct iovec rest[64];
		int n = iov_rest(iov, cnt, done, rest);
		if (n < 0)
			return done ? (ssize_t)done : -EFAULT;
		struct rw_args a = { true, NULL, 0, rest, n, -1, 0 };
		ssize_t res = rs_strict_exec(c, prep_rw, &a, &o, &cw);
		if (res == RS_RESTART) {
			if (done)
				break;
			continue;
		}
		if (res < 0) {
			if (res == -EPIPE)
				rs_raise_sigpipe(&mark);
			if (done)
				break;
			return res;
		}
		done += (size_t)res;
		if (nonblocking_now(c) || !total)
			break;
	}
	return (ssize_t)done;
}

static ssize_t s_read(struct rs_call *c, void *buf, size_t len)
{
	if (len > MAX_RW_COUNT)
		return RS_USE_LIBC;
	if (rs_kind_is_socket(kind(c))) {
		if (!len)
			return 0;
		struct recv_args a = { buf, len, 0, NULL };
		return recv_common(c, &a);
	}
	struct rw_args a = { false, buf, len, NULL, 0, -1, 0 };
	return kind(c) == RS_KIND_PIPE ? pipe_read(c, &a) : file_rw(c, &a);
}

static ssize_t s_write(struct rs_call *c, const void *buf, size_t len)
{
	if (len > MAX_RW_COUNT)
		return RS_USE_LIBC;
	if (rs_kind_is_socket(kind(c))) {
		struct send_args a = { buf, len, kind(c) == RS_KIND_UNIX_SEQPACKET ? MSG_EOR : 0, NULL };
		return send_common(c, &a);
	}
	if (kind(c) == RS_KIND_PIPE) {
		struct iovec iov = { (void *)buf, len };
		return pipe_write_iov(c, &iov, 1, len);
	}
	struct rw_args a = { true, (void *)buf, len, NULL, 0, -1, 0 };
	return file_rw(c, &a);
}

static ssize_t s_readv(struct rs_call *c, const struct iovec *iov, int cnt)
{
	if (rs_kind_is_socket(kind(c)))
		return sock_readv(c, iov, cnt);
	ssize_t total = iov_total(iov, cnt);
	if (total < 0)
		return total;
	struct rw_args a = { false, NULL, 0, iov, cnt, -1, 0 };
	return kind(c) == RS_KIND_PIPE ? pipe_read(c, &a) : file_rw(c, &a);
}

static ssize_t s_writev(struct rs_call *c, const struct iovec *iov, int cnt)
{
	if (rs_kind_is_socket(kind(c)))
		return sock_writev(c, iov, cnt);
	ssize_t total = iov_total(iov, cnt);
	if (total < 0)
		return total;
	if (kind(c) == RS_KIND_PIPE)
		return pipe_write_iov(c, iov, cnt, (size_t)total);
	struct rw_args a = { true, NULL, 0, iov, cnt, -1, 0 };
	return file_rw(c, &a);
}

static ssize_t s_preadv2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off,
			 int flags)
{
	ssize_t total = iov_total(iov, cnt);
	if (total < 0)
		return total;
	struct rw_args a = { false, NULL, 0, iov, cnt, off, flags };
	return file_rw(c, &a);
}

static ssize_t s_pwritev2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off,
			  int flags)
{
	ssize_t total = iov_total(iov, cnt);
	if (total < 0)
		return total;
	struct rw_args a = { true, NULL, 0, iov, cnt, off, flags };
	return file_rw(c, &a);
}

/* ---- sendfile: read the file range into a bounce buffer, then send ----- */

#define SENDFILE_CHUNK RS_RING_BOUNCE_SIZE

static ssize_t s_sendfile(struct rs_call *c, int in_fd, off_t *offp, size_t count)
{
	uint32_t in_st = rs_fd_state(in_fd);
	if (RS_FD_KIND(in_st) != RS_KIND_FILE || !rs_kind_is_socket(kind(c)) ||
	    count > MAX_RW_COUNT)
		return RS_USE_LIBC;
	rs_ring_lock(c->ring);
	char *bounce = rs_ring_bounce(c->ring);
	rs_ring_unlock(c->ring);
	if (!bounce)
		return RS_USE_LIBC;
	off_t off = -1;
	if (offp) {
		if (rs_safe_copy(&off, offp, sizeof(off)))
			return -EFAULT;
		if (off < 0)
			return -EINVAL;
	}
	struct rs_call in = *c;
	in.fd = in_fd;
	in.st = in_st;
	size_t done = 0;
	ssize_t err = 0;
	while (done < count) {
		size_t want = count - done < SENDFILE_CHUNK ? count - done : SENDFILE_CHUNK;
		struct rw_args ra = { false, bounce, want, NULL, 0, offp ? off + (off_t)done : -1, 0 };
		ssize_t got = file_rw(&in, &ra);
		if (got <= 0) {
			err = got;
			break;
		}
		struct send_args sa = { bounce, (size_t)got, 0, NULL };
		ssize_t sent = send_common(c, &sa);
		if (sent < 0) {
			err = sent;
			sent = 0;
		}
		done += (size_t)sent;
		if (sent < got) {
			/* Give back what was read but not sent, as sendfile()
			 * only advances the file position by what it sent. */
			if (!offp)
				lseek(in_fd, -(off_t)(got - sent), SEEK_CUR);
			break;
		}
	}
	if (offp) {
		off_t end = off + (off_t)done;
		if (rs_safe_copy(offp, &end, sizeof(end)))
			return -EFAULT;
	}
	if (done)
		return (ssize_t)done;
	return err;
}

/* ---- accept, connect, shutdown, close ----------------------------------- */

struct accept_args {
	struct sockaddr *addr;
	socklen_t *alen;
	int flags;
};

static void prep_accept(struct io_uring_sqe *sqe, const struct rs_call *c, void *p, bool nb)
{
	struct accept_args *a = p;
	io_uring_prep_accept(sqe, c->fd, a->addr, a->alen, a->flags);
	if (nb)
		sqe->ioprio |= IORING_ACCEPT_DONTWAIT;
}

static int s_accept4(struct rs_call *c, struct sockaddr *addr, socklen_t *alen, int flags)
{
	struct accept_args a = { addr, alen, flags };
	struct rs_exec_opts o = { 0 };
	if (!rs_ring_accept_dontwait()) {
		/* No nonblocking accept in this kernel's io_uring: only a
		 * blocking accept can be served, as one op that waits. */
		if (nonblocking(c) || shared(c)) {
			c->served = RS_C_pt_unsupported;
			return RS_USE_LIBC;
		}
		return (int)timed_out_as(rs_strict_exec(c, prep_accept, &a, &o, NULL), EAGAIN);
	}
	o.poll_events = POLLIN;
	o.force_nonblock = true;
	int fd = rs_strict_exec(c, prep_accept, &a, &o, NULL);
	if (fd != -EAGAIN || nonblocking_now(c))
		return fd;
	/* A blocking accept(2) takes the lowest free number before it waits:
	 * hold that number meanwhile, so fds other threads create get the
	 * numbers they would get without the shim. */
	int hold = RS_REAL(fcntl64)(c->ring->uring.ring_fd, F_DUPFD_CLOEXEC, 0);
	o.force_nonblock = false;
	fd = (int)timed_out_as(rs_strict_exec(c, prep_accept, &a, &o, NULL), EAGAIN);
	if (hold < 0)
		return fd;
	if (fd < 0 || fd > hold) {
		if (fd >= 0) {
			RS_FRESH_FD_BEGIN(); /* fd came from the ring */
			RS_REAL(dup3)(fd, hold, (flags & SOCK_CLOEXEC) ? O_CLOEXEC : 0);
			RS_REAL(close)(fd);
			RS_FRESH_FD_END();
			return hold;
		}
		RS_REAL(close)(hold);
		return fd;
	}
	RS_REAL(close)(hold); /* it got a lower number: one freed meanwhile */
	return fd;
}

struct connect_args {
	const struct sockaddr *addr;
	socklen_t alen;
};

static void prep_connect(struct io_uring_sqe *sqe, const struct rs_call *c, void *p, bool nb)
{
	(void)nb;
	struct connect_args *a = p;
	io_uring_prep_connect(sqe, c->fd, a->addr, a->alen);
}

static int s_connect(struct rs_call *c, const struct sockaddr *addr, socklen_t alen)
{
	/* io_uring always completes a connect, where a nonblocking socket must
	 * see EINPROGRESS; and a TCP connect it sees refused leaves the socket
	 * in another state than connect(2) does (no disconnect). Those go to
	 * libc; a unix or datagram connect never waits. */
	if (nonblocking(c) || shared(c) || kind(c) == RS_KIND_TCP)
		return RS_USE_LIBC;
	struct connect_args a = { addr, alen };
	struct rs_exec_opts o = { 0 };
	o.send_side = true;
	return (int)timed_out_as(rs_strict_exec(c, prep_connect, &a, &o, NULL), EINPROGRESS);
}

static void prep_shutdown(struct io_uring_sqe *sqe, const struct rs_call *c, void *p, bool nb)
{
	(void)nb;
	io_uring_prep_shutdown(sqe, c->fd, *(int *)p);
}

static int s_shutdown(struct rs_call *c, int how)
{
	struct rs_exec_opts o = { 0 };
	o.file = true; /* never waits */
	return rs_strict_exec(c, prep_shutdown, &how, &o, NULL);
}

static void prep_close(struct io_uring_sqe *sqe, const struct rs_call *c, void *p, bool nb)
{
	(void)p;
	(void)nb;
	io_uring_prep_close(sqe, c->fd);
}

static int s_close(struct rs_call *c)
{
	struct rs_exec_opts o = { 0 };
	o.file = true;
	return rs_strict_exec(c, prep_close, NULL, &o, NULL);
}

/* ---- the backend: ops that found a case only libc gets right pass it on - */

#define LIBC_OR(call, pt_call)                                                 \
	do {                                                                   \
		__typeof__(call) r_ = (call);                                  \
		if (r_ != RS_USE_LIBC)                                         \
			return r_;                                             \
		if (c->served == RS_C_served_ring)                             \
			c->served = RS_C_pt_flags;                             \
		return pt_call;                                                \
	} while (0)

static ssize_t x_read(struct rs_call *c, void *buf, size_t len)
{
	LIBC_OR(s_read(c, buf, len), rs_io_passthrough.read(c, buf, len));
}

static ssize_t x_write(struct rs_call *c, const void *buf, size_t len)
{
	LIBC_OR(s_write(c, buf, len), rs_io_passthrough.write(c, buf, len));
}

static ssize_t x_readv(struct rs_call *c, const struct iovec *iov, int cnt)
{
	LIBC_OR(s_readv(c, iov, cnt), rs_io_passthrough.readv(c, iov, cnt));
}

static ssize_t x_writev(struct rs_call *c, const struct iovec *iov, int cnt)
{
	LIBC_OR(s_writev(c, iov, cnt), rs_io_passthrough.writev(c, iov, cnt));
}

static ssize_t x_preadv2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off, int fl)
{
	LIBC_OR(s_preadv2(c, iov, cnt, off, fl), rs_io_passthrough.preadv2(c, iov, cnt, off, fl));
}

static ssize_t x_pwritev2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off, int fl)
{
	LIBC_OR(s_pwritev2(c, iov, cnt, off, fl), rs_io_passthrough.pwritev2(c, iov, cnt, off, fl));
}

static ssize_t x_sendfile(struct rs_call *c, int in_fd, off_t *off, size_t n)
{
	LIBC_OR(s_sendfile(c, in_fd, off, n), rs_io_passthrough.sendfile(c, in_fd, off, n));
}

static int x_accept4(struct rs_call *c, struct sockaddr *addr, socklen_t *alen, int flags)
{
	LIBC_OR(s_accept4(c, addr, alen, flags), rs_io_passthrough.accept4(c, addr, alen, flags));
}

static int x_connect(struct rs_call *c, const struct sockaddr *addr, socklen_t alen)
{
	LIBC_OR(s_connect(c, addr, alen), rs_io_passthrough.connect(c, addr, alen));
}

const struct rs_io rs_io_strict = {
	.read = x_read,
	.write = x_write,
	.readv = x_readv,
	.writev = x_writev,
	.preadv2 = x_preadv2,
	.pwritev2 = x_pwritev2,
	.recvfrom = s_recvfrom,
	.recvmsg = s_recvmsg,
	.sendto = s_sendto,
	.sendmsg = s_sendmsg,
	.sendfile = x_sendfile,
	.accept4 = x_accept4,
	.connect = x_connect,
	.shutdown = s_shutdown,
	.close = s_close,
};
