#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "config.h"
#include "fault.h"
#include "internal_fds.h"
#include "log.h"
#include "real.h"
#include "ring.h"
#include "stats.h"
#include "thread.h"

#ifndef IORING_ACCEPT_DONTWAIT
#define IORING_ACCEPT_DONTWAIT (1U << 1)
#endif

RS_TLS struct rs_ring *rs_tls_ring;
RS_TLS struct rs_ring *rs_tls_borrowed;
/* Why this thread has no ring, so a failure is not retried on every call. */
static RS_TLS enum rs_ring_unavailable tls_unavailable;

static bool process_no_uring;
static unsigned live_rings;
static struct rs_ring *live_list;
/* The ring lent to threads without one (rs_ring_borrow); set once, under
 * live_lock, read without it. */
static struct rs_ring *lender;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_ring_id;

static uint64_t new_ring_id(void)
{
	return __atomic_add_fetch(&next_ring_id, 1, __ATOMIC_RELAXED);
}

/* SQ polling threads to share (IORING_SETUP_ATTACH_WQ): the fds of the
 * rings that own them, under live_lock. */
#define MAX_SQ_ANCHORS 64
static struct rs_ring *sq_anchors[MAX_SQ_ANCHORS];
static unsigned sq_anchor_count, sq_next, sq_groups;
static bool sqpoll_refused, sqpoll_used;

/* Threads whose first rings come up together may all probe at once; each
 * stores the same answers, so plain relaxed atomics are all they need. */
static bool probed;
static bool op_supported[256];
static bool accept_dontwait;

/* Keys for rs_log_once, clear of the counter indexes the entry layer uses. */
enum { LOG_ONCE_NO_URING = 50, LOG_ONCE_THREAD_FAIL, LOG_ONCE_CAP, LOG_ONCE_OLD_KERNEL, LOG_ONCE_SQPOLL,
       LOG_ONCE_FDS_TIGHT };

bool rs_ring_op_supported(int opcode)
{
	return opcode >= 0 && opcode < 256 && __atomic_load_n(&op_supported[opcode], __ATOMIC_RELAXED);
}

bool rs_ring_accept_dontwait(void)
{
	return __atomic_load_n(&accept_dontwait, __ATOMIC_RELAXED);
}

unsigned rs_ring_live(void)
{
	return __atomic_load_n(&live_rings, __ATOMIC_RELAXED);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Publish the SQEs prepared since the last flush, up to (not including)
 * SQE number upto; returns how many published SQEs the kernel has not
 * consumed yet. */
static unsigned flush_sq_upto(struct rs_ring *r, unsigned upto)
{
	struct io_uring_sq *sq = &r->uring.sq;
	if (sq->sqe_head != upto) {
		sq->sqe_head = upto;
		if (upto == sq->sqe_tail)
			__atomic_store_n(&r->pending_since_ns, 0, __ATOMIC_RELAXED);
		io_uring_smp_store_release(sq->ktail, upto);
		r->submit_epoch++;
	}
	return upto - io_uring_smp_load_acquire(sq->khead);
}

static unsigned flush_sq(struct rs_ring *r)
{
	return flush_sq_upto(r, r->uring.sq.sqe_tail);
}

/* Where a link chain still open at the SQ's tail starts (its last SQE
 * asks to be linked to one not prepared yet), or the tail if none is. */
static unsigned open_chain_start(const struct io_uring_sq *sq)
{
	unsigned start = sq->sqe_tail;
	while (start != sq->sqe_head &&
	       (sq->sqes[(start - 1) & sq->ring_mask].flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)))
		start--;
	return start;
}

bool rs_ring_sqpoll_active(void)
{
	return __atomic_load_n(&sqpoll_used, __ATOMIC_RELAXED);
}

/* With RINGSHIM_BUSY_POLL_US, look at the CQ for a while before sleeping:
 * under SQPOLL completions arrive without our entering the kernel. Stops
 * early for a signal, which the caller must look at. */
static bool busy_poll(struct rs_ring *r, unsigned want)
{
	if (!rs_cfg.busy_poll_us || !r->sqpoll)
		return false;
	unsigned long delivered = rs_sig.delivered;
	uint64_t until = now_ns() + (uint64_t)rs_cfg.busy_poll_us * 1000;
	do {
		if (io_uring_cq_ready(&r->uring) >= want)
			return true;
		if (rs_sig.delivered != delivered)
			return false;
		__builtin_ia32_pause();
	} while (now_ns() < until);
	return false;
}

/* Under SQPOLL: publish the SQ and spin until the SQ thread has taken
 * every SQE before number `seq`. The kernel posts the completions of ops
 * that finished inline before it moves the SQ head, so once this returns
 * true those CQEs are in the CQ. False, without entering the kernel, where
 * the thread is asleep, the CQ has overflowed (completions wait in the
 * kernel), a signal came, or it took longer than `budget_us`. */
