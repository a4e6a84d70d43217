/* Batch mode: per-fd state the shim holds between calls.
 *
 *  - write-behind: bytes written to a nonblocking stream socket are copied
 *    into the fd's queue and a send for them is prepared in the ring at once,
 *    unsubmitted; later writes before the next io_uring_enter extend that same
 *    send, so many small writes leave as one. Any io_uring_enter (epoll_wait,
 *    a call that blocks, a full SQ, exit) submits it. Sends are MSG_DONTWAIT
 *    and complete during the enter; what the socket did not take stays queued
 *    and goes out when a POLLOUT poll fires.
 *  - completion-based receive: TCP sockets the program watches (epoll, poll,
 *    select) have a multishot recv armed into a provided-buffer ring; the bytes
 *    land in the fd's stash and reads are served from it.
 *  - completion-based accept (acceptq.c), and epoll/poll/select emulation
 *    (epoll.c, pollsel.c) on top of the readiness kept here.
 *
 * Buffer ownership: the program's buffer is the program's again as soon as a
 * call returns (its bytes were copied); queue and stash chunks belong to the
 * fd state and are freed only once no submitted op refers to them (send_busy
 * clear), and fd state is freed only when no op is in flight (refs).
 *
 * Locking: ring->lock (SQ/CQ, and every completion handler) is taken before
 * fdb->lock; readiness is published in fdb->ready for readers that hold only
 * an epoll lock. */
#ifndef RS_BATCH_H
#define RS_BATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "acceptq.h"
#include "bq.h"
#include "io.h"
#include "ring.h"

/* Chunks one send covers: with the default RINGSHIM_WB_FD_MAX (256 KiB,
 * 66 chunks, 67 with a part-sent head) a send that waits for room takes
 * the whole queue, so none of it waits for the thread's next entry. */
#define RS_WB_IOV 72

/* Readiness bits, the same values as EPOLL* / POLL*. */
#define RS_EV_IN 0x001
#define RS_EV_OUT 0x004
#define RS_EV_ERR 0x008
#define RS_EV_HUP 0x010
#define RS_EV_RDNORM 0x040
#define RS_EV_WRNORM 0x100
#define RS_EV_RDHUP 0x2000

enum {
	FDB_WB = 1u << 0,	   /* write-behind allowed (stream socket) */
	FDB_RX = 1u << 1,	   /* completion-based receive allowed (TCP) */
	FDB_LISTEN = 1u << 2,	   /* listening socket */
	FDB_CLOSED = 1u << 3,	   /* the program closed it: no new work */
	FDB_NO_REARM = 1u << 4,	   /* receive must not be re-armed */
	FDB_SHUT_WR = 1u << 5,	   /* program called shutdown(SHUT_WR/RDWR) */
	FDB_SHUT_QUEUED = 1u << 6, /* ...to be issued once the queue drains */
	FDB_RESET = 1u << 7,	   /* the connection was reset: HUP for good */
	FDB_WRITE_DIRECT = 1u << 8, /* the watch saw ERR/HUP/RDHUP: no write-behind */
	/* Inherited by fork (or otherwise shared with another process): its
	 * receive queue or backlog is the kernel's to share out, so nothing
	 * is received or accepted ahead on it ever again. */
	FDB_SHARED = 1u << 9,
	/* A unix stream socket: its peer's shutdown(SHUT_RD) fails its
	 * writes with no poll event the watch could see (fdb.c). */
	FDB_UNIX = 1u << 10,
	/* The program shut the reading side (shutdown SHUT_RD/RDWR): the
	 * kernel's RCV_SHUTDOWN, which poll reports as IN|RDHUP, and HUP with
	 * the write side shut too (fdb.c, compute_ready). */
	FDB_SHUT_RD = 1u << 11,
};

/* Bytes a stash held when the process forked, in memory both processes
 * map: each byte is read once, by whichever process reads first, as from
 * the socket's own receive queue (fdb.c). */
