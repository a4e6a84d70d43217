/* The strict ring backend: every call becomes one (or, for partial blocking
 * writes and sendfile, a few) io_uring ops on the calling thread's ring, and
 * the call returns only after their CQEs are in. io_uring ignores O_NONBLOCK
 * on sockets and pipes (it arms a poll instead), so nonblocking behaviour is
 * asked for explicitly with MSG_DONTWAIT / RWF_NOWAIT. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "io_strict.h"
#include "log.h"
#include "real.h"
#include "signals.h"

#ifndef IORING_ACCEPT_DONTWAIT
#define IORING_ACCEPT_DONTWAIT (1U << 1)
#endif

/* The kernel clamps a single read or write to this. */
#define MAX_RW_COUNT ((size_t)(INT_MAX & ~4095))

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

uint64_t rs_strict_timeout_us(const struct rs_call *c, bool send_side)
{
	if (!(RS_FD_FLAGS(c->st) & RS_FD_TIMEO))
		return 0;
	struct rs_fd *e = rs_fd_peek(c->fd);
	if (!e)
		return 0;
	return send_side ? e->sndtimeo_us : e->rcvtimeo_us;
}

int rs_strict_exec(struct rs_call *c, rs_prep_fn prep, void *args, const struct rs_exec_opts *o)
{
	bool nonblock = o->force_nonblock || (!o->file && nonblocking(c));
	rs_ring_lock(c->ring);
	int res;
	for (;;) {
		struct rs_op op = { 0 };
		struct io_uring_sqe *sqe = rs_ring_sqe(c->ring);
		if (unlikely(!sqe)) {
			rs_warn("the submission queue stays full; failing the call with EBUSY");
			res = -EBUSY;
			break;
		}
		prep(sqe, c, args, nonblock);
		sqe->user_data = (uint64_t)(uintptr_t)&op;

		struct rs_wait w = { 0 };
		bool may_block = !nonblock && !o->file;
		if (may_block) {
			w.interruptible = true;
			w.never_restart = o->timeout_us != 0;
			w.keep_waiting = o->keep_waiting;
			w.timeout_ns = o->timeout_us * 1000;
		}
		if (may_block && shared(c)) {
			/* Complete at once if the kernel can; only a call that
			 * would really block needs to know the fd's mode. */
			rs_ring_submit(c->ring);
			rs_ring_reap(c->ring);
			if (op.done)
				res = op.res;
			else if (really_nonblocking(c)) {
				res = rs_ring_cancel_wait(c->ring, &op);
				if (res == -ECANCELED)
					res = -EAGAIN;
			} else
				res = rs_ring_run(c->ring, &op, &w);
		} else {
			res = rs_ring_run(c->ring, &op, &w);
		}
		if (res == RS_RESTART && !o->restart_to_caller)
			continue;
		if (res == -EAGAIN && nonblock && !o->force_nonblock && !o->file && shared(c) &&
		    !really_nonblocking(c)) {
			nonblock = false;
			continue;
		}
		break;
	}
	rs_ring_unlock(c->ring);
	return res;
}

/* ---- sockets ---------------------------------------------------------- */

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

static ssize_t timed_out_as(int res, int err)
{
	return res == RS_TIMED_OUT ? -err : res;
}

static struct rs_exec_opts sock_opts(const struct rs_call *c, bool send_side, int flags)
{
	struct rs_exec_opts o = { 0 };
	o.force_nonblock = flags & MSG_DONTWAIT;
	o.timeout_us = rs_strict_timeout_us(c, send_side);
	return o;
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
	struct recv_args a = { NULL, 0, flags, &m };
	struct rs_exec_opts o = sock_opts(c, false, flags);
	ssize_t res = timed_out_as(rs_strict_exec(c, prep_recv, &a, &o), EAGAIN);
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
	if (flags & MSG_ERRQUEUE) {
		c->served = RS_C_pt_flags;
		return rs_io_passthrough.recvfrom(c, buf, len, flags, addr, alen);
	}
	if (len > INT_MAX)
		len = INT_MAX;
	if (addr)
		return recv_with_addr(c, buf, len, flags, addr, alen);
	struct recv_args a = { buf, len, flags, NULL };
	struct rs_exec_opts o = sock_opts(c, false, flags);
	return timed_out_as(rs_strict_exec(c, prep_recv, &a, &o), EAGAIN);
}

static ssize_t s_recvmsg(struct rs_call *c, struct msghdr *msg, int flags)
{
	if (flags & MSG_ERRQUEUE) {
		c->served = RS_C_pt_flags;
		return rs_io_passthrough.recvmsg(c, msg, flags);
	}
	struct recv_args a = { NULL, 0, flags, msg };
	struct rs_exec_opts o = sock_opts(c, false, flags);
	ssize_t res = timed_out_as(rs_strict_exec(c, prep_recv, &a, &o), EAGAIN);
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
	 * not; a blocking stream send must send everything, as send(2) does. */
	int flags = (a->flags & ~MSG_WAITALL) | MSG_NOSIGNAL;
	if (nb)
		flags |= MSG_DONTWAIT;
	else if (rs_kind_is_stream(kind(c)))
		flags |= MSG_WAITALL;
	if (a->msg)
		io_uring_prep_sendmsg(sqe, c->fd, a->msg, (unsigned)flags);
	else
		io_uring_prep_send(sqe, c->fd, a->buf, a->len, flags);
}