static bool sqpoll_take(struct rs_ring *r, unsigned seq, unsigned budget_us)
{
	flush_sq(r);
	unsigned long delivered = rs_sig.delivered;
	uint64_t until = 0;
	for (unsigned spins = 0;; spins++) {
		if ((int)(io_uring_smp_load_acquire(r->uring.sq.khead) - seq) >= 0)
			return true;
		unsigned sqf = IO_URING_READ_ONCE(*r->uring.sq.kflags);
		if ((sqf & (IORING_SQ_NEED_WAKEUP | IORING_SQ_CQ_OVERFLOW)) ||
		    rs_sig.delivered != delivered)
			return false;
		/* The clock only every 64 turns: reading it costs more than
		 * the SQ thread usually takes. */
		if (!(spins & 63)) {
			uint64_t now = now_ns();
			if (!until)
				until = now + (uint64_t)budget_us * 1000;
			else if (now >= until)
				return false;
		}
		__builtin_ia32_pause();
	}
}

/* Which of `events` fd has now, asked of the SQ thread instead of poll():
 * a one-shot poll followed by its removal, taken by the SQ thread in one
 * go. A poll whose events are already there completes inline, at
 * submission, before the SQ head moves; so once the head is past it, no
 * CQE means none of the events was there when the SQ thread looked, which
 * was after this call began. The removal (or a wake-up racing it) ends the
 * poll later; its slot is free again when that CQE is reaped. Returns the
 * events (> 0), 0 for none, -1 where the thread cannot answer within
 * `budget_us` (asleep, busy elsewhere, no free slot). r->lock held. */
int rs_ring_sqpoll_probe(struct rs_ring *r, int fd, unsigned events, unsigned budget_us)
{
	if (!r->sqpoll || io_uring_sq_space_left(&r->uring) < 2)
		return -1;
	unsigned n = sizeof(r->probes) / sizeof(r->probes[0]), i = 0;
	while (i < n && r->probe_out[i] && !__atomic_load_n(&r->probes[i].done, __ATOMIC_ACQUIRE))
		i++;
	if (i == n)
		return -1;
	struct rs_op *op = &r->probes[i];
	struct io_uring_sqe *poll = rs_ring_sqe(r), *remove = poll ? rs_ring_sqe(r) : NULL;
	if (!remove) {
		if (poll) /* not after the space check; a NOP keeps the SQ sane */
			io_uring_prep_nop(poll);
		return -1;
	}
	op->complete = NULL;
	op->res = 0;
	__atomic_store_n(&op->done, false, __ATOMIC_RELAXED);
	r->probe_out[i] = true;
	io_uring_prep_poll_add(poll, fd, events);
	poll->user_data = (uint64_t)(uintptr_t)op;
	io_uring_prep_poll_remove(remove, (uint64_t)(uintptr_t)op);
	remove->user_data = 0;
	if (!sqpoll_take(r, r->uring.sq.sqe_tail - 1, budget_us))
		return -1;
	rs_ring_reap(r);
	if (__atomic_load_n(&op->done, __ATOMIC_ACQUIRE) && op->res > 0)
		return (int)((unsigned)op->res & events);
	return 0;
}

static int ring_enter(struct rs_ring *r, unsigned to_submit, unsigned min_complete,
		      const struct __kernel_timespec *ts, const sigset_t *mask)
{
	/* GETEVENTS even without waiting: it runs pending completion work. */
	unsigned flags = IORING_ENTER_GETEVENTS;
	if (r->sqpoll) {
		/* The SQ thread picks submissions up by itself; the kernel is
		 * entered only to wake it, or to sleep for completions. */
		unsigned sqf = IO_URING_READ_ONCE(*r->uring.sq.kflags);
		if (sqf & IORING_SQ_NEED_WAKEUP)
			flags |= IORING_ENTER_SQ_WAKEUP;
		if (min_complete && busy_poll(r, min_complete)) {
			rs_count_n(RS_C_sqes, to_submit);
			return (int)to_submit;
		}
		if (!min_complete && !(flags & IORING_ENTER_SQ_WAKEUP) &&
		    !(sqf & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN))) {
			rs_count_n(RS_C_sqes, to_submit);
			return (int)to_submit;
		}
	}
	struct io_uring_getevents_arg arg;
	void *argp = NULL;
	size_t argsz = 0;
	if (ts || mask) {
		memset(&arg, 0, sizeof(arg));
		arg.sigmask = (uint64_t)(uintptr_t)mask;
		arg.sigmask_sz = mask ? _NSIG / 8 : 0;
		arg.ts = (uint64_t)(uintptr_t)ts;
		argp = &arg;
		argsz = sizeof(arg);
		flags |= IORING_ENTER_EXT_ARG;
	}
	int fd = r->uring.ring_fd;
	/* The registered index is the owner thread's: another thread working
	 * on this ring (closing one of its fds, say, or borrowing it) enters
	 * through the fd. Only the owner looks at int_flags: a lent ring's
	 * next owner registers it while borrowers use it. */
	if (rs_tls_ring == r && (r->uring.int_flags & 1 /* liburing's INT_FLAG_REG_RING */)) {
		fd = r->uring.enter_ring_fd;
		flags |= IORING_ENTER_REGISTERED_RING;
	}
	if (min_complete && rs_fault(RS_FAULT_eintr))
		return -EINTR; /* a wait cut short with no handler run */
	int ret = io_uring_enter2((unsigned)fd, to_submit, min_complete, flags,
				  (sigset_t *)argp, argsz);
	rs_count(RS_C_enter);
	if (ret > 0 && to_submit)
		rs_count_sqes_per_enter((unsigned)ret < to_submit ? (unsigned)ret : to_submit);
	return ret;
}

