/* Write-behind: see batch.h. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "batch.h"
#include "config.h"
#include "fault.h"
#include "log.h"
#include "real.h"
#include "stats.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static size_t pending_total; /* all queues of the process, atomic */

size_t rs_wb_pending_total(void)
{
	return __atomic_load_n(&pending_total, __ATOMIC_RELAXED);
}

static void account(struct rs_fdb *b, long delta)
{
	(void)b;
	__atomic_add_fetch(&pending_total, (size_t)delta, __ATOMIC_RELAXED);
	rs_gauge_add(RS_G_WB_PENDING, delta);
}

void rs_wb_drop_queue(struct rs_fdb *b)
{
	account(b, -(long)b->wq.bytes);
	rs_bq_clear(&b->wq);
}

static void send_done(struct rs_op *op, int res, uint32_t cflags);
static void pollout_done(struct rs_op *op, int res, uint32_t cflags);

/* ---- the watch ------------------------------------------------------------
 * A write the kernel would fail (pending error, reset, closed) must fail
 * under the shim too, and in the same call. Such states arrive on their own
 * (an RST answering an earlier write), so each write-behind socket has a
 * one-shot poll for ERR|HUP|RDHUP armed; its wakeup sets IORING_SQ_TASKRUN,
 * which a write checks before queueing. Once it fired, writes go to the
 * kernel one by one: after a FIN from the peer a write may draw an RST that
 * the next write must report, and nothing but the kernel knows when. */

static void watch_done(struct rs_op *op, int res, uint32_t cflags)
{
	(void)cflags;
	struct rs_fdb *b = container_of(op, struct rs_fdb, watch_op);
	struct rs_ring *r = b->watch_ring;
	pthread_mutex_lock(&b->lock);
	__atomic_store_n(&b->watch_armed, false, __ATOMIC_RELAXED); /* see on_ring */
	b->watch_cancel_sent = false;
	if (res > 0) {
		b->flags |= FDB_WRITE_DIRECT;
		if (b->rx_paused) {
			/* Receiving ahead was paused (rx.c): take the rest
			 * now, up to the FIN or the error, so that they are
			 * reported. Nothing more can arrive after them: the
			 * kernel's receive buffer bounds what is taken, and
			 * there is no pausing again. */
			b->rx_paused = false;
			b->rx_no_pause = true;
			rs_rx_arm(r, b);
		}
	}
	pthread_mutex_unlock(&b->lock);
	rs_fdb_unref(b);
}

/* r->lock and b->lock held; true if a watch was prepared. */
static bool watch_arm(struct rs_ring *r, struct rs_fdb *b)
{
	if (b->watch_armed || (b->flags & (FDB_WRITE_DIRECT | FDB_CLOSED)) || b->fd < 0)
		return false;
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return false;
	io_uring_prep_poll_add(sqe, b->fd, POLLERR | POLLHUP | POLLRDHUP);
	sqe->user_data = (uint64_t)(uintptr_t)&b->watch_op;
	b->watch_op.complete = watch_done;
	/* Atomic: on_ring (fdb.c) reads these without b->lock. */
	__atomic_store_n(&b->watch_armed, true, __ATOMIC_RELAXED);
	rs_ring_slot_set(&b->watch_ring, r);
	b->watch_seq = r->uring.sq.sqe_tail;
	rs_fdb_ref(b);
	return true;
}

/* Under SQPOLL the watch lags behind the socket: its poll is taken from
 * the SQ by the kernel thread some time after we prepared it, and its
 * wake-up (an RST, a FIN) runs as task work on that thread, so the CQE
 * comes some microseconds after the kernel already knows — while natively
 * the very next write fails. Where the watch may not have seen the socket's
 * state yet — its SQE not consumed yet, or the first write of a burst
 * (nothing queued or in flight: the queue's later writes follow it within
 * one flush) — the socket is asked directly. Writes queued behind others
 * pay nothing. Without SQPOLL the wake-up sets IORING_SQ_TASKRUN at once
 * (rs_ring_has_news), and the poke that arms the watch runs it inline.
 *
 * The SQ thread answers while it is awake (rs_ring_sqpoll_probe: no system
 * call); where it sleeps or does not come within RINGSHIM_BUSY_POLL_US (or
 * 10 µs), one poll() with a zero timeout does. r->lock held, b->lock not. */