struct rs_fork_stash {
	int lock; /* spinlock, shared across the processes */
	/* Processes that hold the socket, as far as the shim sees: +1 at each
	 * fork, -1 when one closes its last number. The last close with bytes
	 * unread resets the connection, as the kernel's does. */
	int holders;
	size_t len, off;
	size_t map_size;
	char data[];
};

struct rs_epitem;
struct rs_acq;

struct rs_fdb {
	pthread_mutex_t lock;
	int fd; /* number new SQEs use (a hidden dup after close) */
	uint32_t gen;
	uint32_t flags;
	uint32_t ready; /* RS_EV_* snapshot, atomic */
	unsigned refs;	/* 1 per fd number that maps here + 1 per op in flight */
	unsigned nums;	/* fd numbers of the program that map here (dup) */

	/* write-behind */
	struct rs_bq wq;
	struct rs_ring *send_ring; /* ring that holds the prepared/sent send */
	struct io_uring_sqe *send_sqe;
	unsigned send_epoch;
	bool send_busy; /* a send referring to wq is in the kernel's hands */
	/* ...and it is the rest after a short send, waiting in the kernel
	 * for room (MSG_WAITALL, wb.c): the socket is full meanwhile. */
	bool send_blocked, send_cancel_sent;
	size_t send_len;
	struct msghdr send_msg;
	struct iovec send_iov[RS_WB_IOV];
	struct rs_op send_op;
	/* A POLLOUT poll: the socket was full; also what drops EPOLLOUT
	 * from the shim's readiness until the kernel has room again. */
	bool pollout_armed, pollout_cancel_sent;
	struct rs_op pollout_op;
	/* The watch: a poll for ERR|HUP|RDHUP, so that a write knows what the
	 * kernel would answer it (a reset, the peer gone) without asking. */
	bool watch_armed, watch_cancel_sent;
	struct rs_ring *watch_ring;
	/* The last shut_rd_gen it was asked for SEND_SHUTDOWN at (fdb.c);
	 * atomic, read without b->lock. */
	unsigned shut_probe_gen;
	/* The watch ring's SQ tail just past the watch's SQE: the kernel has
	 * taken the watch once the SQ head reaches it. */
	unsigned watch_seq;
	struct rs_op watch_op;
	/* The socket's pending error (sk_err), from a queued send or the
	 * receive: reported once, by the next read, write or SO_ERROR. */
	int sk_err;

	/* receive */
	struct rs_bq rq;
	struct rs_ring *rx_ring;
	bool rx_armed, rx_cancel_sent, rx_paused, rx_eof;
	/* The watch saw the peer's FIN or a reset while paused: what is left
	 * to receive is bounded, so it is all taken, without pausing. */
	bool rx_no_pause;
	/* A receive was armed once: the stash (bytes, EOF, error) comes
	 * before the socket for every later read, FDB_RX or not. */
	bool rx_used;
	/* FDB_RX, for b_read's look without b->lock (atomic; only ever
	 * cleared after attach, by rs_fdb_rx_off). */
	bool rx_allowed;
	/* rx_ring's SQ tail just past the receive's SQE: until the SQ head
	 * reaches it the kernel has not seen the receive (armed again by a
	 * reap, not yet submitted), and the socket may hold bytes. */
	unsigned rx_seq;
	struct rs_op rx_op;

	/* what the stash held at fork, shared with the other process */
	struct rs_fork_stash *fork_stash;

	/* accept */
	struct rs_acq *acq;

	struct rs_epitem *items; /* epoll registrations of this fd */
	struct rs_fdb *all_next, *all_prev;
	/* The socket's inode when made for a number that shares its socket
	 * (dup, inherited), so that the socket's other numbers find it; 0
	 * otherwise (fdb.c, shared_state). */
	unsigned long sock_ino;
};

/* The batch backend (io_batch.c). */
extern const struct rs_io rs_io_batch;