unsigned rs_ring_reap(struct rs_ring *r)
{
	unsigned head, n = 0;
	struct io_uring_cqe *cqe;
	/* A completion handler that needs an SQE may flush the SQ, but must
	 * never reap: this loop owns the CQ head. */
	if (r->reaping)
		return 0;
	r->reaping = true;
	io_uring_for_each_cqe(&r->uring, head, cqe) {
		n++;
		uint64_t ud = cqe->user_data;
		if (!ud || ud == LIBURING_UDATA_TIMEOUT)
			continue;
		struct rs_op *op = (struct rs_op *)(uintptr_t)ud;
		if (op->complete) {
			op->complete(op, cqe->res, cqe->flags);
		} else {
			op->res = cqe->res;
			op->cqe_flags = cqe->flags;
			__atomic_store_n(&op->done, true, __ATOMIC_RELEASE);
		}
	}
	if (n) {
		io_uring_cq_advance(&r->uring, n);
		rs_count_n(RS_C_cqes, n);
	}
	r->reaping = false;
	return n;
}

struct io_uring_sqe *rs_ring_sqe(struct rs_ring *r)
{
	if (r->uring.sq.sqe_tail == r->uring.sq.sqe_head)
		__atomic_store_n(&r->pending_since_ns, now_ns(), __ATOMIC_RELAXED);
	struct io_uring_sqe *sqe = rs_fault(RS_FAULT_sqfull) ? NULL : io_uring_get_sqe(&r->uring);
	if (likely(sqe))
		return sqe;
	rs_count(RS_C_sq_full_flushes);
	/* Make room by submitting, and only that: callers hold fd locks and
	 * may be halfway through a link chain, so this must neither run
	 * completion handlers (they take fd locks: a handler for the
	 * caller's own fd would deadlock) nor submit a chain that is still
	 * open (its ops would run unlinked: an FD_INSTALL queued to io-wq
	 * while the close meant to follow it runs first). The kernel takes
	 * the SQEs without the CQ being reaped; completions wait there, or
	 * in its overflow list, for the next reap. */
	for (int tries = 0; tries < 64 && !sqe; tries++) {
		unsigned n = flush_sq_upto(r, open_chain_start(&r->uring.sq));
		if (r->sqpoll) {
			/* Wait for the SQ thread to make room. */
			unsigned fl = IORING_ENTER_SQ_WAIT | IORING_ENTER_SQ_WAKEUP;
			bool reg = rs_tls_ring == r && (r->uring.int_flags & 1);
			int fd = reg ? r->uring.enter_ring_fd : r->uring.ring_fd;
			io_uring_enter2((unsigned)fd, n, 0, fl | (reg ? IORING_ENTER_REGISTERED_RING : 0),
					NULL, 0);
			rs_count(RS_C_enter);
		} else {
			ring_enter(r, n, 0, NULL, NULL);
		}
		sqe = io_uring_get_sqe(&r->uring);
	}
	return sqe;
}

void rs_ring_flush_if_old(struct rs_ring *r)
{
	/* Looked at without the lock (the ring may be lent to other threads,
	 * which prepare SQEs under it): only this word, which is atomic. */
	uint64_t since = __atomic_load_n(&r->pending_since_ns, __ATOMIC_RELAXED);
	if (!since || now_ns() - since < (uint64_t)rs_cfg.flush_us * 1000)
		return;
	rs_ring_lock(r);
	if (r->uring.sq.sqe_tail != r->uring.sq.sqe_head)
		rs_ring_poke(r);
	rs_ring_unlock(r);
}

int rs_ring_poke(struct rs_ring *r)
{
	return ring_enter(r, flush_sq(r), 0, NULL, NULL);
}