static bool sqpoll_state_check(struct rs_ring *r, struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	bool ask = false;
	if (!(b->flags & (FDB_WRITE_DIRECT | FDB_CLOSED)) && b->fd >= 0) {
		struct rs_ring *wr = b->watch_armed ? b->watch_ring : NULL;
		bool idle = !b->wq.bytes && !b->send_busy;
		bool unconsumed = wr && (int)(io_uring_smp_load_acquire(wr->uring.sq.khead) -
					      b->watch_seq) < 0;
		ask = idle || unconsumed || !wr;
	}
	int fd = b->fd;
	pthread_mutex_unlock(&b->lock);
	if (!ask)
		return false;
	const unsigned events = POLLERR | POLLHUP | POLLRDHUP;
	int found = rs_ring_sqpoll_probe(r, fd, events,
					 rs_cfg.busy_poll_us ? rs_cfg.busy_poll_us : 10);
	if (found >= 0) {
		rs_count(RS_C_state_probes);
	} else {
		rs_count(RS_C_state_polls);
		struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };
		found = RS_REAL(poll)(&pfd, 1, 0) == 1 ? pfd.revents & (short)events : 0;
	}
	if (!found)
		return false;
	pthread_mutex_lock(&b->lock);
	b->flags |= FDB_WRITE_DIRECT; /* what the watch does when it fires */
	pthread_mutex_unlock(&b->lock);
	return true;
}

void rs_wb_watch_arm(struct rs_ring *r, struct rs_fdb *b)
{
	watch_arm(r, b);
}

bool rs_wb_write_direct(struct rs_ring *r, struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	bool armed = b->watch_armed;
	struct rs_ring *wr = rs_ring_hold(b->watch_ring); /* its thread may exit */
	bool fresh = !armed && watch_arm(r, b);
	pthread_mutex_unlock(&b->lock);
	if (fresh || (armed && wr == r && rs_ring_has_news(r))) {
		/* A new watch answers at once if the state is already there;
		 * news may be the watch firing. */
		rs_ring_poke(r);
		rs_ring_reap(r);
	} else if (armed && wr != r && rs_ring_has_news(wr)) {
		rs_ring_unlock(r);
		rs_ring_lock(wr);
		rs_ring_reap(wr);
		rs_ring_unlock(wr);
		rs_ring_lock(r);
	}
	rs_ring_put(wr);
	pthread_mutex_lock(&b->lock);
	bool direct = b->flags & FDB_WRITE_DIRECT;
	pthread_mutex_unlock(&b->lock);
	if (!direct && r->sqpoll)
		direct = sqpoll_state_check(r, b);
	return direct;
}

/* One of b's polls or its send: the flags saying it is armed and that its
 * cancel went out, the field naming the ring it is armed on, its op, and
 * whether it only counts with nothing queued (a POLLOUT poll with bytes
 * behind it is what sends them). All b's fields, read under b->lock. */
struct armed_op {
	bool *armed, *cancel_sent;
	struct rs_ring **ring;
	struct rs_op *op;
	bool only_if_empty;
};

static bool op_armed(struct rs_fdb *b, const struct armed_op *a)
{
	return *a->armed && (!a->only_if_empty || !b->wq.bytes);
}

/* Cancel the op if it is armed on wr (wr->lock held, b->lock not) and wait
 * until it has ended there. Returns at once if it is not on wr: it may have
 * ended and been armed again on another thread's ring between the caller's
 * look and taking wr's lock, and a cancel sent to the wrong ring finds
 * nothing (ENOENT) while the cancel-sent flag would stay set, so no one
 * would ever cancel the real one: every waiter would wait forever
 * (mt_limits under SQPOLL: an exiting thread in rs_batch_ring_exit). */
static void cancel_on(struct rs_ring *wr, struct rs_fdb *b, const struct armed_op *a)
{
	for (;;) {
		rs_ring_reap(wr);
		pthread_mutex_lock(&b->lock);
		bool here = op_armed(b, a) && *a->ring == wr;
		if (here && !*a->cancel_sent) {
			/* (a full SQ: the wait below makes room) */
			struct io_uring_sqe *sqe = rs_ring_sqe(wr);
			if (sqe) {
				io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)a->op, 0);
				sqe->user_data = 0;
				*a->cancel_sent = true;
			}
		}
		pthread_mutex_unlock(&b->lock);
		if (!here)
			return;
		/* Bounded: another thread may be waiting on wr too and reap
		 * the completion we wait for; then no new one comes. */
		struct __kernel_timespec ts = { 0, 1000000 };
		rs_ring_wait_any(wr, &ts, NULL);
	}
}

