/* Socket calls, and the socket options the shim must know about. */
#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "batch.h"
#include "entry.h"
#include "internal_fds.h"
#include "io_strict.h"
#include "real.h"

extern void __chk_fail(void) __attribute__((noreturn));

RS_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_recv, fd, RS_OPK_SOCK);
	if (!c.ring)
		return RS_REAL(recv)(fd, buf, n, flags);
	return rs_end(&c, c.io->recvfrom(&c, buf, n, flags, NULL, NULL));
}

RS_EXPORT ssize_t __recv(int fd, void *buf, size_t n, int flags) RS_ALIAS(recv);

RS_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return recv(fd, buf, n, flags);
}

RS_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			   socklen_t *alen)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_recvfrom, fd, RS_OPK_SOCK);
	if (!c.ring)
		return RS_REAL(recvfrom)(fd, buf, n, flags, addr, alen);
	return rs_end(&c, c.io->recvfrom(&c, buf, n, flags, addr, alen));
}

RS_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				 struct sockaddr *addr, socklen_t *alen)
{
	if (n > buflen)
		__chk_fail();
	return recvfrom(fd, buf, n, flags, addr, alen);
}

RS_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_recvmsg, fd, RS_OPK_SOCK);
	if (!c.ring) {
		ssize_t r = RS_REAL(recvmsg)(fd, msg, flags);
		if (r >= 0 && msg->msg_controllen)
			rs_fd_note_received(msg);
		return r;
	}
	return rs_end(&c, c.io->recvmsg(&c, msg, flags));
}

RS_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_send, fd, RS_OPK_SOCK);
	if (!c.ring)
		return RS_REAL(send)(fd, buf, n, flags);
	return rs_end(&c, c.io->sendto(&c, buf, n, flags, NULL, 0));
}

RS_EXPORT ssize_t __send(int fd, const void *buf, size_t n, int flags) RS_ALIAS(send);

RS_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			 const struct sockaddr *addr, socklen_t alen)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_sendto, fd, RS_OPK_SOCK);
	if (!c.ring)
		return RS_REAL(sendto)(fd, buf, n, flags, addr, alen);
	return rs_end(&c, c.io->sendto(&c, buf, n, flags, addr, alen));
}

RS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_sendmsg, fd, RS_OPK_SOCK);
	if (!c.ring) {
		ssize_t r = RS_REAL(sendmsg)(fd, msg, flags);
		if (r >= 0)
			rs_fd_note_sent(msg);
		return r;
	}
	return rs_end(&c, c.io->sendmsg(&c, msg, flags));
}

/* recvmmsg/sendmmsg are passed through: they only need the fd table kept
 * true about descriptors they carry. */
RS_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		       struct timespec *timeout)
{
	if (rs_ready())
		rs_count(RS_C_call_recvmmsg);
	int r = RS_REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
	for (int i = 0; i < r; i++)
		if (vec[i].msg_hdr.msg_controllen)
			rs_fd_note_received(&vec[i].msg_hdr);
	return r;
}

RS_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	if (rs_ready())
		rs_count(RS_C_call_sendmmsg);
	int r = RS_REAL(sendmmsg)(fd, vec, vlen, flags);
	for (int i = 0; i < r; i++)
		rs_fd_note_sent(&vec[i].msg_hdr);
	return r;
}

RS_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t count)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_sendfile, out_fd, RS_OPK_SOCK);
	if (!c.ring)
		return RS_REAL(sendfile64)(out_fd, in_fd, off, count);
	return rs_end(&c, c.io->sendfile(&c, in_fd, off, count));
}

RS_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *off, size_t count)
	RS_ALIAS(sendfile);

RS_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_accept, fd, RS_OPK_SOCK);
	int r = c.ring ? (int)rs_end(&c, c.io->accept4(&c, addr, alen, flags))
		       : RS_REAL(accept4)(fd, addr, alen, flags);
	if (r >= 0)
		rs_track_accepted(fd, r, flags);
	return r;
}

RS_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_accept, fd, RS_OPK_SOCK);
	int r = c.ring ? (int)rs_end(&c, c.io->accept4(&c, addr, alen, 0))
		       : RS_REAL(accept)(fd, addr, alen);
	if (r >= 0)
		rs_track_accepted(fd, r, 0);
	return r;
}

RS_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t alen)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_connect, fd, RS_OPK_SOCK);
	int r = c.ring ? (int)rs_end(&c, c.io->connect(&c, addr, alen))
		       : RS_REAL(connect)(fd, addr, alen);
	if (r == 0 && rs_kind_is_stream(RS_FD_KIND(c.st)))
		rs_fd_set_flags(fd, RS_FD_STREAM_CONNECTED, 0);
	return r;
}

RS_EXPORT int __connect(int fd, const struct sockaddr *addr, socklen_t alen)
	RS_ALIAS(connect);

RS_EXPORT int shutdown(int fd, int how)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_shutdown, fd, RS_OPK_SOCK);
	if (!c.ring)
		return RS_REAL(shutdown)(fd, how);
	if (rs_cfg.mode == RS_MODE_BATCH && (how == SHUT_RD || how == SHUT_RDWR)) {
		/* Our own SHUT_RD makes a TCP receive return 0 only while the
		 * receive queue is empty: bytes the peer sends afterwards are
		 * still queued and read. A receive armed ahead would take that
		 * 0 as the end of the stream for good (fuzz seed 183, --avoid
		 * tcpshutrd). So receiving ahead stops first - what it took
		 * stays in the stash and is read first - and reads go to the
		 * kernel from then on. */
		rs_fd_set_flags(fd, RS_FD_SHUT_RD, 0);
		rs_batch_no_receive_ahead(fd);
	}
	return (int)rs_end(&c, c.io->shutdown(&c, how));
}