static ssize_t send_common(struct rs_call *c, struct send_args *a, bool sigpipe)
{
	struct rs_exec_opts o = sock_opts(c, true, a->flags);
	ssize_t res = timed_out_as(rs_strict_exec(c, prep_send, a, &o), EAGAIN);
	if (res == -EPIPE && sigpipe)
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
		return send_common(c, &a, !(flags & MSG_NOSIGNAL));
	}
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { 0 };
	m.msg_name = (void *)addr;
	m.msg_namelen = alen;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	struct send_args a = { NULL, 0, flags, &m };
	return send_common(c, &a, !(flags & MSG_NOSIGNAL));
}

static ssize_t s_sendmsg(struct rs_call *c, const struct msghdr *msg, int flags)
{
	struct send_args a = { NULL, 0, flags, msg };
	ssize_t res = send_common(c, &a, !(flags & MSG_NOSIGNAL));
	if (res >= 0)
		rs_fd_note_sent(msg);
	return res;
}

/* Sum an iovec array without trusting the pointer: read/write(v) on a
 * socket return 0 at once for zero bytes, where a receive would block. */
static ssize_t iov_total(const struct iovec *iov, int cnt)
{
	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	size_t total = 0;
	struct iovec chunk[32];
	for (int i = 0; i < cnt; i += 32) {
		int n = cnt - i < 32 ? cnt - i : 32;
		if (rs_safe_copy(chunk, iov + i, (size_t)n * sizeof(*iov)))
			return -EFAULT;
		for (int j = 0; j < n; j++) {
			if ((ssize_t)chunk[j].iov_len < 0)
				return -EINVAL;
			total += chunk[j].iov_len;
			if ((ssize_t)total < 0)
				return -EINVAL;
		}
	}
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
	struct rs_exec_opts o = sock_opts(c, false, 0);
	return timed_out_as(rs_strict_exec(c, prep_recv, &a, &o), EAGAIN);
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
	return send_common(c, &a, true);
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
	return rs_strict_exec(c, prep_rw, a, &o);
}

/* A blocking pipe write returns only when everything is written (or a
 * signal or error stops it after a partial write); io_uring completes a
 * partial pipe write as is, so the rest is resubmitted here. */
static ssize_t pipe_write(struct rs_call *c, const void *buf, size_t len)
{
	struct rs_sig_mark mark = rs_sig_mark();
	size_t done = 0;
	struct rs_exec_opts o = { 0 };
	o.restart_to_caller = true;
	do {
		struct rw_args a = { true, (char *)buf + done, len - done, NULL, 0, -1, 0 };
		ssize_t res = rs_strict_exec(c, prep_rw, &a, &o);
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
		if (nonblocking(c))
			break;
	} while (done < len);
	return (ssize_t)done;
}

static ssize_t pipe_writev(struct rs_call *c, const struct iovec *iov, int cnt)
{
	ssize_t total = iov_total(iov, cnt);
	if (total <= 0)
		return total;
	struct rs_sig_mark mark = rs_sig_mark();
	struct rs_exec_opts o = { 0 };
	o.restart_to_caller = true;
	size_t done = 0;
	while (done < (size_t)total) {
		/* Rebuild the iovecs from the first unwritten byte on. */
		struct iovec rest[64];
		int n = 0;
		size_t skip = done;
		for (int i = 0; i < cnt && n < 64; i++) {
			struct iovec v;
			if (rs_safe_copy(&v, &iov[i], sizeof(v)))
				return done ? (ssize_t)done : -EFAULT;
			if (skip >= v.iov_len) {
				skip -= v.iov_len;
				continue;
			}
			rest[n].iov_base = (char *)v.iov_base + skip;
			rest[n].iov_len = v.iov_len - skip;
			skip = 0;
			n++;
		}
		struct rw_args a = { true, NULL, 0, rest, n, -1, 0 };
		ssize_t res = rs_strict_exec(c, prep_rw, &a, &o);
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
		if (nonblocking(c))
			break;
	}
	return (ssize_t)done;
}

static ssize_t pipe_read(struct rs_call *c, struct rw_args *a)
{
	struct rs_exec_opts o = { 0 };
	return rs_strict_exec(c, prep_rw, a, &o);
}

static ssize_t s_read(struct rs_call *c, void *buf, size_t len)
{
	if (len > MAX_RW_COUNT)
		len = MAX_RW_COUNT;
	if (rs_kind_is_socket(kind(c))) {
		if (!len)
			return 0;
		struct recv_args a = { buf, len, 0, NULL };
		struct rs_exec_opts o = sock_opts(c, false, 0);
		return timed_out_as(rs_strict_exec(c, prep_recv, &a, &o), EAGAIN);
	}
	struct rw_args a = { false, buf, len, NULL, 0, -1, 0 };
	return kind(c) == RS_KIND_PIPE ? pipe_read(c, &a) : file_rw(c, &a);
}