/* only: disarm only an op armed on that ring (its thread exits), or NULL:
 * wherever it is. r->lock held. */
static void op_disarm(struct rs_ring *r, struct rs_fdb *b, struct rs_ring *only,
		      const struct armed_op *a)
{
	for (;;) {
		pthread_mutex_lock(&b->lock);
		bool armed = op_armed(b, a);
		struct rs_ring *wr = *a->ring;
		if (!armed || !wr || (only && wr != only)) {
			pthread_mutex_unlock(&b->lock);
			return;
		}
		rs_ring_hold(wr); /* its thread may exit */
		pthread_mutex_unlock(&b->lock);
		if (wr != r) {
			rs_ring_unlock(r);
			rs_ring_lock(wr);
		}
		cancel_on(wr, b, a);
		if (wr != r) {
			rs_ring_unlock(wr);
			rs_ring_lock(r);
		}
		rs_ring_put(wr);
		/* Ended on wr; look again in case it had moved on meanwhile. */
	}
}

static struct armed_op watch_of(struct rs_fdb *b)
{
	return (struct armed_op){ &b->watch_armed, &b->watch_cancel_sent, &b->watch_ring,
				  &b->watch_op, false };
}

void rs_wb_watch_disarm(struct rs_ring *r, struct rs_fdb *b)
{
	struct armed_op a = watch_of(b);
	op_disarm(r, b, NULL, &a);
}

void rs_wb_watch_disarm_ring(struct rs_ring *r, struct rs_fdb *b)
{
	struct armed_op a = watch_of(b);
	op_disarm(r, b, r, &a);
}

void rs_wb_send_cancel(struct rs_ring *r, struct rs_fdb *b)
{
	struct armed_op a = { &b->send_busy, &b->send_cancel_sent, &b->send_ring, &b->send_op,
			      false };
	op_disarm(r, b, NULL, &a);
}

void rs_wb_pollout_disarm(struct rs_ring *r, struct rs_fdb *b)
{
	struct armed_op a = { &b->pollout_armed, &b->pollout_cancel_sent, &b->send_ring,
			      &b->pollout_op, true };
	op_disarm(r, b, NULL, &a);
}

/* The send SQE prepared earlier is still in r's SQ, not yet seen by the
 * kernel: it can be widened to cover bytes queued since. */
static bool send_unsubmitted(const struct rs_fdb *b, const struct rs_ring *r)
{
	return b->send_busy && b->send_sqe && b->send_ring == r &&
	       b->send_epoch == r->submit_epoch;
}

static size_t describe(struct rs_fdb *b, bool wait_room)
{
	/* The shortsend fault sends a third of the queue, as a socket that
	 * takes only part of a send would. Not for a send that waits for
	 * room (MSG_WAITALL): the kernel never ends those short. */
	size_t limit = (size_t)1 << 30;
	if (!wait_room && rs_fault(RS_FAULT_shortsend) && b->wq.bytes > 1)
		limit = b->wq.bytes / 3 + 1;
	int n = rs_bq_iov(&b->wq, b->send_iov, RS_WB_IOV, limit);
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += b->send_iov[i].iov_len;
	b->send_msg.msg_iovlen = (size_t)n;
	return len;
}

/* Make sure a send for the queue's head is in r (r->lock and b->lock
 * held). One send per fd at a time keeps the byte order.
 *
 * A send normally has MSG_DONTWAIT: it finishes during the enter that
 * submits it. `wait_room` is for the rest after the socket took less than
 * offered (its buffer is full): a send with MSG_WAITALL and without
 * MSG_DONTWAIT, which io_uring itself retries as the socket drains (its
 * poll wake-ups run as task work, which wakes the submitting thread even
 * from a sleep outside the shim), so the bytes the program was told were
 * written reach the kernel without the thread calling in again. */