int rs_ring_wait_any(struct rs_ring *r, const struct __kernel_timespec *ts,
		     const sigset_t *mask)
{
	unsigned n = flush_sq(r);
	/* Never unbounded: the ring lock is dropped while waiting, so another
	 * thread may reap the very completion this one waits for, and then no
	 * new one may ever come. Every caller loops on its own condition. */
	struct __kernel_timespec cap = { 0, 10000000 };
	if (!ts)
		ts = &cap;
	rs_ring_unlock(r);
	int ret = ring_enter(r, n, 1, ts, mask);
	rs_ring_lock(r);
	return ret;
}

int rs_ring_submit(struct rs_ring *r)
{
	unsigned n = flush_sq(r);
	if (!n)
		return 0;
	int ret = ring_enter(r, n, 0, NULL, NULL);
	return ret < 0 ? ret : 0;
}

/* Cancel `op` and wait until its CQE is in, however many signals arrive:
 * the op may point at the caller's buffer, which must not be written after
 * the call returns. */
int rs_ring_cancel_wait(struct rs_ring *r, struct rs_op *op)
{
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
		sqe->user_data = 0;
	}
	rs_count(RS_C_cancels);
	while (!__atomic_load_n(&op->done, __ATOMIC_ACQUIRE)) {
		rs_ring_wait_any(r, NULL, NULL);
		rs_ring_reap(r);
	}
	return op->res;
}

int rs_ring_run(struct rs_ring *r, struct rs_op *op, const struct rs_wait *w)
{
	struct rs_sig_mark mark = rs_sig_mark();
	uint64_t deadline = w->timeout_ns ? now_ns() + w->timeout_ns : 0;

	for (;;) {
		unsigned to_submit = flush_sq(r);
		struct __kernel_timespec ts, *tsp = NULL;
		if (deadline) {
			uint64_t now = now_ns();
			uint64_t left = now < deadline ? deadline - now : 0;
			ts.tv_sec = (long long)(left / 1000000000u);
			ts.tv_nsec = (long long)(left % 1000000000u);
			tsp = &ts;
		}
		rs_ring_unlock(r);
		int ret = ring_enter(r, to_submit, 1, tsp, w->sigmask);
		rs_ring_lock(r);
		rs_ring_reap(r);
		if (__atomic_load_n(&op->done, __ATOMIC_ACQUIRE))
			return op->res;

		if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EAGAIN &&
		    ret != -EBUSY) {
			/* The ring cannot wait (it never should fail like
			 * this); make sure the op is gone before giving up. */
			rs_warn("io_uring_enter failed unexpectedly (errno %d)", -ret);
			int res = rs_ring_cancel_wait(r, op);
			return res == -ECANCELED ? -EIO : res;
		}
		if (deadline && now_ns() >= deadline) {
			rs_count(RS_C_timeouts);
			int res = rs_ring_cancel_wait(r, op);
			return res == -ECANCELED ? RS_TIMED_OUT : res;
		}
		if (w->interruptible && rs_sig.delivered != mark.delivered) {
			bool eintr = rs_sig_interrupted(&mark, w->never_restart);
			if (!eintr && w->keep_waiting) {
				rs_count(RS_C_restarts);
				mark = rs_sig_mark();
				continue;
			}
			int res = rs_ring_cancel_wait(r, op);
			if (res != -ECANCELED)
				return res;
			if (!eintr) {
				rs_count(RS_C_restarts);
				return RS_RESTART;
			}
			rs_count(RS_C_eintr);
			return -EINTR;
		}
	}
}

static void ring_fd_moved(void *owner, int oldfd, int newfd)
{
	struct rs_ring *r = owner;
	(void)oldfd;
	/* Atomic: when RLIMIT_NOFILE grows this runs on the thread that
	 * raised it (rs_internal_fds_rlimit_changed), while setup_uring may
	 * read an anchor's fd. */
	__atomic_store_n(&r->uring.ring_fd, newfd, __ATOMIC_RELAXED);
	if (!(r->uring.int_flags & 1))
		r->uring.enter_ring_fd = newfd;
}

/* liburing maps and unmaps the rings with raw system calls, out of TSan's
 * sight: a ring set up where an exited thread's ring was mapped would carry
 * that ring's access history, and TSan would pair accesses to two different
 * rings as races. Tell it the memory is new. */
#if defined(__SANITIZE_THREAD__)
void AnnotateNewMemory(const char *file, int line, const volatile void *mem, size_t size);
void __sanitizer_symbolize_pc(void *pc, const char *fmt, char *out_buf, size_t out_buf_size);

/* TSan's symbolizer opens and closes the program's ELF files the first time
 * it writes a report, through our close(), while it ignores all locking: the
 * shim's accesses there look like races, and reporting those deadlocks on
 * its thread registry, so a real report hangs the test instead of showing.
 * Let it open them at the first ring, outside any report. */