/* fd state: lookup, creation, release (fdb.c). */
struct rs_fdb *rs_fdb_get(int fd);
struct rs_fdb *rs_fdb_attach(int fd, uint32_t st);
void rs_fdb_ref(struct rs_fdb *b);
void rs_fdb_unref(struct rs_fdb *b);
/* Receiving ahead is off for good (b->lock held). */
static inline void rs_fdb_rx_off(struct rs_fdb *b)
{
	b->flags &= ~FDB_RX;
	__atomic_store_n(&b->rx_allowed, false, __ATOMIC_RELEASE);
}

/* Recompute b->ready and notify epoll items of an edge; b->lock held. */
void rs_fdb_update_ready(struct rs_fdb *b, bool edge);
/* The same with the wake-up's key, as the socket's wait queue is woken:
 * RS_EV_IN for bytes or a connection arriving, RS_EV_OUT for room to
 * write, RS_WAKE_ALL for a state change (FIN, reset, error, shutdown) —
 * an edge-triggered item only sees wake-ups whose key it asked for
 * (ep_poll_callback). 0: no wake-up, only bits that appear count. */
#define RS_WAKE_ALL 0xffffffffu
void rs_fdb_update_ready_key(struct rs_fdb *b, uint32_t key);
/* A dup of a number with batch state (or of an emulated epoll fd). */
void rs_batch_duped(int oldfd, int newfd);
/* The program's number `fd` is about to be closed (close, dup2 onto it,
 * close_range): settle whatever the shim holds for it first. */
void rs_batch_number_closing(int fd);

/* Write-behind (wb.c). All with r->lock held; b->lock taken inside. */
long rs_wb_write(struct rs_ring *r, struct rs_fdb *b, const struct iovec *iov, int cnt,
		 size_t total);
/* Submit and wait until b's queue is empty or failed (blocking paths,
 * close with SO_LINGER, fork, exit). Returns 0 or -errno; r->lock held. */
int rs_wb_drain(struct rs_ring *r, struct rs_fdb *b, bool interruptible);
/* Like rs_wb_drain, but gives up after RS_FLUSH_STALL_MS without progress
 * (exit, fork, thread exit): -ETIMEDOUT then. */
#define RS_FLUSH_STALL_MS 2000
int rs_wb_drain_bounded(struct rs_ring *r, struct rs_fdb *b);
/* Hand b's queue to the kernel now (r->lock held); true if bytes remain
 * because the socket is full. */
/* Prepare a send for b's queue unless one is out (r->lock held). */
void rs_wb_prep(struct rs_ring *r, struct rs_fdb *b);
bool rs_wb_kick(struct rs_ring *r, struct rs_fdb *b);
/* Whether a write to b must go to the kernel (after the queue) instead of
 * being queued: the socket has an error, was reset, or its peer sent a FIN
 * (a write may then draw a reset, which the next write must report). Arms
 * the watch on first use. r->lock held, b->lock not. */
bool rs_wb_write_direct(struct rs_ring *r, struct rs_fdb *b);
/* Arm the watch if it is not (r->lock and b->lock held): a receive
 * paused for a full stash ends when it fires (rx.c). */
void rs_wb_watch_arm(struct rs_ring *r, struct rs_fdb *b);
/* Cancel the watch and wait for it to end (close: an armed poll holds the
 * file open). r->lock held. */
void rs_wb_watch_disarm(struct rs_ring *r, struct rs_fdb *b);
/* The same, but only if the watch is armed on r itself (r's thread exits:
 * a watch another thread armed since on its own ring stays). */
void rs_wb_watch_disarm_ring(struct rs_ring *r, struct rs_fdb *b);
/* A send to b went to the kernel itself (out of memory to queue it, or
 * the watch fired) and the socket took only part, or nothing: arm a
 * POLLOUT poll so that the shim's readiness drops EPOLLOUT until the
 * kernel reports room, as its own poll would. r->lock held, b->lock not. */
void rs_wb_kernel_full(struct rs_ring *r, struct rs_fdb *b);
/* Cancel the send in flight, if any, and wait for it to end (a close
 * that drops the queue: the send points into it). The queue stays as it
 * is. r->lock held. */