static void prep_send_mode(struct rs_ring *r, struct rs_fdb *b, bool wait_room)
{
	if (send_unsubmitted(b, r)) {
		b->send_len = describe(b, b->send_blocked);
		return;
	}
	if (b->send_busy || b->pollout_armed || b->sk_err || (b->flags & FDB_RESET) ||
	    !b->wq.bytes)
		return;
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return; /* retried at the next flush point */
	memset(&b->send_msg, 0, sizeof(b->send_msg));
	b->send_msg.msg_iov = b->send_iov;
	b->send_len = describe(b, wait_room);
	io_uring_prep_sendmsg(sqe, b->fd, &b->send_msg,
			      (wait_room ? MSG_WAITALL : MSG_DONTWAIT) | MSG_NOSIGNAL);
	sqe->user_data = (uint64_t)(uintptr_t)&b->send_op;
	b->send_op.complete = send_done;
	b->send_sqe = sqe;
	b->send_epoch = r->submit_epoch;
	rs_ring_slot_set(&b->send_ring, r);
	b->send_busy = true;
	b->send_blocked = wait_room;
	r->wb_dontwait_sends += !wait_room;
	rs_fdb_ref(b);
}

static void prep_send(struct rs_ring *r, struct rs_fdb *b)
{
	prep_send_mode(r, b, false);
}

static void prep_pollout(struct rs_ring *r, struct rs_fdb *b)
{
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, b->fd, POLLOUT);
	sqe->user_data = (uint64_t)(uintptr_t)&b->pollout_op;
	b->pollout_op.complete = pollout_done;
	b->pollout_armed = true;
	b->pollout_cancel_sent = false;
	rs_fdb_ref(b);
}

/* The shutdown(SHUT_WR) that waited for the queue, issued right here: an
 * IORING_OP_SHUTDOWN always runs on an io-wq worker, which looks the number
 * up only when it gets to it - after a close() that may follow at once, so
 * the FIN would be lost, or worse, sent on the next file to get the number.
 * b->fd is valid here (close keeps a hidden copy while this is pending). */
static void do_queued_shutdown(struct rs_fdb *b)
{
	b->flags &= ~FDB_SHUT_QUEUED;
	if (b->fd >= 0)
		RS_REAL(shutdown)(b->fd, SHUT_WR); /* its errors were reported by shutdown() */
}

static void send_done(struct rs_op *op, int res, uint32_t cflags)
{
	(void)cflags;
	struct rs_fdb *b = container_of(op, struct rs_fdb, send_op);
	struct rs_ring *r = b->send_ring;
	pthread_mutex_lock(&b->lock);
	/* Cancelled by rs_wb_send_cancel: no send follows (what part of it
	 * went is still counted, io_uring reports it instead of -ECANCELED).
	 * Cancelled by io_uring itself (the submitting thread exited):
	 * nothing went, the send is made again below, as for EAGAIN. */
	bool cancelled = b->send_cancel_sent;
	if (res == -ECANCELED && !cancelled)
		res = -EAGAIN;
	r->wb_dontwait_sends -= !b->send_blocked;
	b->send_busy = false;
	b->send_sqe = NULL;
	b->send_blocked = false;
	b->send_cancel_sent = false;
	bool was_full = b->wq.bytes >= rs_cfg.wb_fd_max;
	if (res > 0) {
		rs_bq_consume(&b->wq, (size_t)res);
		account(b, -res);
		rs_count_n(RS_C_wb_bytes, (uint64_t)res);
	} else if (res == -ECANCELED) {
		/* rs_wb_send_cancel: whoever cancelled decides about the
		 * bytes (a close that resets the connection drops them). */
	} else if (res < 0 && res != -EAGAIN) {
		/* The connection is gone; the bytes can never be sent. The
		 * error is reported on the fd's next call, as the kernel
		 * reports a pending socket error. */
		rs_fdb_set_error(b, -res);
		account(b, -(long)b->wq.bytes);
		rs_bq_clear(&b->wq);
		rs_count(RS_C_deferred_errors);
	}
	bool failed = b->sk_err || (b->flags & FDB_RESET);
	if (b->wq.bytes && !failed && !cancelled) {
		/* The socket is full (EAGAIN, or it took part): the rest
		 * waits in the kernel for room; or more than one send's
		 * worth is queued. Either way it is submitted now, in the
		 * flush that reaped this: the thread may not call in again
		 * for a long time (asleep on a condition variable). */
		bool full = res == -EAGAIN || (res >= 0 && (size_t)res < b->send_len);
		prep_send_mode(r, b, full);
		if (b->send_busy)
			rs_ring_submit(r);
	} else if ((b->flags & FDB_SHUT_QUEUED) && !failed && !cancelled) {
		do_queued_shutdown(b);
	}
	bool edge = was_full && b->wq.bytes < rs_cfg.wb_fd_max;
	rs_fdb_update_ready_key(b, failed ? RS_WAKE_ALL : edge ? RS_EV_OUT : 0);
	pthread_mutex_unlock(&b->lock);
	rs_fdb_unref(b);
}

