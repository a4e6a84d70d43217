/* Building blocks of the strict backend, shared with batch mode. */
#ifndef RS_IO_STRICT_H
#define RS_IO_STRICT_H

#include "io.h"

typedef void (*rs_prep_fn)(struct io_uring_sqe *sqe, const struct rs_call *c, void *args,
			   bool nonblock);

struct rs_exec_opts {
	bool force_nonblock;	/* MSG_DONTWAIT: never wait, whatever the fd */
	bool file;		/* regular-file semantics: no readiness wait */
	bool keep_waiting;	/* SA_RESTART continues the same wait */
	bool restart_to_caller; /* return RS_RESTART instead of resubmitting */
	uint64_t timeout_us;	/* SO_RCVTIMEO / SO_SNDTIMEO */
};

/* Prepare one op with `prep`, submit it and wait as the fd's mode says. */
int rs_strict_exec(struct rs_call *c, rs_prep_fn prep, void *args,
		   const struct rs_exec_opts *o);
uint64_t rs_strict_timeout_us(const struct rs_call *c, bool send_side);

#endif
