/* Per-thread io_uring: created on a thread's first ring call, torn down at
 * thread exit, never used by a fork child (which builds its own).
 *
 * Operations are tracked by struct rs_op, whose address is the SQE's
 * user_data. A synchronous op lives on the caller's stack and the caller does
 * not return before its CQE was reaped (cancelling it first if a signal or a
 * timeout ends the wait), so the kernel never writes into memory that has
 * gone back to the program. Asynchronous ops (batch mode) carry a completion
 * callback instead. */
#ifndef RS_RING_H
#define RS_RING_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "signals.h"

struct rs_op;
typedef void (*rs_op_complete_fn)(struct rs_op *op, int res, uint32_t cqe_flags);

struct rs_op {
	int32_t res;
	uint32_t cqe_flags;
	volatile bool done;
	rs_op_complete_fn complete; /* NULL for synchronous waiters */
};

struct rs_ring {
	struct io_uring uring;
	pthread_mutex_t lock; /* SQ and CQ, for threads other than the owner */
	pid_t owner_tid;
	unsigned inflight;
	struct rs_ring *next_live; /* list of live rings, for fork and exit */
	char *bounce;		   /* RS_RING_BOUNCE_SIZE scratch buffer, lazily */
	/* Bumped each time prepared SQEs are handed to the kernel: an SQE
	 * prepared in the current epoch may still be changed. */
	unsigned submit_epoch;
	bool reaping;
	/* Write-behind sends with MSG_DONTWAIT in flight here (under lock):
	 * what a thread must reap before it sleeps under SQPOLL (wb.c). */
	unsigned wb_dontwait_sends;
	uint64_t pending_since_ns; /* first SQE prepared since the last flush, 0: none; atomic */
	bool files_registered; /* sparse direct-descriptor table (accept queue) */
	bool sqpoll;	       /* a kernel thread submits: no enter to submit */
	unsigned sq_group;     /* which SQ thread (rings sharing one: same) */
	/* The ring threads without one borrow (rs_ring_borrow): it is never
	 * destroyed while the process lives. Under live_lock. */
	bool lent;
	bool orphan; /* lent, and its thread has exited: the next new thread
		      * that finds RINGSHIM_MAX_RINGS reached takes it over */
	/* Who may still lock or look into this ring (atomic): its thread
	 * (or the pool) 1, each fd-state slot naming it (rs_ring_slot_set)
	 * 1, each call of another thread working on it (rs_ring_hold) 1.
	 * A thread that exits drops its own; the ring is destroyed at the
	 * last rs_ring_put, so no one ever locks a freed ring. */
	unsigned refs;
	bool dead; /* its thread has exited; destroyed at the last put */
	uint64_t id; /* new for each thread that gets it; never 0 */
	struct rs_ring_batch *batch; /* provided buffers etc. (batch mode) */
	/* Under SQPOLL, the polls rs_ring_sqpoll_probe asks the SQ thread
	 * for; one is free again once its CQE is in (done) or was never used. */
	struct rs_op probes[4];
	bool probe_out[4];
};

/* Ring lifetime. Whoever takes a ring's pointer from shared state (an
 * fd's send, receive or watch ring, an accept queue's ring) to lock it
 * after dropping the lock that guards the pointer holds it first, under
 * that lock: the slot's own reference keeps the ring alive up to then. */