static void pollout_done(struct rs_op *op, int res, uint32_t cflags)
{
	(void)res;
	(void)cflags;
	struct rs_fdb *b = container_of(op, struct rs_fdb, pollout_op);
	struct rs_ring *r = b->send_ring;
	pthread_mutex_lock(&b->lock);
	b->pollout_armed = false;
	b->pollout_cancel_sent = false;
	prep_send(r, b);
	/* Nothing queued to send (the socket filled up under sends that went
	 * to the kernel itself, see rs_wb_kernel_full): the room itself is
	 * the news, EPOLLOUT comes back now, with the kernel's POLLOUT
	 * wake-up. With a send prepared, it goes now (see send_done) and its
	 * completion says it. */
	if (!b->send_busy)
		rs_fdb_update_ready_key(b, RS_EV_OUT);
	else
		rs_ring_submit(r);
	pthread_mutex_unlock(&b->lock);
	rs_fdb_unref(b);
}

void rs_wb_kernel_full(struct rs_ring *r, struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	bool armed = false;
	if (!b->pollout_armed && !b->send_busy && !(b->flags & FDB_CLOSED) && b->fd >= 0) {
		rs_ring_slot_set(&b->send_ring, r);
		prep_pollout(r, b);
		armed = b->pollout_armed;
		rs_fdb_update_ready(b, false);
	}
	pthread_mutex_unlock(&b->lock);
	if (armed) {
		/* The poll answers at once if the socket has room again by
		 * now (a short send can leave some): then EPOLLOUT stays. */
		rs_ring_poke(r);
		rs_ring_reap(r);
	}
}

void rs_wb_prep(struct rs_ring *r, struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	if (!b->send_busy && !b->pollout_armed)
		prep_send(r, b);
	pthread_mutex_unlock(&b->lock);
}

bool rs_wb_kick(struct rs_ring *r, struct rs_fdb *b)
{
	rs_wb_prep(r, b);
	pthread_mutex_lock(&b->lock);
	bool pending = b->wq.bytes || b->send_busy;
	pthread_mutex_unlock(&b->lock);
	if (pending) {
		rs_ring_poke(r);
		/* Under SQPOLL the send runs on the SQ thread's time: wait for
		 * it, so that the answer says what the socket took. */
		if (r->sqpoll)
			rs_wb_settle(r);
		rs_ring_reap(r);
		pthread_mutex_lock(&b->lock);
		pending = b->wq.bytes || b->send_busy;
		pthread_mutex_unlock(&b->lock);
	}
	return pending;
}


long rs_wb_write(struct rs_ring *r, struct rs_fdb *b, const struct iovec *iov, int cnt,
		 size_t total)
{
	pthread_mutex_lock(&b->lock);
	long ret;
	bool flush = false;
	int err = rs_fdb_take_error(b);
	if (err) {
		ret = -err;
		goto out;
	}
	if (b->flags & (FDB_SHUT_WR | FDB_RESET)) {
		ret = -EPIPE; /* the write side is shut, by us or by a reset */
		goto out;
	}
	if (b->pollout_armed || b->send_blocked) {
		/* The socket itself is full: the kernel would say EAGAIN now,
		 * and so do we; EPOLLOUT comes when it drains. Queued bytes
		 * therefore never run more than one flush ahead of what the
		 * kernel accepts. */
		ret = -EAGAIN;
		goto out;
	}
	size_t room = b->wq.bytes < rs_cfg.wb_fd_max ? rs_cfg.wb_fd_max - b->wq.bytes : 0;
	size_t all = rs_wb_pending_total();
	size_t proc_room = all < rs_cfg.wb_max ? rs_cfg.wb_max - all : 0;
	if (proc_room < room)
		room = proc_room;
	if (!room) {
		/* What a full socket buffer does: EAGAIN now, EPOLLOUT once the
		 * queue drains. */
		ret = -EAGAIN;
		goto out;
	}
	size_t want = total < room ? total : room;
	size_t done = 0;
	for (int i = 0; i < cnt && done < want; i++) {
		size_t take = iov[i].iov_len < want - done ? iov[i].iov_len : want - done;
		if (!take)
			continue;
		long n = rs_bq_append(&b->wq, iov[i].iov_base, take, 0);
		if (n < 0) {
			if (!done) {
				ret = n;
				goto out;
			}
			break; /* a later bad buffer: like the kernel, keep what got in */
		}
		done += take;
	}
	account(b, (long)done);
	prep_send(r, b);
	flush = send_unsubmitted(b, r) && b->send_len >= rs_cfg.flush_bytes;
	rs_fdb_update_ready(b, false);
	ret = (long)done;
out:
	pthread_mutex_unlock(&b->lock);
	if (ret > 0 && flush) {
		/* Enough for a send of its own: hand it to the kernel now, which
		 * also tells whether the socket keeps up. */
		rs_ring_poke(r);
		rs_ring_reap(r);
	}
	return ret;
}

