/* Completion-based receive: a multishot recv per watched TCP socket, into a
 * ring of provided buffers; each completion's bytes are copied to the fd's
 * stash and the buffer goes straight back to the kernel, so one slow reader
 * cannot starve the others of buffers. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "batch.h"
#include "config.h"
#include "fault.h"
#include "log.h"
#include "stats.h"
#include "vg.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define RX_BUFS_MAX 256
#define RX_BUF_SIZE 4096
#define RX_BGID 0

struct rs_ring_batch {
	struct io_uring_buf_ring *br;
	char *bufs;
	size_t br_size;
	unsigned nbufs;
	unsigned returned; /* lent buffers read and waiting to be recycled */
	struct rs_ring *ring; /* whose buffers these are */
	/* When a buffer's bytes cannot be copied out (no memory), the buffer
	 * itself joins the stash through one of these, and goes back to the
	 * kernel once read: nothing received is ever dropped. */
	struct rs_chunk lent[RX_BUFS_MAX];
};

int rs_ring_batch_init(struct rs_ring *r)
{
	if (r->batch)
		return 0;
	struct rs_ring_batch *rb = mmap(NULL, sizeof(*rb), PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rb == MAP_FAILED)
		return -ENOMEM;
	/* The enobufs fault leaves a handful of buffers, so receives run out. */
	rb->nbufs = rs_fault(RS_FAULT_enobufs) ? 4 : RX_BUFS_MAX;
	rb->br_size = rb->nbufs * sizeof(struct io_uring_buf);
	rb->br = mmap(NULL, rb->br_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rb->bufs = mmap(NULL, (size_t)rb->nbufs * RX_BUF_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret = -ENOMEM;
	if (rb->br != MAP_FAILED && rb->bufs != MAP_FAILED) {
		struct io_uring_buf_reg reg;
		memset(&reg, 0, sizeof(reg));
		reg.ring_addr = (uint64_t)(uintptr_t)rb->br;
		reg.ring_entries = rb->nbufs;
		reg.bgid = RX_BGID;
		ret = io_uring_register_buf_ring(&r->uring, &reg, 0);
	}
	if (ret) {
		if (rb->br != MAP_FAILED)
			munmap(rb->br, rb->br_size);
		if (rb->bufs != MAP_FAILED)
			munmap(rb->bufs, (size_t)rb->nbufs * RX_BUF_SIZE);
		munmap(rb, sizeof(*rb));
		rs_log_once(20, RS_LOG_INFO,
			    "provided buffer rings unavailable (errno %d): reads stay one call each",
			    -ret);
		return ret;
	}
	io_uring_buf_ring_init(rb->br);
	for (unsigned i = 0; i < rb->nbufs; i++)
		io_uring_buf_ring_add(rb->br, rb->bufs + (size_t)i * RX_BUF_SIZE, RX_BUF_SIZE,
				      (unsigned short)i, io_uring_buf_ring_mask(rb->nbufs), (int)i);
	io_uring_buf_ring_advance(rb->br, (int)rb->nbufs);
	rb->ring = r;
	r->batch = rb;
	return 0;
}

void rs_ring_batch_free(struct rs_ring *r)
{
	struct rs_ring_batch *rb = r->batch;
	if (!rb)
		return;
	munmap(rb->br, rb->br_size);
	munmap(rb->bufs, (size_t)rb->nbufs * RX_BUF_SIZE);
	munmap(rb, sizeof(*rb));
	r->batch = NULL;
}

static void recycle(struct rs_ring_batch *rb, unsigned bid)
{
	io_uring_buf_ring_add(rb->br, rb->bufs + (size_t)bid * RX_BUF_SIZE, RX_BUF_SIZE,
			      (unsigned short)bid, io_uring_buf_ring_mask(rb->nbufs), 0);
	io_uring_buf_ring_advance(rb->br, 1);
}

/* A lent buffer was read: back to the kernel. Runs where the stash is
 * consumed (fdb->lock held); the provided-buffer ring tolerates adds from
 * any thread only under the ring's lock, which a reader may not hold — so
 * the buffer is queued here and recycled at the next reap. */
static void lent_release(struct rs_chunk *c)
{
	struct rs_ring_batch *rb = (struct rs_ring_batch *)c->owner_data;
	struct rs_ring *r = rb->ring;
	__atomic_store_n(&c->head, UINT32_MAX, __ATOMIC_RELEASE); /* returned */
	__atomic_add_fetch(&rb->returned, 1, __ATOMIC_RELEASE);
	rs_ring_put(r); /* the stash's hold on the buffer's ring */
}

void rs_rx_recycle_returned(struct rs_ring *r)
{
	struct rs_ring_batch *rb = r->batch;
	if (!rb || !__atomic_load_n(&rb->returned, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&rb->returned, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < rb->nbufs; i++) {
		if (__atomic_load_n(&rb->lent[i].head, __ATOMIC_ACQUIRE) == UINT32_MAX) {
			rb->lent[i].head = 0;
			rb->lent[i].release = NULL;
			recycle(rb, i);
		}
	}
}

static void rx_done(struct rs_op *op, int res, uint32_t cflags);
static void submit_cancel(struct rs_ring *r, struct rs_fdb *b);

/* Stop receiving ahead until reads make room (r->lock, b->lock held).
 * The socket is not watched by a receive meanwhile, but a state change
 * (the peer's FIN, a reset, an error) must still reach the readiness at
 * once, as the kernel reports it whatever is unread: the watch (wb.c)
 * stays armed for it and ends the pause when it fires. */
static void rx_pause(struct rs_ring *r, struct rs_fdb *b)
{
	b->rx_paused = true;
	submit_cancel(r, b);
	rs_wb_watch_arm(r, b);
}

static void submit_cancel(struct rs_ring *r, struct rs_fdb *b)
{
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&b->rx_op, 0);
	sqe->user_data = 0;
	b->rx_cancel_sent = true;
}

bool rs_rx_active(struct rs_fdb *b)
{
	return b->rx_armed || b->rq.bytes || b->rx_eof || b->sk_err || rs_fork_stash_bytes(b);
}

void rs_rx_arm(struct rs_ring *r, struct rs_fdb *b)
{
	if (b->rx_armed || !(b->flags & FDB_RX) ||
	    (b->flags & (FDB_CLOSED | FDB_NO_REARM | FDB_SHARED)) ||
	    b->rx_eof || b->sk_err || (b->flags & FDB_RESET) || b->rx_paused)
		return;
	if (!r->batch && rs_ring_batch_init(r)) {
		b->flags |= FDB_NO_REARM;
		return;
	}
	rs_rx_recycle_returned(r);
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return;
	io_uring_prep_recv_multishot(sqe, b->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RX_BGID;
	sqe->user_data = (uint64_t)(uintptr_t)&b->rx_op;
	b->rx_op.complete = rx_done;
	b->rx_armed = true;
	__atomic_store_n(&b->rx_used, true, __ATOMIC_RELEASE);
	b->rx_cancel_sent = false;
	b->rx_seq = r->uring.sq.sqe_tail;
	rs_ring_slot_set(&b->rx_ring, r);
	rs_fdb_ref(b);
}

static void rx_done(struct rs_op *op, int res, uint32_t cflags)
{
	struct rs_fdb *b = container_of(op, struct rs_fdb, rx_op);
	struct rs_ring *r = b->rx_ring;
	bool more = cflags & IORING_CQE_F_MORE;
	rs_rx_recycle_returned(r);
	pthread_mutex_lock(&b->lock);
	if (cflags & IORING_CQE_F_BUFFER) {
		unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;
		char *data = r->batch->bufs + (size_t)bid * RX_BUF_SIZE;
		bool lent = false;
		if (res > 0)
			RS_VG_DEFINED(data, (size_t)res); /* the kernel filled it */
		if (res > 0 && !(b->flags & FDB_CLOSED)) {
			if (rs_bq_append(&b->rq, data, (size_t)res, 1) < 0) {
				/* No memory for a copy: the stash keeps the buffer
				 * itself, and stops taking more until it is read. */
				struct rs_chunk *c = &r->batch->lent[bid];
				c->head = 0;
				c->tail = (uint32_t)res;
				c->base = data;
				c->release = lent_release;
				c->owner_data = (uintptr_t)r->batch;
				rs_bq_append_lent(&b->rq, c);
				/* The buffer must outlive the ring's thread. */
				rs_ring_hold(r);
				lent = true;
				if (b->rx_armed && !b->rx_cancel_sent && !b->rx_no_pause)
					rx_pause(r, b);
			}
			rs_gauge_add(RS_G_STASH_BYTES, res);
			rs_count_n(RS_C_stash_bytes_in, (uint64_t)res);
		}
		if (!lent)
			recycle(r->batch, bid);
	}
	if (res == 0)
		b->rx_eof = true;
	else if (res == -ENOBUFS)
		rs_count(RS_C_enobufs_rearms);
	else if (res < 0 && res != -ECANCELED)
		rs_fdb_set_error(b, -res);
	if (!more)
		b->rx_armed = false;
	if (b->rx_armed && !b->rx_cancel_sent && !b->rx_no_pause &&
	    b->rq.bytes >= rs_cfg.stash_fd_max) {
		/* Stop taking bytes the program is not reading: let the
		 * kernel's buffer and TCP flow control push back instead. */
		rx_pause(r, b);
	}
	/* The cancel of a pause ended the receive after reads had already
	 * emptied the stash: their resume found it still armed and left it
	 * paused, and no read will come to resume it (nothing is stashed, so
	 * nothing is ready): resume here, or the socket's bytes wait for
	 * good. A stash not yet empty is resumed by the reads still to come
	 * (it is ready for them). */
	if (!more && b->rx_paused && !b->rq.bytes)
		b->rx_paused = false;
	/* Buffers ran out, or the CQ overflowed, or the pause just ended, or
	 * it was cancelled by nobody here: the kernel ends a poll-driven
	 * request with ECANCELED once the task that submitted it has exited
	 * (a thread that submitted this ring's SQ while borrowing it, or
	 * while closing or writing on another thread's fd). A cancel meant to
	 * end it for good set FDB_NO_REARM, a pause still on keeps rx_paused:
	 * rs_rx_arm checks both. */
	if (!more)
		rs_rx_arm(r, b);
	/* Bytes wake readers (IN); EOF or an error is a state change that
	 * wakes everyone; running out of buffers or a cancel is no event. */
	bool state = !more && res != -ENOBUFS && res != -ECANCELED;
	rs_fdb_update_ready_key(b, res > 0 ? RS_EV_IN : state ? RS_WAKE_ALL : 0);
	pthread_mutex_unlock(&b->lock);
	if (!more)
		rs_fdb_unref(b);
}

void rs_rx_disarm(struct rs_ring *r, struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	b->flags |= FDB_NO_REARM;
	bool armed = b->rx_armed;
	/* Held: its thread may exit meanwhile. */
	struct rs_ring *rr = armed ? rs_ring_hold(b->rx_ring) : NULL;
	pthread_mutex_unlock(&b->lock);
	if (!armed)
		return;
	if (rr != r) {
		rs_ring_unlock(r);
		rs_ring_lock(rr);
	}
	pthread_mutex_lock(&b->lock);
	if (b->rx_armed && !b->rx_cancel_sent)
		submit_cancel(rr, b);
	pthread_mutex_unlock(&b->lock);
	for (;;) {
		rs_ring_reap(rr);
		pthread_mutex_lock(&b->lock);
		armed = b->rx_armed;
		pthread_mutex_unlock(&b->lock);
		if (!armed)
			break;
		rs_ring_wait_any(rr, NULL, NULL);
	}
	if (rr != r) {
		rs_ring_unlock(rr);
		rs_ring_lock(r);
	}
	rs_ring_put(rr);
}

long rs_rx_read(struct rs_fdb *b, const struct iovec *iov, int cnt, int flags)
{
	/* Bytes stashed before a fork come first: they were received before
	 * anything the stash took since (nothing: receive-ahead stops at
	 * fork, but a stash may hold bytes from before). */
	if (b->fork_stash) {
		long n = rs_fork_stash_read(b, iov, cnt, flags);
		/* 0 with bytes still there is a zero-length read, served: the
		 * kernel's recv of 0 bytes returns 0 when data is queued
		 * (tcp_recvmsg finds the skb, copies nothing), as the rq path
		 * below does; falling through would see an empty rq and report
		 * EAGAIN or block. */
		if (n || rs_fork_stash_bytes(b))
			return n;
	}
	if (b->rq.bytes) {
		long n;
		if (flags & MSG_TRUNC) {
			/* TCP MSG_TRUNC: count, and unless peeking discard,
			 * without copying anything. */
			size_t want = 0;
			for (int i = 0; i < cnt; i++)
				want += iov[i].iov_len;
			n = (long)(want < b->rq.bytes ? want : b->rq.bytes);
			if (!(flags & MSG_PEEK))
				rs_bq_consume(&b->rq, (size_t)n);
		} else {
			n = rs_bq_copyout_iov(&b->rq, iov, cnt, flags & MSG_PEEK);
		}
		if (n > 0 && !(flags & MSG_PEEK)) {
			rs_gauge_add(RS_G_STASH_BYTES, -n);
			rs_fdb_update_ready(b, false);
		}
		return n;
	}
	if (b->sk_err) {
		/* Reported once, like sk_err; the stream then reads as ended. */
		int err = b->sk_err;
		if (!(flags & MSG_PEEK)) {
			rs_fdb_take_error(b);
			b->rx_eof = true;
		}
		return -err;
	}
	if (b->rx_eof || (b->flags & FDB_RESET))
		return 0;
	return RS_RX_EMPTY;
}

/* After a read drained the stash below half its limit, take bytes again. */
void rs_rx_maybe_resume(struct rs_ring *r, struct rs_fdb *b)
{
	if (b->rx_paused && !b->rx_armed && b->rq.bytes < rs_cfg.stash_fd_max / 2) {
		b->rx_paused = false;
		rs_rx_arm(r, b);
	}
}