static ssize_t s_write(struct rs_call *c, const void *buf, size_t len)
{
	if (len > MAX_RW_COUNT)
		len = MAX_RW_COUNT;
	if (rs_kind_is_socket(kind(c))) {
		struct send_args a = { buf, len, kind(c) == RS_KIND_UNIX_SEQPACKET ? MSG_EOR : 0, NULL };
		return send_common(c, &a, true);
	}
	if (kind(c) == RS_KIND_PIPE)
		return pipe_write(c, buf, len);
	struct rw_args a = { true, (void *)buf, len, NULL, 0, -1, 0 };
	return file_rw(c, &a);
}

static ssize_t s_readv(struct rs_call *c, const struct iovec *iov, int cnt)
{
	if (rs_kind_is_socket(kind(c)))
		return sock_readv(c, iov, cnt);
	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	struct rw_args a = { false, NULL, 0, iov, cnt, -1, 0 };
	return kind(c) == RS_KIND_PIPE ? pipe_read(c, &a) : file_rw(c, &a);
}

static ssize_t s_writev(struct rs_call *c, const struct iovec *iov, int cnt)
{
	if (rs_kind_is_socket(kind(c)))
		return sock_writev(c, iov, cnt);
	if (kind(c) == RS_KIND_PIPE)
		return pipe_writev(c, iov, cnt);
	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	struct rw_args a = { true, NULL, 0, iov, cnt, -1, 0 };
	return file_rw(c, &a);
}

static ssize_t s_preadv2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off,
			 int flags)
{
	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	struct rw_args a = { false, NULL, 0, iov, cnt, off, flags };
	return file_rw(c, &a);
}

static ssize_t s_pwritev2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off,
			  int flags)
{
	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	struct rw_args a = { true, NULL, 0, iov, cnt, off, flags };
	return file_rw(c, &a);
}

/* ---- sendfile: read the file range into a bounce buffer, then send ----- */

#define SENDFILE_CHUNK RS_RING_BOUNCE_SIZE

static ssize_t s_sendfile(struct rs_call *c, int in_fd, off_t *offp, size_t count)
{
	uint32_t in_st = rs_fd_state(in_fd);
	if (RS_FD_KIND(in_st) != RS_KIND_FILE || !rs_kind_is_socket(kind(c))) {
		c->served = RS_C_pt_fd_kind;
		return rs_io_passthrough.sendfile(c, in_fd, offp, count);
	}
	char *bounce = rs_ring_bounce(c->ring);
	if (!bounce) {
		c->served = RS_C_pt_fallback;
		return rs_io_passthrough.sendfile(c, in_fd, offp, count);
	}
	off_t off = -1;
	if (offp) {
		if (rs_safe_copy(&off, offp, sizeof(off)))
			return -EFAULT;
		if (off < 0)
			return -EINVAL;
	}
	if (count > MAX_RW_COUNT)
		count = MAX_RW_COUNT;
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
		ssize_t sent = send_common(c, &sa, true);
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

/* ---- accept, connect, shutdown, close ---------------------------------- */

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
	if (nonblocking(c) && !rs_ring_accept_dontwait) {
		c->served = RS_C_pt_unsupported;
		return rs_io_passthrough.accept4(c, addr, alen, flags);
	}
	struct accept_args a = { addr, alen, flags };
	struct rs_exec_opts o = sock_opts(c, false, 0);
	return (int)timed_out_as(rs_strict_exec(c, prep_accept, &a, &o), EAGAIN);
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
	/* io_uring always completes a connect; a nonblocking socket must see
	 * EINPROGRESS instead, which only the real call gives. */
	if (nonblocking(c) || shared(c)) {
		c->served = RS_C_pt_flags;
		return rs_io_passthrough.connect(c, addr, alen);
	}
	struct connect_args a = { addr, alen };
	struct rs_exec_opts o = sock_opts(c, true, 0);
	/* A restarted connect() keeps waiting for the same handshake. */
	o.keep_waiting = true;
	return (int)timed_out_as(rs_strict_exec(c, prep_connect, &a, &o), EINPROGRESS);
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
	return rs_strict_exec(c, prep_shutdown, &how, &o);
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
	return rs_strict_exec(c, prep_close, NULL, &o);
}

const struct rs_io rs_io_strict = {
	.read = s_read,
	.write = s_write,
	.readv = s_readv,
	.writev = s_writev,
	.preadv2 = s_preadv2,
	.pwritev2 = s_pwritev2,
	.recvfrom = s_recvfrom,
	.recvmsg = s_recvmsg,
	.sendto = s_sendto,
	.sendmsg = s_sendmsg,
	.sendfile = s_sendfile,
	.accept4 = s_accept4,
	.connect = s_connect,
	.shutdown = s_shutdown,
	.close = s_close,
};