void rs_wb_settle(struct rs_ring *r)
{
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (r->wb_dontwait_sends) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >
		    RS_SETTLE_MS) {
			rs_log_once(21, RS_LOG_INFO,
				    "a write-behind send took over %d ms under SQPOLL; bytes queued "
				    "behind it wait for the thread's next call",
				    RS_SETTLE_MS);
			return;
		}
		struct __kernel_timespec ts = { 0, 1000000 };
		rs_ring_wait_any(r, &ts, NULL);
		rs_ring_reap(r);
	}
}

int rs_wb_drain(struct rs_ring *r, struct rs_fdb *b, bool interruptible)
{
	/* Part of a blocking call: a handler with SA_RESTART lets it go on. */
	struct rs_sig_mark mark = rs_sig_mark();
	for (;;) {
		pthread_mutex_lock(&b->lock);
		bool idle = !b->wq.bytes && !b->send_busy;
		int err = b->sk_err || (b->flags & FDB_RESET);
		struct rs_ring *sr = b->send_busy || b->pollout_armed ? b->send_ring : r;
		if (!idle && !err && !b->send_busy && !b->pollout_armed)
			prep_send(r, b);
		if (idle || err) {
			pthread_mutex_unlock(&b->lock);
			return 0;
		}
		rs_ring_hold(sr); /* its thread may exit */
		pthread_mutex_unlock(&b->lock);
		if (interruptible && rs_sig_interrupted(&mark, false)) {
			rs_ring_put(sr);
			return -EINTR;
		}
		if (sr != r) {
			/* The send lives in another thread's ring: reap it
			 * there (that thread runs its completion work). */
			rs_ring_unlock(r);
			rs_ring_lock(sr);
			rs_ring_reap(sr);
			if (!rs_ring_reap(sr))
				rs_ring_wait_any(sr, NULL, NULL);
			rs_ring_reap(sr);
			rs_ring_unlock(sr);
			rs_ring_lock(r);
		} else {
			rs_ring_wait_any(r, NULL, NULL);
			rs_ring_reap(r);
		}
		rs_ring_put(sr);
	}
}

int rs_wb_drain_bounded(struct rs_ring *r, struct rs_fdb *b)
{
	struct timespec last;
	clock_gettime(CLOCK_MONOTONIC, &last);
	size_t before = (size_t)-1;
	for (;;) {
		pthread_mutex_lock(&b->lock);
		bool idle = !b->wq.bytes && !b->send_busy;
		size_t left = b->wq.bytes;
		bool err = b->sk_err || (b->flags & FDB_RESET);
		if (!idle && !err && !b->send_busy && !b->pollout_armed)
			prep_send(r, b);
		if (idle || err) {
			pthread_mutex_unlock(&b->lock);
			return 0;
		}
		struct rs_ring *sr = rs_ring_hold(b->send_ring); /* its thread may exit */
		pthread_mutex_unlock(&b->lock);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (left != before) {
			before = left;
			last = now;
		} else if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >
			   RS_FLUSH_STALL_MS) {
			rs_ring_put(sr);
			return -ETIMEDOUT;
		}
		struct __kernel_timespec ts = { 0, 100 * 1000 * 1000 };
		if (sr && sr != r) {
			rs_ring_unlock(r);
			rs_ring_lock(sr);
			rs_ring_reap(sr);
			rs_ring_wait_any(sr, &ts, NULL);
			rs_ring_reap(sr);
			rs_ring_unlock(sr);
			rs_ring_lock(r);
		} else {
			rs_ring_wait_any(r, &ts, NULL);
			rs_ring_reap(r);
		}
		rs_ring_put(sr);
	}
}
