/* Building blocks of the strict backend, shared with batch mode. */
#ifndef RS_IO_STRICT_H
#define RS_IO_STRICT_H

#include "io.h"

typedef void (*rs_prep_fn)(struct io_uring_sqe *sqe, const struct rs_call *c, void *args,
			   bool nonblock);

/* Socket timeouts as the kernel applies them (sock_set_timeout). */
#define RS_TIMEO_NONE 0
#define RS_TIMEO_NOW UINT64_MAX /* a negative timeout: give up at once */

struct rs_exec_opts {
	bool force_nonblock;	/* MSG_DONTWAIT: never wait, whatever the fd */
	bool file;		/* regular-file semantics: no readiness wait */
	bool restart_to_caller; /* return RS_RESTART instead of trying again */
	short poll_events;	/* readiness to wait for when the op would block;
				 * 0: one op that waits in the kernel (connect) */
	bool send_side;		/* SO_SNDTIMEO rather than SO_RCVTIMEO */
};

/* Carried across the ops of one call (a blocking send made of several
 * partial sends): when it started, which signals it has seen. */
struct rs_call_wait {
	bool started;
	struct rs_sig_mark mark;
	uint64_t deadline_ns; /* 0: none */
	bool timeo_now;
	bool never_restart;
	short revents; /* of the last readiness wait */
};

/* Run one op the way the fd's mode says: nonblocking fds try once; blocking
 * ones try, and when the op would block wait for readiness with a poll (which
 * moves no data, so a signal can end the wait without losing a byte) and
 * try again. Returns the op's result, -EINTR, RS_RESTART (only with
 * restart_to_caller) or RS_TIMED_OUT. */
int rs_strict_exec(struct rs_call *c, rs_prep_fn prep, void *args, const struct rs_exec_opts *o,
		   struct rs_call_wait *cw);
/* Wait until fd is ready for `events`, as a blocking call on it would (its
 * socket timeout, EINTR/SA_RESTART): 0, -EINTR, RS_RESTART, RS_TIMED_OUT. */
int rs_strict_wait_ready(struct rs_call *c, short events, bool send_side, struct rs_call_wait *cw);
/* fds lo..hi are being closed: calls waiting on them in other threads keep
 * a hidden copy and carry on with the file. */
void rs_strict_fds_closing(int lo, int hi);
void rs_strict_after_fork_child(void);
uint64_t rs_strict_timeout_us(const struct rs_call *c, bool send_side);
/* Normalise a timeval given to setsockopt the way the kernel stores it. */
uint64_t rs_strict_timeo_from_user(int fd, int opt, const struct timeval *tv);

#endif
