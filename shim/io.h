/* The seam between the interposed entry points and the two ways of serving a
 * call (redis ae.c style): rs_io_passthrough (the real libc call) and the
 * ring backends (rs_io_strict; batch mode builds on it). Entry points pick
 * one per call in rs_begin() and never know which one ran.
 *
 * Every op returns the result or -errno; only the entry layer sets errno. */
#ifndef RS_IO_H
#define RS_IO_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fdtable.h"
#include "ring.h"
#include "stats.h"

struct rs_io;

struct rs_call {
	int fd;
	uint32_t st; /* fd state word (kind and flags) */
	struct rs_ring *ring; /* NULL when passing through */
	const struct rs_io *io;
	enum rs_counter served;
	int saved_errno;
	struct rs_sig_mark mark;
	/* A hidden copy of fd taken when another thread closed fd while this
	 * call waited on it (-1: none): the call goes on with the file, as a
	 * blocked system call would. Closed by rs_end(). */
	int held_fd;
	/* The thread has no ring of its own and borrowed the lending ring
	 * for this call (rs_ring_borrow); rs_end gives it back. */
	bool borrowed;
};

/* Close the call's held copy of its fd (io_strict.c). */
void rs_call_drop_held(struct rs_call *c);

struct rs_io {
	ssize_t (*read)(struct rs_call *, void *, size_t);
	ssize_t (*write)(struct rs_call *, const void *, size_t);
	ssize_t (*readv)(struct rs_call *, const struct iovec *, int);
	ssize_t (*writev)(struct rs_call *, const struct iovec *, int);
	/* Positional forms; offset -1 means "the file position" (preadv2). */
	ssize_t (*preadv2)(struct rs_call *, const struct iovec *, int, off_t, int);
	ssize_t (*pwritev2)(struct rs_call *, const struct iovec *, int, off_t, int);
	ssize_t (*recvfrom)(struct rs_call *, void *, size_t, int, struct sockaddr *,
			    socklen_t *);
	ssize_t (*recvmsg)(struct rs_call *, struct msghdr *, int);
	ssize_t (*sendto)(struct rs_call *, const void *, size_t, int,
			  const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(struct rs_call *, const struct msghdr *, int);
	ssize_t (*sendfile)(struct rs_call *, int in_fd, off_t *, size_t);
	int (*accept4)(struct rs_call *, struct sockaddr *, socklen_t *, int);
	int (*connect)(struct rs_call *, const struct sockaddr *, socklen_t);
	int (*shutdown)(struct rs_call *, int);
	int (*close)(struct rs_call *);
};

extern const struct rs_io rs_io_passthrough;
extern const struct rs_io rs_io_strict;

#endif
