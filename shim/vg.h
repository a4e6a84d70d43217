/* Memcheck cannot see what the kernel writes through io_uring (it sees the
 * system calls, not the ring): received bytes, returned addresses and
 * lengths would look uninitialised to it. The completions tell it here.
 * Everything is behind RUNNING_ON_VALGRIND, a few instructions natively. */
#ifndef RS_VG_H
#define RS_VG_H

#include <stddef.h>

#include <liburing.h>

#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define RS_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#define RS_VG_DEFINED(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
#define RS_ON_VALGRIND() 0
#define RS_VG_DEFINED(p, n) ((void)(p), (void)(n))
#endif

/* What an SQE asked the kernel to fill, taken before submission (the SQE
 * slot is reused once it is consumed). */
struct rs_vg_snap {
	struct io_uring_sqe sqe;
	unsigned addrlen; /* accept: the buffer's length going in */
};

void rs_vg_snap(struct rs_vg_snap *s, const struct io_uring_sqe *sqe);
/* The op completed with `res`: mark what it wrote as defined. */
void rs_vg_completed(const struct rs_vg_snap *s, int res);

#endif
