/* Fault injection for tests (RINGSHIM_FAULT, off unless set): make the
 * rare paths happen on demand, so tests can show the program still gets
 * what the kernel would give it. Spec: comma list of NAME or NAME:N (fire
 * every Nth time; default 1 = always; eintr never twice in a row on one
 * thread), e.g. "sqfull:3,shortsend". RINGSHIM_FAULT_REPORT=FILE appends,
 * at exit, a JSON line per process: each fault's checks and firings. */
#ifndef RS_FAULT_H
#define RS_FAULT_H

#include <stdbool.h>

#include "common.h"

#define RS_FAULTS(X)                                                           \
	X(setup)     /* io_uring_setup fails (as with io_uring_disabled) */      \
	X(sqfull)    /* the SQ looks full: flush before every new SQE */         \
	X(cqsmall)   /* rings get an 8-entry CQ: completions overflow */          \
	X(enobufs)   /* 4 provided buffers per ring: receives hit ENOBUFS */      \
	X(shortsend) /* write-behind sends are cut short: partial sends */        \
	X(eintr)     /* io_uring_enter waits end early as if interrupted */       \
	X(nomem)     /* queue/stash allocations fail */

enum rs_fault {
#define RS_F_ENUM(n) RS_FAULT_##n,
	RS_FAULTS(RS_F_ENUM)
#undef RS_F_ENUM
	RS_FAULT_COUNT
};

extern bool rs_faults_on;
bool rs_fault_hit(enum rs_fault f);

static inline bool rs_fault(enum rs_fault f)
{
	return unlikely(rs_faults_on) && rs_fault_hit(f);
}

/* Parse RINGSHIM_FAULT (called from config). Returns 0 or -EINVAL. */
int rs_fault_parse(const char *spec);

#endif