static void tsan_symbolizer_warm_up(void)
{
	static bool done;
	if (__atomic_exchange_n(&done, true, __ATOMIC_ACQ_REL))
		return;
	char out[128];
	/* Its close() runs ours, whose accesses TSan must not check here
	 * either (it ignores the locking around them while symbolizing). */
	RS_FRESH_FD_BEGIN();
	__sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", out, sizeof(out));
	RS_FRESH_FD_END();
}

static void tsan_new_ring_memory(struct io_uring *u)
{
	tsan_symbolizer_warm_up();
	size_t sqe_size = sizeof(struct io_uring_sqe) << ((u->flags & IORING_SETUP_SQE128) ? 1 : 0);
	AnnotateNewMemory(__FILE__, __LINE__, u->sq.ring_ptr, u->sq.ring_sz);
	if (u->cq.ring_ptr != u->sq.ring_ptr)
		AnnotateNewMemory(__FILE__, __LINE__, u->cq.ring_ptr, u->cq.ring_sz);
	AnnotateNewMemory(__FILE__, __LINE__, u->sq.sqes, sqe_size * *u->sq.kring_entries);
}
#else
static void tsan_new_ring_memory(struct io_uring *u)
{
	(void)u;
}
#endif

static void probe_kernel(struct rs_ring *r)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(&r->uring);
	if (p) {
		for (int op = 0; op < 256 && op <= p->last_op; op++)
			__atomic_store_n(&op_supported[op], io_uring_opcode_supported(p, op),
					 __ATOMIC_RELAXED);
		io_uring_free_probe(p);
	}
	/* Nonblocking accept through the ring needs IORING_ACCEPT_DONTWAIT
	 * (6.10): an unknown flag fails the prep with EINVAL before the bad fd
	 * is looked at. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (sqe) {
		struct rs_op op = { 0 };
		io_uring_prep_accept(sqe, -1, NULL, NULL, 0);
		sqe->ioprio |= IORING_ACCEPT_DONTWAIT;
		sqe->user_data = (uint64_t)(uintptr_t)&op;
		struct rs_wait w = { 0 };
		rs_ring_lock(r);
		int res = rs_ring_run(r, &op, &w);
		rs_ring_unlock(r);
		__atomic_store_n(&accept_dontwait, res == -EBADF, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&probed, true, __ATOMIC_RELEASE);
}

/* A ring whose SQ thread a new ring can share, if any (live_lock held). */
static struct rs_ring *sq_anchor(void)
{
	if (sq_anchor_count < rs_cfg.sqpoll_threads || !sq_anchor_count)
		return NULL; /* this ring starts a thread of its own */
	return sq_anchors[sq_next++ % sq_anchor_count];
}

static int setup_plain(struct io_uring *u, unsigned entries, unsigned extra,
		       struct io_uring_params *base)
{
	static const unsigned flag_sets[] = {
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
			IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
		IORING_SETUP_CQSIZE,
		0,
	};
	int ret = -EINVAL;
	for (size_t i = 0; i < RS_ARRAY_SIZE(flag_sets); i++) {
		struct io_uring_params p = *base;
		p.flags = flag_sets[i] | extra;
		p.cq_entries = entries * 4;
		if (rs_fault(RS_FAULT_cqsmall)) {
			entries = 8;
			p.cq_entries = 8;
		}
		ret = io_uring_queue_init_params(entries, u, &p);
		if (ret != -EINVAL)
			return ret;
	}
	return ret;
}

static int setup_uring(struct rs_ring *r, unsigned entries)
{
	struct io_uring_params base;
	memset(&base, 0, sizeof(base));
	if (rs_cfg.sqpoll && !__atomic_load_n(&sqpoll_refused, __ATOMIC_RELAXED)) {
		unsigned extra = IORING_SETUP_SQPOLL;
		base.sq_thread_idle = rs_cfg.sqpoll_idle_ms;
		if (rs_cfg.sqpoll_cpu >= 0) {
			extra |= IORING_SETUP_SQ_AFF;
			base.sq_thread_cpu = (unsigned)rs_cfg.sqpoll_cpu;
		}
		pthread_mutex_lock(&live_lock);
		struct rs_ring *anchor = sq_anchor();
		if (anchor) {
			extra |= IORING_SETUP_ATTACH_WQ;
			base.wq_fd = (unsigned)__atomic_load_n(&anchor->uring.ring_fd,
							       __ATOMIC_RELAXED);
		}
		int ret = setup_plain(&r->uring, entries, extra, &base);
		if (ret && anchor) {
			/* The shared thread is gone: start one of our own. */
			extra &= ~IORING_SETUP_ATTACH_WQ;
			base.wq_fd = 0;
			ret = setup_plain(&r->uring, entries, extra, &base);
			anchor = NULL;
		}
		if (!ret) {
			r->sqpoll = true;
			r->sq_group = anchor ? anchor->sq_group : ++sq_groups;
			__atomic_store_n(&sqpoll_used, true, __ATOMIC_RELAXED);
			if (!anchor && sq_anchor_count < MAX_SQ_ANCHORS)
				sq_anchors[sq_anchor_count++] = r;
		}
		pthread_mutex_unlock(&live_lock);
		if (!ret)
			return 0;
		__atomic_store_n(&sqpoll_refused, true, __ATOMIC_RELAXED);
		rs_log_once(LOG_ONCE_SQPOLL, RS_LOG_WARN,
			    "SQPOLL refused (errno %d); running without a submission thread", -ret);
		memset(&base, 0, sizeof(base));
	}
	return setup_plain(&r->uring, entries, 0, &base);
}