void rs_wb_send_cancel(struct rs_ring *r, struct rs_fdb *b);
/* Cancel a POLLOUT poll that has no queued bytes behind it and wait for
 * it to end (close: the poll holds the file open; thread exit: the ring
 * goes). r->lock held. */
void rs_wb_pollout_disarm(struct rs_ring *r, struct rs_fdb *b);
/* Take the socket's pending error, if any (b->lock held). */
int rs_fdb_take_error(struct rs_fdb *b);
/* A send or receive failed: the socket's error is now pending. */
void rs_fdb_set_error(struct rs_fdb *b, int err);
size_t rs_wb_pending_total(void);
/* Forget b's queued bytes, and count them out of the process's total
 * (b->lock held, or b unreachable; no send in flight). */
void rs_wb_drop_queue(struct rs_fdb *b);
/* Under SQPOLL, before the thread sleeps outside the shim (r->lock held):
 * a MSG_DONTWAIT send completes after the call that queued it returned, and
 * only reaping its completion on r prepares the rest of the queue (or the
 * MSG_WAITALL send that waits for room, which then runs on its own). Reap
 * until no such send is left on r, for at most RS_SETTLE_MS. */
#define RS_SETTLE_MS 100
void rs_wb_settle(struct rs_ring *r);

/* Receive (rx.c). */
void rs_rx_arm(struct rs_ring *r, struct rs_fdb *b);
/* Cancel the armed receive and wait for it to end. r->lock held. */
void rs_rx_disarm(struct rs_ring *r, struct rs_fdb *b);
/* Serve a read from the stash. Returns bytes, 0 at EOF, -errno, or
 * RS_RX_EMPTY when the stash has nothing and the caller must wait. */
#define RS_RX_EMPTY (-4096 - 10)
long rs_rx_read(struct rs_fdb *b, const struct iovec *iov, int cnt, int flags);
bool rs_rx_active(struct rs_fdb *b);
/* Give the kernel back provided buffers that were lent to a stash and read
 * (r->lock held). */
void rs_rx_recycle_returned(struct rs_ring *r);
/* Re-arm a receive paused for a full stash once reads made room. */
void rs_rx_maybe_resume(struct rs_ring *r, struct rs_fdb *b);

/* SO_RCVLOWAT was set on fd: stop receiving ahead for it. */
void rs_batch_no_receive_ahead(int fd);

/* Process-wide moments (fdb.c): deliver every queued byte (exit, exec:
 * wait; before fork: hand it to the kernel); give up ring r's ops (its
 * thread exits); forget the parent's ops in a fork child. */
void rs_batch_init(void);
void rs_batch_flush_all(bool wait);
/* ...and has shut it: its peer's writes must fail from now on (fdb.c). */
void rs_batch_after_shut_rd(void);
/* close()/dup2() of fd is coming: see fdb.c. */
void rs_batch_before_close(int fd);
/* Every queue into the kernel now (before a unix SHUT_RD, close_range,
 * fork; `tcp`: past a full TCP socket too): see fdb.c. */
void rs_batch_push_all(bool tcp);
void rs_batch_ring_exit(struct rs_ring *r);
void rs_batch_after_fork_child(void);
/* Before fork(): stop receiving and accepting ahead on every fd (the child
 * inherits them all) and move stashed bytes to memory both will share. */
void rs_batch_before_fork(void);
/* In the child, after the epoll state is rebuilt: nothing receives or
 * accepts ahead here, so every registration is the kernel's. */
void rs_batch_fork_child_to_kernel(void);
/* Unread bytes of b's fork stash (b->lock held). */
size_t rs_fork_stash_bytes(const struct rs_fdb *b);
/* Serve a read from b's fork stash (b->lock held): bytes, -errno, or 0
 * when it holds nothing (then the rest of the stash applies). */
long rs_fork_stash_read(struct rs_fdb *b, const struct iovec *iov, int cnt, int flags);

/* Ring-level batch resources (provided buffers), created on first use. */
struct rs_ring_batch;
int rs_ring_batch_init(struct rs_ring *r);
void rs_ring_batch_free(struct rs_ring *r);

#endif
