/* The passthrough backend: the real libc call, in the -errno convention. */
#include <errno.h>

#include "io.h"
#include "real.h"

#define RET(expr)                                                              \
	do {                                                                   \
		__typeof__(expr) r_ = (expr);                                  \
		return r_ < 0 ? -errno : r_;                                   \
	} while (0)

static ssize_t pt_read(struct rs_call *c, void *buf, size_t n)
{
	RET(RS_REAL(read)(c->fd, buf, n));
}

static ssize_t pt_write(struct rs_call *c, const void *buf, size_t n)
{
	RET(RS_REAL(write)(c->fd, buf, n));
}

static ssize_t pt_readv(struct rs_call *c, const struct iovec *iov, int cnt)
{
	RET(RS_REAL(readv)(c->fd, iov, cnt));
}

static ssize_t pt_writev(struct rs_call *c, const struct iovec *iov, int cnt)
{
	RET(RS_REAL(writev)(c->fd, iov, cnt));
}

static ssize_t pt_preadv2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off,
			  int flags)
{
	RET(RS_REAL(preadv64v2)(c->fd, iov, cnt, off, flags));
}

static ssize_t pt_pwritev2(struct rs_call *c, const struct iovec *iov, int cnt, off_t off,
			   int flags)
{
	RET(RS_REAL(pwritev64v2)(c->fd, iov, cnt, off, flags));
}

static ssize_t pt_recvfrom(struct rs_call *c, void *buf, size_t n, int flags,
			   struct sockaddr *addr, socklen_t *alen)
{
	RET(RS_REAL(recvfrom)(c->fd, buf, n, flags, addr, alen));
}

static ssize_t pt_recvmsg(struct rs_call *c, struct msghdr *msg, int flags)
{
	RET(RS_REAL(recvmsg)(c->fd, msg, flags));
}

static ssize_t pt_sendto(struct rs_call *c, const void *buf, size_t n, int flags,
			 const struct sockaddr *addr, socklen_t alen)
{
	RET(RS_REAL(sendto)(c->fd, buf, n, flags, addr, alen));
}

static ssize_t pt_sendmsg(struct rs_call *c, const struct msghdr *msg, int flags)
{
	RET(RS_REAL(sendmsg)(c->fd, msg, flags));
}

static ssize_t pt_sendfile(struct rs_call *c, int in_fd, off_t *off, size_t n)
{
	RET(RS_REAL(sendfile64)(c->fd, in_fd, off, n));
}

static int pt_accept4(struct rs_call *c, struct sockaddr *addr, socklen_t *alen, int flags)
{
	RET(RS_REAL(accept4)(c->fd, addr, alen, flags));
}

static int pt_connect(struct rs_call *c, const struct sockaddr *addr, socklen_t alen)
{
	RET(RS_REAL(connect)(c->fd, addr, alen));
}

static int pt_shutdown(struct rs_call *c, int how)
{
	RET(RS_REAL(shutdown)(c->fd, how));
}

static int pt_close(struct rs_call *c)
{
	RET(RS_REAL(close)(c->fd));
}

const struct rs_io rs_io_passthrough = {
	.read = pt_read,
	.write = pt_write,
	.readv = pt_readv,
	.writev = pt_writev,
	.preadv2 = pt_preadv2,
	.pwritev2 = pt_pwritev2,
	.recvfrom = pt_recvfrom,
	.recvmsg = pt_recvmsg,
	.sendto = pt_sendto,
	.sendmsg = pt_sendmsg,
	.sendfile = pt_sendfile,
	.accept4 = pt_accept4,
	.connect = pt_connect,
	.shutdown = pt_shutdown,
	.close = pt_close,
};