RS_EXPORT int socket(int domain, int type, int protocol)
{
	int fd = RS_FDGATE(RS_REAL(socket)(domain, type, protocol));
	if (fd >= 0 && rs_ready())
		rs_fd_created(fd, rs_kind_from_socket(domain, type),
			      ((type & SOCK_NONBLOCK) ? RS_FD_NONBLOCK : 0) |
				      ((type & SOCK_CLOEXEC) ? RS_FD_CLOEXEC : 0));
	return fd;
}

/* A listening socket is the one kind whose readiness comes from the accept
 * queue in batch mode. */
RS_EXPORT int listen(int fd, int backlog)
{
	int r = RS_REAL(listen)(fd, backlog);
	if (r == 0 && rs_ready())
		rs_fd_set_flags(fd, RS_FD_LISTENING, 0);
	return r;
}

RS_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
	int r = RS_FDGATE(RS_REAL(socketpair)(domain, type, protocol, sv));
	if (r == 0 && rs_ready()) {
		unsigned flags = ((type & SOCK_NONBLOCK) ? RS_FD_NONBLOCK : 0) |
				 ((type & SOCK_CLOEXEC) ? RS_FD_CLOEXEC : 0);
		enum rs_kind k = rs_kind_from_socket(domain, type);
		if (rs_kind_is_stream(k))
			flags |= RS_FD_STREAM_CONNECTED;
		rs_fd_created(sv[0], k, flags);
		rs_fd_created(sv[1], k, flags);
	}
	return r;
}

RS_EXPORT int setsockopt(int fd, int level, int name, const void *optval, socklen_t len)
{
	int r = RS_REAL(setsockopt)(fd, level, name, optval, len);
	if (r != 0 || level != SOL_SOCKET || !rs_ready())
		return r;
	if (name == SO_LINGER && len >= sizeof(struct linger)) {
		/* The kernel read it: so can we. close() must honour it. */
		const struct linger *l = optval;
		struct rs_fd *e = rs_fd_entry(fd);
		if (e)
			RS_FD_STORE(e, linger_s, l->l_linger);
		rs_fd_set_flags(fd, l->l_onoff ? RS_FD_LINGER : 0, l->l_onoff ? 0 : RS_FD_LINGER);
		return r;
	}
	if (name == SO_RCVLOWAT && len >= sizeof(int)) {
		/* Below the low-water mark the kernel does not wake a receive
		 * armed ahead: such sockets read straight from the kernel. */
		bool on = *(const int *)optval > 1;
		rs_fd_set_flags(fd, on ? RS_FD_RCVLOWAT : 0, on ? 0 : RS_FD_RCVLOWAT);
		if (on && rs_cfg.mode == RS_MODE_BATCH)
			rs_batch_no_receive_ahead(fd);
		return r;
	}
	/* On x86-64 the _OLD and _NEW timeval layouts are the same. */
	if (name == SO_RCVTIMEO || name == SO_SNDTIMEO
#ifdef SO_RCVTIMEO_NEW
	    || name == SO_RCVTIMEO_NEW || name == SO_SNDTIMEO_NEW
#endif
	) {
		struct rs_fd *e = rs_fd_entry(fd);
		uint32_t st = rs_fd_state(fd);
		if (!e || RS_FD_KIND(st) == RS_KIND_UNKNOWN)
			return r;
		uint64_t us = rs_strict_timeo_from_user(fd, name, optval);
		bool rcv = name == SO_RCVTIMEO
#ifdef SO_RCVTIMEO_NEW
			   || name == SO_RCVTIMEO_NEW
#endif
			;
		if (rcv)
			RS_FD_STORE(e, rcvtimeo_us, us);
		else
			RS_FD_STORE(e, sndtimeo_us, us);
		if (RS_FD_LOAD(e, rcvtimeo_us) || RS_FD_LOAD(e, sndtimeo_us))
			rs_fd_set_flags(fd, RS_FD_TIMEO, 0);
		else
			rs_fd_set_flags(fd, 0, RS_FD_TIMEO);
	}
	return r;
}

/* SO_ERROR also reports the error of a queued send that failed after
 * write() had returned, as the kernel reports a pending socket error. */
RS_EXPORT int getsockopt(int fd, int level, int name, void *optval, socklen_t *len)
{
	if (level == SOL_SOCKET && name == SO_ERROR && rs_ready() &&
	    rs_cfg.mode == RS_MODE_BATCH) {
		struct rs_fdb *b = rs_fdb_get(fd);
		if (b) {
			pthread_mutex_lock(&b->lock);
			int err = rs_fdb_take_error(b);
			pthread_mutex_unlock(&b->lock);
			if (err) {
				int r = RS_REAL(getsockopt)(fd, level, name, optval, len);
				if (r == 0 && *len >= sizeof(int))
					*(int *)optval = err;
				return r;
			}
		}
	}
	return RS_REAL(getsockopt)(fd, level, name, optval, len);
}