static const char *why_no_uring(int err)
{
	switch (err) {
	case -ENOSYS:
		return "io_uring_setup is not available (old kernel or seccomp)";
	case -EPERM:
		return "io_uring_setup was refused (kernel.io_uring_disabled or seccomp)";
	case -ENOMEM:
		return "no memory for the ring (RLIMIT_MEMLOCK too small, or out of memory)";
	case -EMFILE:
	case -ENFILE:
		return "no free file descriptor for the ring";
	default:
		return "io_uring_setup failed";
	}
}

/* Rings of exited threads, kept for the next threads: setting a ring up
 * (io_uring_setup, mmap, moving its fd high, registering it) costs far more
 * than the thread itself. Only plain rings go here: one with an SQ thread
 * or batch state (buffer rings, armed receives, direct descriptors) is
 * bound up with its own history. A pooled ring keeps its fd and still
 * counts towards RINGSHIM_MAX_RINGS. Under live_lock. */
#define RING_POOL_MAX 16
static struct rs_ring *ring_pool[RING_POOL_MAX];
static unsigned ring_pool_n;

static bool ring_pool_put(struct rs_ring *r)
{
	/* Fd state naming it (a send the exit could not finish): a pooled
	 * ring goes to another thread, the state would follow it there. */
	if (r->sqpoll || r->batch || r->files_registered ||
	    __atomic_load_n(&r->refs, __ATOMIC_ACQUIRE) != 1)
		return false;
	bool kept = false;
	pthread_mutex_lock(&live_lock);
	if (ring_pool_n < RING_POOL_MAX && !r->lent) {
		/* The ring fd registration belonged to the exiting task. */
		r->uring.int_flags &= ~1u; /* liburing's INT_FLAG_REG_RING */
		r->uring.enter_ring_fd = r->uring.ring_fd;
		r->owner_tid = 0;
		ring_pool[ring_pool_n] = r;
		/* Atomic: ring_pool_get looks at the count without the lock. */
		__atomic_store_n(&ring_pool_n, ring_pool_n + 1, __ATOMIC_RELAXED);
		kept = true;
	}
	pthread_mutex_unlock(&live_lock);
	return kept;
}

