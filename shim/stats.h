/* Counters. Each thread increments its own block (no shared cache line on the
 * hot path); readers sum the blocks. Gauges that only make sense per process
 * (bytes pending, peaks) live in the header and are updated atomically. */
#ifndef RS_STATS_H
#define RS_STATS_H

#include <stdint.h>

#include "common.h"

/* Calls seen, one counter per interposed call family. */
#define RS_CALL_COUNTERS(X)                                                    \
	X(read) X(write) X(readv) X(writev) X(pread) X(pwrite) X(preadv)       \
	X(pwritev) X(recv) X(recvfrom) X(recvmsg) X(recvmmsg) X(send)          \
	X(sendto) X(sendmsg) X(sendmmsg) X(sendfile) X(accept) X(connect)      \
	X(close) X(shutdown) X(epoll_wait) X(epoll_ctl) X(poll) X(select)

/* Why a call went straight to libc instead of the ring. */
#define RS_PT_REASONS(X)                                                       \
	X(fd_kind)     /* an fd kind the shim never serves (tty, eventfd...) */ \
	X(fds_filter)  /* excluded by RINGSHIM_FDS */                           \
	X(fallback)    /* io_uring unavailable for this thread or process */    \
	X(reentry)     /* called from a signal handler inside the shim */       \
	X(flags)       /* a flag or mode the ring path does not emulate */      \
	X(unsupported) /* an opcode the kernel lacks */                         \
	X(ring_cap)    /* RINGSHIM_MAX_RINGS reached */

#define RS_OTHER_COUNTERS(X)                                                   \
	X(served_ring) X(served_stash) X(served_acceptq) X(served_writebehind)  \
	X(enter) X(sqes) X(cqes) X(rings_created) X(rings_failed)              \
	X(sq_full_flushes) X(cancels) X(eintr) X(restarts) X(timeouts)         \
	X(sigpipe_raised) X(fd_classified) X(enobufs_rearms)                   \
	X(deferred_errors) X(wb_bytes) X(stash_bytes_in) X(accept_queued)      \
	X(sqe_per_enter_1) X(sqe_per_enter_2_3) X(sqe_per_enter_4_7)           \
	X(sqe_per_enter_8_15) X(sqe_per_enter_16_31) X(sqe_per_enter_32_up)     \
	X(state_probes) X(state_polls)

enum rs_counter {
#define RS_C_CALL(n) RS_C_call_##n,
#define RS_C_PT(n) RS_C_pt_##n,
#define RS_C_OTHER(n) RS_C_##n,
	RS_CALL_COUNTERS(RS_C_CALL)
	RS_PT_REASONS(RS_C_PT)
	RS_OTHER_COUNTERS(RS_C_OTHER)
#undef RS_C_CALL
#undef RS_C_PT
#undef RS_C_OTHER
	RS_C_COUNT
};

#define RS_C_CALL_FIRST RS_C_call_read
#define RS_C_PT_FIRST RS_C_pt_fd_kind

struct rs_counter_block {
	uint64_t v[RS_C_COUNT];
} __attribute__((aligned(RS_CACHELINE)));

/* Process-wide gauges. */
enum rs_gauge {
	RS_G_WB_PENDING,     /* write-behind bytes not yet completed */
	RS_G_WB_PEAK,
	RS_G_STASH_BYTES,    /* received bytes held for the program */
	RS_G_ACCEPTQ_DEPTH,
	RS_G_FDS_MANAGED,
	RS_G_RINGS_LIVE,
	RS_G_COUNT
};

extern RS_TLS struct rs_counter_block *rs_tls_counters;
/* rs_tls_counters is a block other threads count into too (the overflow
 * block past RS_STATS_SLOTS live threads, the one used before the segment
 * exists). */
extern RS_TLS bool rs_tls_counters_shared;
struct rs_counter_block *rs_stats_thread_block(void);

/* -DRS_NO_COUNTERS compiles the counters out; it exists only to measure
 * what they cost (docs/benchmarks.md). Gauges stay: backpressure uses them. */
static inline void rs_count_n(enum rs_counter c, uint64_t n)
{
#ifdef RS_NO_COUNTERS
	(void)c;
	(void)n;
	return;
#endif
	struct rs_counter_block *b = rs_tls_counters;
	if (unlikely(!b))
		b = rs_stats_thread_block();
	/* Other threads read every block while this one counts (the exit
	 * report, rs_stats_sum): atomic accesses, relaxed. A block of our own
	 * has one writer, so load and store (plain moves on x86) will do; a
	 * shared block needs the read-modify-write or counts are lost. */
	if (unlikely(rs_tls_counters_shared))
		__atomic_fetch_add(&b->v[c], n, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&b->v[c], __atomic_load_n(&b->v[c], __ATOMIC_RELAXED) + n,
				 __ATOMIC_RELAXED);
}

static inline void rs_count(enum rs_counter c)
{
	rs_count_n(c, 1);
}

void rs_gauge_add(enum rs_gauge g, int64_t delta);
int64_t rs_gauge_get(enum rs_gauge g);
void rs_count_sqes_per_enter(unsigned n);

void rs_stats_init(void);
/* Remove the /dev/shm segment (at exit, before exec); put it back if the
 * exec failed. */
void rs_stats_unpublish(void);
void rs_stats_republish(void);
/* A thread is exiting: fold its block into the process totals. */
void rs_stats_thread_exit(void);
/* Child side of fork: the child's counters start at zero. */
void rs_stats_after_fork_child(void);
/* Sum every block into `out`. */
void rs_stats_sum(uint64_t out[RS_C_COUNT]);
const char *rs_counter_name(enum rs_counter c);
/* Print or append the summary selected by RINGSHIM_STATS. */
void rs_stats_report_exit(void);
/* Format the summary as one JSON object (no newline). */
size_t rs_stats_format_json(char *buf, size_t size);

#endif