static inline struct rs_ring *rs_ring_hold(struct rs_ring *r)
{
	if (r)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

/* Drop a reference (NULL: nothing); the last one of a ring whose thread
 * has exited destroys it. Never with that ring's lock held (whoever holds
 * the lock holds a reference of its own). */
void rs_ring_put(struct rs_ring *r);

/* Point a slot of fd state at r (or NULL), moving the slot's reference;
 * under the lock that guards the slot. */
static inline void rs_ring_slot_set(struct rs_ring **slot, struct rs_ring *r)
{
	struct rs_ring *old = *slot;
	if (old == r)
		return;
	/* Atomic: on_ring (fdb.c) reads slots without the lock. */
	__atomic_store_n(slot, rs_ring_hold(r), __ATOMIC_RELAXED);
	rs_ring_put(old);
}

static inline void rs_ring_lock(struct rs_ring *r)
{
	pthread_mutex_lock(&r->lock);
}

static inline void rs_ring_unlock(struct rs_ring *r)
{
	pthread_mutex_unlock(&r->lock);
}

/* Completions are waiting to be run by the ring's owner (COOP_TASKRUN) or
 * reaped: a read that finds nothing must look again before saying EAGAIN. */
static inline bool rs_ring_has_news(struct rs_ring *r)
{
	/* Not io_uring_cq_ready(): callers also peek at another thread's
	 * ring without its lock (wb.c), while its owner advances the head
	 * (atomically, in io_uring_cq_advance); so the head is read
	 * atomically too. A stale answer only costs or skips one reap. */
	unsigned tail = __atomic_load_n(r->uring.cq.ktail, __ATOMIC_ACQUIRE);
	unsigned head = __atomic_load_n(r->uring.cq.khead, __ATOMIC_RELAXED);
	return tail != head ||
	       (__atomic_load_n(r->uring.sq.kflags, __ATOMIC_RELAXED) & IORING_SQ_TASKRUN);
}

/* Enter the kernel without waiting: submit what is queued and run pending
 * completion work. r->lock held. */
int rs_ring_poke(struct rs_ring *r);
/* Prepared SQEs have waited RINGSHIM_FLUSH_US: submit them (write-behind's
 * age threshold). Called on the way into every shim call. */
void rs_ring_flush_if_old(struct rs_ring *r);
/* Submit and wait for at least one completion (any), with an optional
 * timeout and signal mask; the lock is dropped while sleeping. Returns the
 * enter result (-EINTR, -ETIME, ...). r->lock held. */
int rs_ring_wait_any(struct rs_ring *r, const struct __kernel_timespec *ts,
		     const sigset_t *mask);

#define RS_RING_BOUNCE_SIZE (64 * 1024)
/* The ring's scratch buffer (sendfile), or NULL if it cannot be mapped. */
char *rs_ring_bounce(struct rs_ring *r);

enum rs_ring_unavailable {
	RS_RING_OK,
	RS_RING_NO_URING,   /* the process cannot use io_uring at all */
	RS_RING_THREAD_FAIL, /* this thread could not get a ring */
	RS_RING_CAP,	    /* RINGSHIM_MAX_RINGS reached */
};

extern RS_TLS struct rs_ring *rs_tls_ring;
/* The ring this ring-less thread borrowed for the call it is in, or NULL. */
extern RS_TLS struct rs_ring *rs_tls_borrowed;

/* This thread's ring, created on first use (or the ring it borrowed for
 * the current call). NULL with *why set when the call must pass through
 * instead. */
struct rs_ring *rs_ring_get_slow(enum rs_ring_unavailable *why);
static inline struct rs_ring *rs_ring_get(enum rs_ring_unavailable *why)
{
	struct rs_ring *r = rs_tls_ring;
	if (likely(r))
		return r;
	return rs_ring_get_slow(why);
}

/* Unless said otherwise, the functions below want r->lock held; the ones
 * that sleep in the kernel drop it meanwhile. */

/* An SQE to fill in; flushes the SQ to the kernel first if it is full. */
struct io_uring_sqe *rs_ring_sqe(struct rs_ring *r);

/* How a synchronous op waits. */
struct rs_wait {
	bool interruptible;	 /* a caught signal can end the wait */
	bool never_restart;	 /* ...even one with SA_RESTART (EINTR) */
	bool keep_waiting;	 /* SA_RESTART continues this same wait (connect) */
	uint64_t timeout_ns;	 /* 0: none; expiry gives RS_TIMED_OUT */
	const sigset_t *sigmask; /* mask while waiting (ppoll-style), or NULL */
};

/* Results beyond -errno that only the wait produces. */
#define RS_TIMED_OUT (-4096 - 1)
#define RS_RESTART (-4096 - 2) /* resubmit: an SA_RESTART handler ran */

/* Submit what is queued and wait for `op`.
 *
 * A caught signal ends an interruptible wait the way the kernel ends a
 * blocking call: the op is cancelled; if it had already moved data (a
 * partial send, a MSG_WAITALL receive) that count is returned — bytes moved
 * are never lost; otherwise -EINTR, or RS_RESTART when every handler that ran
 * had SA_RESTART (the caller resubmits, as the kernel restarts the call).
 * Returns op's result, -EINTR, RS_RESTART or RS_TIMED_OUT. */
int rs_ring_run(struct rs_ring *r, struct rs_op *op, const struct rs_wait *w);
/* Cancel a submitted op and wait for its CQE; returns its result. */
int rs_ring_cancel_wait(struct rs_ring *r, struct rs_op *op);

/* Submit whatever is queued without waiting. */
int rs_ring_submit(struct rs_ring *r);
/* Reap every CQE available now. Returns how many. */
unsigned rs_ring_reap(struct rs_ring *r);

/* SQPOLL was asked for and this process got it. */
bool rs_ring_sqpoll_active(void);
int rs_ring_sqpoll_probe(struct rs_ring *r, int fd, unsigned events, unsigned budget_us);

/* Kernel capabilities found when the first ring was made. */
bool rs_ring_op_supported(int opcode);
bool rs_ring_accept_dontwait(void);

/* Batch mode, a thread without a ring of its own (RINGSHIM_MAX_RINGS
 * reached, or its ring could not be made) calling on an fd the shim holds
 * state for (stash, write-behind queue, accept queue, emulated epoll):
 * passing the call to libc would skip that state, so the call is served on
 * the process's lending ring instead, exactly as a thread with a ring would
 * be served. Until rs_ring_borrow_end, rs_ring_get returns it. NULL when
 * there is no ring at all to lend. */
struct rs_ring *rs_ring_borrow(void);
/* The borrowed call ends: what it prepared is submitted now (the borrower
 * has no flush point of its own later on), and rs_ring_get forgets it. */
void rs_ring_borrow_end(void);

void rs_ring_thread_exit(void);
void rs_ring_after_fork_child(void);
/* Number of rings alive in this process. */
unsigned rs_ring_live(void);

#endif