static struct rs_ring *ring_pool_get(void)
{
	if (!__atomic_load_n(&ring_pool_n, __ATOMIC_RELAXED))
		return NULL;
	struct rs_ring *r = NULL;
	pthread_mutex_lock(&live_lock);
	if (ring_pool_n) {
		r = ring_pool[ring_pool_n - 1];
		__atomic_store_n(&ring_pool_n, ring_pool_n - 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&live_lock);
	if (r) {
		r->owner_tid = (pid_t)syscall(SYS_gettid);
		r->id = new_ring_id();
		io_uring_register_ring_fd(&r->uring);
		rs_tls_ring = r;
		rs_thread_note_state();
	}
	return r;
}

/* The lending ring, when the thread that owned it has exited: this thread
 * makes it its own (it still counts towards RINGSHIM_MAX_RINGS, so a
 * thread started after a ring holder exited gets a ring, as before there
 * was lending). Borrowers go on using it meanwhile. */
static struct rs_ring *lender_take_over(void)
{
	struct rs_ring *r = __atomic_load_n(&lender, __ATOMIC_ACQUIRE);
	if (!r)
		return NULL;
	pthread_mutex_lock(&live_lock);
	bool mine = r->orphan;
	if (mine) {
		r->orphan = false;
		r->owner_tid = (pid_t)syscall(SYS_gettid);
	}
	pthread_mutex_unlock(&live_lock);
	if (!mine)
		return NULL;
	io_uring_register_ring_fd(&r->uring);
	rs_tls_ring = r;
	rs_thread_note_state();
	return r;
}

struct rs_ring *rs_ring_borrow(void)
{
	struct rs_ring *r = __atomic_load_n(&lender, __ATOMIC_ACQUIRE);
	if (!r) {
		/* The main thread's ring, or else the oldest live ring
		 * (live_list is newest first): event loops and the state
		 * they armed (receives, the epoll instance's home) are most
		 * often there, so borrowers need not move them. */
		pthread_mutex_lock(&live_lock);
		r = lender;
		if (!r) {
			pid_t main_tid = getpid();
			for (struct rs_ring *x = live_list; x; x = x->next_live) {
				if (x->dead)
					continue; /* kept only for the fd state naming it */
				r = x;
				if (x->owner_tid == main_tid)
					break;
			}
			if (r) {
				r->lent = true;
				__atomic_store_n(&lender, r, __ATOMIC_RELEASE);
			}
		}
		pthread_mutex_unlock(&live_lock);
	}
	rs_tls_borrowed = r;
	return r;
}

void rs_ring_borrow_end(void)
{
	struct rs_ring *r = rs_tls_borrowed;
	if (!r)
		return;
	rs_tls_borrowed = NULL;
	rs_ring_lock(r);
	if (r->uring.sq.sqe_tail != r->uring.sq.sqe_head)
		rs_ring_poke(r);
	rs_ring_reap(r);
	rs_ring_unlock(r);
}

struct rs_ring *rs_ring_get_slow(enum rs_ring_unavailable *why)
{
	if (rs_tls_borrowed)
		return rs_tls_borrowed;
	if (process_no_uring) {
		*why = RS_RING_NO_URING;
		return NULL;
	}
	if (tls_unavailable != RS_RING_OK) {
		*why = tls_unavailable;
		return NULL;
	}
	if (rs_thread_exiting()) {
		*why = RS_RING_THREAD_FAIL;
		return NULL;
	}
	struct rs_ring *pooled = ring_pool_get();
	if (pooled)
		return pooled;
	if (__atomic_add_fetch(&live_rings, 1, __ATOMIC_ACQ_REL) > rs_cfg.max_rings) {
		__atomic_sub_fetch(&live_rings, 1, __ATOMIC_ACQ_REL);
		struct rs_ring *orphan = lender_take_over();
		if (orphan)
			return orphan;
		rs_log_once(LOG_ONCE_CAP, RS_LOG_INFO,
			    "RINGSHIM_MAX_RINGS=%u reached: further threads pass through to libc",
			    rs_cfg.max_rings);
		*why = tls_unavailable = RS_RING_CAP;
		return NULL;
	}

	if (rs_internal_fds_tight()) {
		/* A ring fd would take a number the program is about to need
		 * (its soft and hard RLIMIT_NOFILE are equal: nowhere to hide
		 * above them). */
		__atomic_sub_fetch(&live_rings, 1, __ATOMIC_ACQ_REL);
		rs_log_once(LOG_ONCE_FDS_TIGHT, RS_LOG_INFO,
			    "RLIMIT_NOFILE nearly used up (soft = hard): this thread passes through to libc");
		*why = tls_unavailable = RS_RING_CAP;
		return NULL;
	}
	struct rs_ring *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool gated = rs_fdgate_lock(); /* until the ring fd has moved high */
	int ret = r == MAP_FAILED ? -ENOMEM
		  : rs_fault(RS_FAULT_setup) ? -EPERM
					     : setup_uring(r, rs_cfg.ring_entries);
	if (ret == 0 && !(r->uring.features & IORING_FEAT_EXT_ARG)) {
		io_uring_queue_exit(&r->uring);
		ret = -ENOSYS;
		rs_log_once(LOG_ONCE_OLD_KERNEL, RS_LOG_WARN,
			    "kernel too old for ringshim (needs io_uring EXT_ARG, Linux 5.11); "
			    "passing all calls through to libc");
		process_no_uring = true;
	}
	if (ret < 0) {
		rs_fdgate_unlock(gated);
		if (r != MAP_FAILED)
			munmap(r, sizeof(*r));
		__atomic_sub_fetch(&live_rings, 1, __ATOMIC_ACQ_REL);
		rs_count(RS_C_rings_failed);
		if (ret == -ENOSYS || ret == -EPERM) {
			process_no_uring = true;
			rs_log_once(LOG_ONCE_NO_URING, RS_LOG_WARN,
				    "%s (errno %d); passing all calls through to libc",
				    why_no_uring(ret), -ret);
			*why = RS_RING_NO_URING;
		} else {
			rs_log_once(LOG_ONCE_THREAD_FAIL, RS_LOG_WARN,
				    "%s (errno %d); this thread passes its calls through to libc",
				    why_no_uring(ret), -ret);
			*why = tls_unavailable = RS_RING_THREAD_FAIL;
		}
		return NULL;
	}

	tsan_new_ring_memory(&r->uring);
	pthread_mutex_init(&r->lock, NULL);
	r->refs = 1; /* this thread's */
	r->id = new_ring_id();
	r->owner_tid = (pid_t)syscall(SYS_gettid);
	io_uring_register_ring_fd(&r->uring);
	/* The ring's fd must not take a number the program expects to get.
	 * Moved under live_lock: a SQPOLL ring is already an anchor, which
	 * other threads' setup_uring attach to by its fd number under that
	 * lock; they must never see the low number, closed here. */
	pthread_mutex_lock(&live_lock);
	int fd = rs_internal_fd_move_high(r->uring.ring_fd, ring_fd_moved, r);
	ring_fd_moved(r, r->uring.ring_fd, fd);
	pthread_mutex_unlock(&live_lock);
	rs_fdgate_unlock(gated);
	if (!__atomic_load_n(&probed, __ATOMIC_ACQUIRE))
		probe_kernel(r);

