#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "signals.h"
#include "vg.h"

void rs_vg_snap(struct rs_vg_snap *s, const struct io_uring_sqe *sqe)
{
	s->sqe = *sqe;
	s->addrlen = 0;
	if (sqe->opcode == IORING_OP_ACCEPT && sqe->addr2) {
		socklen_t len;
		if (rs_safe_copy(&len, (const void *)(uintptr_t)sqe->addr2, sizeof(len)) == 0)
			s->addrlen = len;
	}
}

/* `n` bytes received into an iovec array, in order. */
static void iov_defined(const struct iovec *iov, size_t cnt, size_t n)
{
	for (size_t i = 0; i < cnt && n; i++) {
		struct iovec v;
		if (rs_safe_copy(&v, &iov[i], sizeof(v)))
			return;
		size_t k = v.iov_len < n ? v.iov_len : n;
		RS_VG_DEFINED(v.iov_base, k);
		n -= k;
	}
}

void rs_vg_completed(const struct rs_vg_snap *s, int res)
{
	const struct io_uring_sqe *sqe = &s->sqe;
	void *addr = (void *)(uintptr_t)sqe->addr;
	if (res < 0)
		return;
	switch (sqe->opcode) {
	case IORING_OP_READ:
	case IORING_OP_RECV:
		if (!(sqe->flags & IOSQE_BUFFER_SELECT)) /* rx.c marks its buffers */
			RS_VG_DEFINED(addr, (size_t)res < sqe->len ? (size_t)res : sqe->len);
		break;
	case IORING_OP_READV:
		iov_defined(addr, sqe->len, (size_t)res);
		break;
	case IORING_OP_RECVMSG: {
		struct msghdr *msg = addr;
		/* The kernel writes these back into the program's msghdr. */
		RS_VG_DEFINED(&msg->msg_namelen, sizeof(msg->msg_namelen));
		RS_VG_DEFINED(&msg->msg_controllen, sizeof(msg->msg_controllen));
		RS_VG_DEFINED(&msg->msg_flags, sizeof(msg->msg_flags));
		if (msg->msg_name)
			RS_VG_DEFINED(msg->msg_name, msg->msg_namelen);
		if (msg->msg_control)
			RS_VG_DEFINED(msg->msg_control, msg->msg_controllen);
		if (!(sqe->flags & IOSQE_BUFFER_SELECT))
			iov_defined(msg->msg_iov, msg->msg_iovlen, (size_t)res);
		break;
	}
	case IORING_OP_ACCEPT:
		if (sqe->addr2) {
			socklen_t *lenp = (socklen_t *)(uintptr_t)sqe->addr2;
			RS_VG_DEFINED(lenp, sizeof(*lenp));
			if (addr)
				RS_VG_DEFINED(addr, *lenp < s->addrlen ? *lenp : s->addrlen);
		}
		break;
	default:
		break;
	}
}