	pthread_mutex_lock(&live_lock);
	r->next_live = live_list;
	live_list = r;
	pthread_mutex_unlock(&live_lock);
	rs_count(RS_C_rings_created);
	rs_gauge_add(RS_G_RINGS_LIVE, 1);
	rs_tls_ring = r;
	rs_thread_note_state();
	return r;
}

/* live_lock held. */
static void unlink_live_locked(struct rs_ring *r)
{
	for (struct rs_ring **p = &live_list; *p; p = &(*p)->next_live) {
		if (*p == r) {
			*p = r->next_live;
			break;
		}
	}
	/* The SQ thread outlives the ring that started it while other rings
	 * are attached (the kernel counts them): one of those becomes the
	 * ring new ones attach through, so the process keeps one thread. */
	for (unsigned i = 0; i < sq_anchor_count; i++) {
		if (sq_anchors[i] != r)
			continue;
		struct rs_ring *heir = live_list;
		while (heir && heir->sq_group != r->sq_group)
			heir = heir->next_live;
		if (heir)
			sq_anchors[i] = heir;
		else
			sq_anchors[i] = sq_anchors[--sq_anchor_count];
		break;
	}
}

char *rs_ring_bounce(struct rs_ring *r)
{
	if (!r->bounce) {
		void *p = mmap(NULL, RS_RING_BOUNCE_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r->bounce = p == MAP_FAILED ? NULL : p;
	}
	return r->bounce;
}

static void destroy_ring(struct rs_ring *r)
{
	int fd = r->uring.ring_fd;
	rs_ring_batch_free(r);
	if (r->bounce)
		munmap(r->bounce, RS_RING_BOUNCE_SIZE);
	io_uring_queue_exit(&r->uring);
	rs_internal_fd_remove(fd);
	munmap(r, sizeof(*r));
}

static void ring_destroy_dead(struct rs_ring *r)
{
	pthread_mutex_lock(&live_lock);
	unlink_live_locked(r);
	pthread_mutex_unlock(&live_lock);
	destroy_ring(r);
	__atomic_sub_fetch(&live_rings, 1, __ATOMIC_ACQ_REL);
	rs_gauge_add(RS_G_RINGS_LIVE, -1);
}

void rs_ring_put(struct rs_ring *r)
{
	if (r && !__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
		ring_destroy_dead(r);
}

void rs_ring_thread_exit(void)
{
	struct rs_ring *r = rs_tls_ring;
	if (!r)
		return;
	rs_tls_ring = NULL;
	/* Strict ops never outlive their call; whatever is still queued is
	 * submitted so it is not silently dropped. */
	rs_ring_lock(r);
	rs_ring_submit(r);
	rs_ring_reap(r);
	rs_ring_unlock(r);
	if (ring_pool_put(r))
		return;
	/* Borrowers may be inside calls on the lent ring, and fd state or
	 * other threads' calls may still name any ring (a send the exit
	 * could not finish, a reader about to lock it): it stays, ownerless,
	 * the lent one until a new thread takes it over (lender_take_over),
	 * any other until its last reference goes (rs_ring_put). The ring fd
	 * registration belonged to this task; others enter under the lock. */
	rs_ring_lock(r);
	r->uring.int_flags &= ~1u; /* liburing's INT_FLAG_REG_RING */
	r->uring.enter_ring_fd = r->uring.ring_fd;
	rs_ring_unlock(r);
	pthread_mutex_lock(&live_lock);
	bool lent = r->lent;
	r->owner_tid = 0;
	if (lent)
		r->orphan = true;
	else
		r->dead = true; /* from here no borrower picks it as the lender */
	pthread_mutex_unlock(&live_lock);
	if (!lent)
		rs_ring_put(r);
}

/* The child of fork() shares the parent's ring memory (it is MAP_SHARED)
 * and must never touch it: drop our mappings and fds and start afresh. */
void rs_ring_after_fork_child(void)
{
	struct rs_ring *r = live_list;
	live_list = NULL;
	pthread_mutex_init(&live_lock, NULL);
	while (r) {
		struct rs_ring *next = r->next_live;
		destroy_ring(r);
		r = next;
	}
	live_rings = 0;
	ring_pool_n = 0;
	lender = NULL;
	rs_tls_borrowed = NULL;
	sq_anchor_count = 0;
	rs_tls_ring = NULL;
	tls_unavailable = RS_RING_OK;
}
