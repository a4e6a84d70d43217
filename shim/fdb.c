/* Lifetime and readiness of batch-mode fd state. */
#include <errno.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "batch.h"
#include "config.h"
#include "acceptq.h"
#include "epoll.h"
#include "fdtable.h"
#include "internal_fds.h"
#include "log.h"
#include "real.h"
#include "stats.h"

/* Every fd state of the process, for exit, fork and thread exit. */
static struct rs_fdb *all;
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;

struct rs_fdb *rs_fdb_get(int fd)
{
	struct rs_fd *e = rs_fd_peek(fd);
	if (!e)
		return NULL;
	struct rs_fdb *b = __atomic_load_n((struct rs_fdb **)&e->batch, __ATOMIC_ACQUIRE);
	return b && RS_FD_KIND(__atomic_load_n(&e->state, __ATOMIC_ACQUIRE)) != RS_KIND_EPOLL ? b
												 : NULL;
}

/* Which batch features suit an fd of this kind and state. */
static uint32_t fdb_flags_for(uint32_t st)
{
	enum rs_kind k = RS_FD_KIND(st);
	unsigned f = RS_FD_FLAGS(st);
	if (!rs_kind_is_stream(k))
		return 0;
	/* Receiving or accepting ahead needs one state per socket: numbers
	 * that share a socket through dup, or with another process (fork,
	 * inherited, SCM_RIGHTS), are left to the kernel, which shares its
	 * receive queue and backlog out as the readers come. */
	/* Nor is write-behind for a socket another process may hold: it can
	 * shut the write side down there (or otherwise end it) without a
	 * sign the shim could watch for, and a queued write would then
	 * succeed where the kernel's fails with EPIPE (fuzz seed 5). */
	if (f & (RS_FD_DUPED | RS_FD_SHARED))
		return (f & (RS_FD_LISTENING | RS_FD_OTHER_PROC)) || !(f & RS_FD_STREAM_CONNECTED)
			       ? 0
			       : FDB_WB;
	/* Under SQPOLL a multishot receive would take bytes on the kernel
	 * thread's time: a read finding the stash empty could not tell that
	 * bytes had already arrived. Readiness stays with the kernel's epoll
	 * there, reads go through the ring one by one. */
	bool completions = !rs_cfg.sqpoll;
	if (f & RS_FD_LISTENING)
		return completions ? FDB_LISTEN : 0;
	if (!(f & RS_FD_STREAM_CONNECTED))
		return 0;
	return FDB_WB | (k == RS_KIND_TCP && completions && !(f & (RS_FD_RCVLOWAT | RS_FD_SHUT_RD))
				 ? FDB_RX
				 : 0);
}

/* Numbers duplicated before any of them had batch state (a dup before the
 * first write) are one socket, as numbers duplicated afterwards are
 * (rs_batch_duped): a shutdown, an error or bytes queued through one of
 * them concern every other, so they must share one state. Each number
 * making its own let a write through one number be queued after a
 * shutdown(SHUT_WR) through another (no EPIPE; fuzz seeds 62, 94). A
 * socket has one file, so its inode names it: the state of such a number
 * is recorded under it, and the socket's other numbers look for it. dup_lock
 * keeps two threads from each making one. */
static pthread_mutex_t dup_lock = PTHREAD_MUTEX_INITIALIZER;

/* A live state of the socket with inode ino, referenced; or NULL. */
static struct rs_fdb *shared_state(unsigned long ino)
{
	struct rs_fdb *found = NULL;
	pthread_mutex_lock(&all_lock);
	for (struct rs_fdb *b = all; b; b = b->all_next) {
		if (b->sock_ino == ino && __atomic_load_n(&b->nums, __ATOMIC_ACQUIRE)) {
			rs_fdb_ref(b);
			found = b;
			break;
		}
	}
	pthread_mutex_unlock(&all_lock);
	return found;
}

/* Map number e to the socket's existing state s (referenced by the
 * caller, reference handed over). Returns the state e maps to, or NULL
 * when s was closed meanwhile. */
static struct rs_fdb *join_state(struct rs_fd *e, struct rs_fdb *s)
{
	pthread_mutex_lock(&s->lock);
	bool alive = s->nums && !(s->flags & FDB_CLOSED);
	if (alive)
		s->nums++;
	pthread_mutex_unlock(&s->lock);
	if (!alive) {
		rs_fdb_unref(s);
		return NULL;
	}
	struct rs_fdb *none = NULL;
	if (__atomic_compare_exchange_n((struct rs_fdb **)&e->batch, &none, s, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return s;
	/* Another thread gave this number a state first. */
	pthread_mutex_lock(&s->lock);
	s->nums--;
	pthread_mutex_unlock(&s->lock);
	rs_fdb_unref(s);
	return none;
}

static struct rs_fdb *attach_new(int fd, struct rs_fd *e, uint32_t flags, unsigned long ino)
{
	struct rs_fdb *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->fd = fd;
	b->gen = __atomic_load_n(&e->gen, __ATOMIC_ACQUIRE);
	b->flags = flags;
	b->rx_allowed = flags & FDB_RX;
	b->refs = 1;
	b->nums = 1;
	b->sock_ino = ino;
	struct rs_fdb *none = NULL;
	if (!__atomic_compare_exchange_n((struct rs_fdb **)&e->batch, &none, b, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		return none;
	}
	pthread_mutex_lock(&b->lock);
	rs_fdb_update_ready(b, false);
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_lock(&all_lock);
	b->all_next = all;
	if (all)
		all->all_prev = b;
	all = b;
	pthread_mutex_unlock(&all_lock);
	rs_gauge_add(RS_G_FDS_MANAGED, 1);
	return b;
}

/* A unix stream socket whose peer shut its reading side (shutdown SHUT_RD)
 * has SEND_SHUTDOWN: the kernel fails its writes with EPIPE. No poll event
 * says so (unix_poll reports HUP only once both directions are shut, RDHUP
 * only for its own receiving side), so the watch never fires, and a write
 * queued after it returned the full count where natively it fails (fuzz
 * seed 2752835387: socketpair, send, the peer's SHUT_RD, send: EPIPE). A
 * zero-length send asks the kernel: it fails with EPIPE on SEND_SHUTDOWN and
 * otherwise moves nothing (a unix send reads no pending error, MSG_NOSIGNAL
 * raises nothing). Writes then go to the kernel, as after the watch fired.
 * Asked only once this process has shut a unix socket's reading side (a
 * peer in another process is not seen: known gap). b->lock held, so b->fd
 * is not closed under the send. */
static unsigned shut_rd_gen; /* +1 per unix SHUT_RD of this process; atomic */

static void probe_send_shutdown(struct rs_fdb *b, unsigned gen)
{
	/* Only forward: two shutdowns' walks must not undo each other's marks. */
	if ((int)(b->shut_probe_gen - gen) < 0)
		__atomic_store_n(&b->shut_probe_gen, gen, __ATOMIC_RELAXED);
	if ((b->flags & (FDB_UNIX | FDB_WB)) != (FDB_UNIX | FDB_WB) ||
	    (b->flags & (FDB_WRITE_DIRECT | FDB_CLOSED)) || b->fd < 0)
		return;
	int saved = errno;
	if (RS_REAL(send)(b->fd, NULL, 0, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EPIPE)
		b->flags |= FDB_WRITE_DIRECT;
	errno = saved;
}

struct rs_fdb *rs_fdb_attach(int fd, uint32_t st)
{
	struct rs_fdb *b = rs_fdb_get(fd);
	if (b)
		return b;
	uint32_t flags = fdb_flags_for(st);
	struct rs_fd *e = rs_fd_peek(fd);
	if (!flags || !e)
		return NULL;
	if ((flags & FDB_WB) && RS_FD_KIND(st) == RS_KIND_UNIX_STREAM)
		flags |= FDB_UNIX;
	/* Only a number that may share its socket asks for the inode (one
	 * fstat when its state is made). */
	struct stat sb;
	if (!(RS_FD_FLAGS(st) & (RS_FD_DUPED | RS_FD_SHARED)) || RS_REAL(fstat64)(fd, &sb) ||
	    !S_ISSOCK(sb.st_mode) || !sb.st_ino) {
		b = attach_new(fd, e, flags, 0);
	} else {
		unsigned long ino = (unsigned long)sb.st_ino;
		pthread_mutex_lock(&dup_lock);
		struct rs_fdb *s = shared_state(ino);
		b = s ? join_state(e, s) : NULL;
		if (!b)
			b = attach_new(fd, e, flags, ino);
		pthread_mutex_unlock(&dup_lock);
	}
	/* The peer may have shut its reading side before this first write
	 * (see probe_send_shutdown). Asked after b joined the list of all
	 * states, so a shutdown racing with this is seen by one side. */
	unsigned gen = __atomic_load_n(&shut_rd_gen, __ATOMIC_SEQ_CST);
	if (b && gen && (int)(__atomic_load_n(&b->shut_probe_gen, __ATOMIC_RELAXED) - gen) < 0) {
		pthread_mutex_lock(&b->lock);
		probe_send_shutdown(b, gen);
		pthread_mutex_unlock(&b->lock);
	}
	return b;
}

void rs_fdb_ref(struct rs_fdb *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);
}

void rs_fdb_unref(struct rs_fdb *b)
{
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL))
		return;
	pthread_mutex_lock(&all_lock);
	if (b->all_prev)
		b->all_prev->all_next = b->all_next;
	else
		all = b->all_next;
	if (b->all_next)
		b->all_next->all_prev = b->all_prev;
	pthread_mutex_unlock(&all_lock);
	rs_acq_free(b);
	if (b->fork_stash)
		munmap(b->fork_stash, b->fork_stash->map_size);
	rs_gauge_add(RS_G_STASH_BYTES, -(int64_t)b->rq.bytes);
	rs_bq_clear(&b->rq);
	rs_wb_drop_queue(b);
	/* The rings the state last named (no op is in flight on them). */
	rs_ring_put(b->send_ring);
	rs_ring_put(b->rx_ring);
	rs_ring_put(b->watch_ring);
	if (b->fd >= 0 && rs_internal_fd_is(b->fd)) {
		/* The hidden copy kept open for the last sends. */
		rs_internal_fd_remove(b->fd);
		RS_REAL(close)(b->fd);
	}
	pthread_mutex_destroy(&b->lock);
	free(b);
	rs_gauge_add(RS_G_FDS_MANAGED, -1);
}

void rs_batch_duped(int oldfd, int newfd)
{
	struct rs_fd *o = rs_fd_peek(oldfd), *n = rs_fd_peek(newfd);
	if (!o || !n)
		return;
	if (RS_FD_KIND(__atomic_load_n(&o->state, __ATOMIC_ACQUIRE)) == RS_KIND_EPOLL) {
		rs_epoll_duped(oldfd, newfd);
		return;
	}
	/* A connected stream socket gets its state now if it had none: it
	 * must outlive any one of the numbers (a shutdown(SHUT_WR) through the
	 * copy, then closed, still makes a write through the original fail;
	 * fuzz seed 62), which one state looked up by inode later (see
	 * shared_state) cannot promise once the copy's state is gone. */
	struct rs_fdb *b = rs_fdb_attach(oldfd, __atomic_load_n(&o->state, __ATOMIC_ACQUIRE));
	if (!b)
		return;
	/* Both numbers are one socket: they share its state, so bytes stashed
	 * or queued through one are seen through the other in order. */
	pthread_mutex_lock(&b->lock);
	b->nums++;
	pthread_mutex_unlock(&b->lock);
	rs_fdb_ref(b);
	__atomic_store_n((struct rs_fdb **)&n->batch, b, __ATOMIC_RELEASE);
}

/* Submit until nothing is left prepared on x (x locked). Completions
 * reaped here prepare follow-ups that name the same fd number (the next
 * send of a long queue, the shutdown(SHUT_WR) that waited for the queue):
 * left in the SQ past the real close, they would act on whatever file gets
 * the number next. */
static void settle(struct rs_ring *x)
{
	for (int i = 0; i < 64; i++) {
		rs_ring_poke(x);
		rs_ring_reap(x);
		struct io_uring_sq *sq = &x->uring.sq;
		if (sq->sqe_tail == sq->sqe_head && !io_uring_sq_ready(&x->uring))
			break;
	}
}

/* Submit whatever ring `other` has prepared (r locked by the caller). */
static void poke_ring(struct rs_ring *r, struct rs_ring *other)
{
	if (!other || other == r) {
		settle(r);
		return;
	}
	rs_ring_unlock(r);
	rs_ring_lock(other);
	settle(other);
	rs_ring_unlock(other);
	rs_ring_lock(r);
}

static void set_linger_zero(int fd)
{
	struct linger l = { 1, 0 };
	RS_REAL(setsockopt)(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

/* The last number of b is going (r locked). Whatever the shim prepared for
 * it names that number, valid only until the real close: it is handed to
 * the kernel first. Bytes still queued then go out through a hidden copy
 * of the socket, so the number is free at once and nothing sent later can
 * reach the next file that gets it; with nothing queued the state forgets
 * the number altogether. Armed receives and accepts are cancelled. */
static void close_last(struct rs_ring *r, struct rs_fdb *b, int fd)
{
	/* Held: their threads may exit meanwhile. */
	pthread_mutex_lock(&b->lock);
	struct rs_ring *sr = rs_ring_hold(b->send_ring), *rr = rs_ring_hold(b->rx_ring),
		       *qr = rs_acq_ring_hold(b);
	pthread_mutex_unlock(&b->lock);
	poke_ring(r, NULL);
	poke_ring(r, sr);
	poke_ring(r, rr);
	poke_ring(r, qr);
	rs_ring_put(sr);
	rs_ring_put(rr);
	rs_ring_put(qr);
	pthread_mutex_lock(&b->lock);
	b->flags |= FDB_CLOSED | FDB_NO_REARM;
	struct rs_fd *e = rs_fd_peek(fd);
	uint32_t st = e ? __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) : 0;
	bool linger = RS_FD_FLAGS(st) & RS_FD_LINGER;
	/* Bytes stashed before a fork are unread data in the socket for as
	 * long as any process holds it. */
	bool fork_unread = b->fork_stash &&
			   !__atomic_sub_fetch(&b->fork_stash->holders, 1, __ATOMIC_ACQ_REL) &&
			   rs_fork_stash_bytes(b);
	bool abort_close = b->rq.bytes > 0 || fork_unread || (linger && e && RS_FD_LOAD(e, linger_s) == 0);
	if (abort_close && b->send_busy) {
		/* A send still waiting for room points into the queue about
		 * to be dropped (and would hold the socket open): end it. */
		pthread_mutex_unlock(&b->lock);
		rs_wb_send_cancel(r, b);
		pthread_mutex_lock(&b->lock);
	}
	if (abort_close) {
		/* Unread received bytes (or SO_LINGER 0): the kernel resets
		 * the connection and drops what was not sent; the stashed
		 * bytes are not in its queue any more, so say it outright. */
		set_linger_zero(fd);
		rs_wb_drop_queue(b);
	}
	bool pending = (b->wq.bytes || (b->flags & FDB_SHUT_QUEUED)) && !b->sk_err &&
		       !(b->flags & FDB_RESET);
	if (pending && linger) {
		/* SO_LINGER: close() waits for the bytes, as the kernel's does
		 * (up to its timeout, checked by the drain). */
		pthread_mutex_unlock(&b->lock);
		rs_wb_drain_bounded(r, b);
		pthread_mutex_lock(&b->lock);
		pending = b->wq.bytes && !b->sk_err;
	}
	int drop = -1;
	if (pending && b->fd == fd) {
		b->fd = rs_internal_fd_hide(fd, NULL, NULL);
		rs_epoll_number_hidden(fd);
	} else if (b->fd == fd) {
		b->fd = -1;
	} else if (!pending && b->fd >= 0 && rs_internal_fd_is(b->fd)) {
		/* The copy hidden when an earlier number closed (see
		 * rs_batch_number_closing) is the file's last reference here
		 * once this number goes: held until b is freed, it kept the
		 * file open, and with it the kernel's epoll registrations made
		 * through any of its numbers, which natively vanish at this
		 * close (fuzz seed 1653089558: HUP after the last close). */
		drop = b->fd;
		b->fd = -1;
	}
	pthread_mutex_unlock(&b->lock);
	rs_rx_disarm(r, b);
	rs_wb_watch_disarm(r, b);
	rs_wb_pollout_disarm(r, b);
	/* Also a queue that stopped accepting ahead in this process alone
	 * (its epoll got nested): those connections are the backlog the
	 * kernel resets. */
	if ((b->flags & FDB_LISTEN) || (b->acq && !(b->flags & FDB_SHARED)))
		rs_acq_close(r, b);
	rs_epoll_forget_fdb(b);
	if (drop >= 0) {
		/* Last, as the program's number is closed after close_last:
		 * the file stays open for everything above. */
		rs_internal_fd_remove(drop);
		RS_REAL(close)(drop);
	}
}

/* A number was closed out of the shim's sight (raw syscall, or inside libc)
 * and now holds another file: drop the old state without touching the
 * number. */
static void stale_batch(int fd, uint32_t old_state, void *batch)
{
	(void)fd;
	if (RS_FD_KIND(old_state) == RS_KIND_EPOLL) {
		rs_epoll_release(batch);
		return;
	}
	struct rs_fdb *b = batch;
	pthread_mutex_lock(&b->lock);
	bool last = --b->nums == 0;
	pthread_mutex_unlock(&b->lock);
	if (last) {
		enum rs_ring_unavailable why;
		struct rs_ring *r = rs_ring_get(&why);
		if (r) {
			rs_ring_lock(r);
			pthread_mutex_lock(&b->lock);
			b->flags |= FDB_CLOSED;
			pthread_mutex_unlock(&b->lock);
			rs_rx_disarm(r, b);
			rs_wb_watch_disarm(r, b);
			rs_wb_pollout_disarm(r, b);
			rs_wb_send_cancel(r, b);
			rs_ring_unlock(r);
		}
		pthread_mutex_lock(&b->lock);
		b->flags |= FDB_CLOSED | FDB_NO_REARM;
		if (!b->send_busy) {
			/* (A send in flight points into it: freed with b.) */
			rs_wb_drop_queue(b);
		}
		pthread_mutex_unlock(&b->lock);
		rs_epoll_forget_fdb(b);
	}
	rs_fdb_unref(b);
}

void rs_batch_init(void)
{
	rs_fd_stale_batch_hook = stale_batch;
}

void rs_batch_number_closing(int fd)
{
	struct rs_fd *e = rs_fd_peek(fd);
	if (!e || !__atomic_load_n(&e->batch, __ATOMIC_ACQUIRE))
		return;
	if (RS_FD_KIND(__atomic_load_n(&e->state, __ATOMIC_ACQUIRE)) == RS_KIND_EPOLL) {
		rs_epoll_closed(fd);
		return;
	}
	struct rs_fdb *b = __atomic_exchange_n((struct rs_fdb **)&e->batch, NULL, __ATOMIC_ACQ_REL);
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	bool last = --b->nums == 0;
	if (!last && b->fd == fd) {
		/* Other numbers remain: new SQEs need a number that stays. */
		int hidden = rs_internal_fd_hide(fd, NULL, NULL);
		if (hidden >= 0)
			b->fd = hidden;
	}
	pthread_mutex_unlock(&b->lock);
	if (last) {
		enum rs_ring_unavailable why;
		struct rs_ring *r = rs_ring_get(&why), *held = NULL;
		if (!r) {
			pthread_mutex_lock(&b->lock);
			held = rs_ring_hold(b->rx_ring ? b->rx_ring : b->send_ring);
			pthread_mutex_unlock(&b->lock);
			r = held;
		}
		if (r) {
			rs_ring_lock(r);
			close_last(r, b, fd);
			rs_ring_unlock(r);
		}
		rs_ring_put(held);
	}
	rs_fdb_unref(b);
}

/* Readiness as tcp_poll() would report it, from what the shim knows. */
static uint32_t compute_ready(const struct rs_fdb *b)
{
	if ((b->flags & FDB_LISTEN) || b->acq)
		return rs_acq_ready(b);
	uint32_t r = 0;
	bool reset = b->flags & FDB_RESET;
	/* The reading side is closed by the peer's FIN (rx_eof) or by our own
	 * SHUT_RD: RCV_SHUTDOWN either way. */
	bool rd_shut = b->rx_eof || (b->flags & FDB_SHUT_RD);
	if (b->rq.bytes || rs_fork_stash_bytes(b) || rd_shut || b->sk_err || reset)
		r |= RS_EV_IN | RS_EV_RDNORM;
	if (rd_shut || reset)
		r |= RS_EV_RDHUP;
	if (b->sk_err)
		r |= RS_EV_ERR;
	/* Both directions closed (SHUTDOWN_MASK), or a reset (TCP_CLOSE):
	 * EPOLLHUP, and it stays. */
	if (reset || (rd_shut && (b->flags & FDB_SHUT_WR)))
		r |= RS_EV_HUP;
	if (reset || (b->flags & FDB_SHUT_WR) ||
	    (b->wq.bytes < rs_cfg.wb_fd_max && !b->pollout_armed && !b->send_blocked))
		r |= RS_EV_OUT | RS_EV_WRNORM;
	return r;
}

int rs_fdb_take_error(struct rs_fdb *b)
{
	int err = b->sk_err;
	if (err) {
		b->sk_err = 0;
		rs_fdb_update_ready(b, false);
	}
	return err;
}

void rs_fdb_set_error(struct rs_fdb *b, int err)
{
	if (!b->sk_err)
		b->sk_err = err;
	if (err == ECONNRESET || err == EPIPE || err == ETIMEDOUT || err == EHOSTUNREACH)
		b->flags |= FDB_RESET;
}

void rs_fdb_update_ready(struct rs_fdb *b, bool edge)
{
	rs_fdb_update_ready_key(b, edge ? RS_WAKE_ALL : 0);
}

void rs_fdb_update_ready_key(struct rs_fdb *b, uint32_t key)
{
	uint32_t now = compute_ready(b);
	uint32_t before = __atomic_exchange_n(&b->ready, now, __ATOMIC_ACQ_REL);
	/* A bit that appears comes with the kernel's wake-up for it. */
	key |= now & ~before;
	if (key && b->items)
		rs_epoll_wake_fdb(b, now, key);
}

/* Collect referenced fd states matching `want` (all_lock held briefly). */
static int snapshot(struct rs_fdb **out, int max, bool (*want)(struct rs_fdb *, void *), void *arg)
{
	int n = 0;
	pthread_mutex_lock(&all_lock);
	for (struct rs_fdb *b = all; b && n < max; b = b->all_next) {
		if (want(b, arg)) {
			rs_fdb_ref(b);
			out[n++] = b;
		}
	}
	pthread_mutex_unlock(&all_lock);
	return n;
}

static bool has_pending(struct rs_fdb *b, void *arg)
{
	(void)arg;
	/* all_lock is held, and fd locks are taken before it elsewhere: only
	 * a free b->lock. A busy fd counts as pending; its drain looks again
	 * under the lock. */
	if (pthread_mutex_trylock(&b->lock))
		return true;
	bool pending = (b->wq.bytes || b->send_busy) && !b->sk_err && !(b->flags & FDB_RESET);
	pthread_mutex_unlock(&b->lock);
	return pending;
}

void rs_batch_flush_all(bool wait)
{
	enum rs_ring_unavailable why;
	struct rs_ring *r = rs_ring_get(&why);
	/* A thread without a ring (exit or exec called there) waits for the
	 * other threads' queued bytes on the lending ring. */
	bool borrowed = !r && wait && why != RS_RING_NO_URING && (r = rs_ring_borrow()) != NULL;
	if (!r)
		return;
	if (!wait) {
		/* Hand everything queued to the kernel, without waiting. */
		rs_ring_lock(r);
		rs_ring_poke(r);
		rs_ring_reap(r);
		rs_ring_unlock(r);
		return;
	}
	struct rs_fdb *list[256];
	int n;
	/* Each drain waits while bytes keep going out; a peer that reads
	 * nothing for RS_FLUSH_STALL_MS gives up its bytes (as a dead peer
	 * would never have read them from the socket buffer either). */
	while ((n = snapshot(list, 256, has_pending, NULL)) > 0) {
		rs_ring_lock(r);
		for (int i = 0; i < n; i++) {
			if (rs_wb_drain_bounded(r, list[i]) < 0)
				rs_warn("write-behind to fd %d not delivered: the peer stopped reading",
					list[i]->fd);
		}
		rs_ring_unlock(r);
		for (int i = 0; i < n; i++)
			rs_fdb_unref(list[i]);
		if (n < 256)
			break;
	}
	if (borrowed)
		rs_ring_borrow_end();
}

/* A unix stream socket of this process is about to shut its reading side
 * (shutdown SHUT_RD/RDWR). The kernel then gives its peer SEND_SHUTDOWN:
 * the peer's later sends fail, but what is already in the receive queue is
 * still read. Write-behind may have returned bytes as written that the
 * kernel has not taken yet — the queue runs up to one flush ahead of a full
 * socket ("How much a full socket takes") — and after the shutdown they
 * could never arrive (fuzz seed 224). So every unix stream queue of the
 * process goes into the kernel first (which queue feeds this socket is not
 * known cheaply; nothing is done when nothing is queued, the usual case).
 * Where the socket is full, its send buffer is enlarged for as long as the
 * queue takes to go in, and set back: the bytes then sit in the receiver's
 * queue, where natively the write that returned them had put them. A TCP
 * socket's go into its send queue, ahead of any FIN a close or a forked
 * child's shutdown adds (setting SO_SNDBUF ends the kernel's tuning of it
 * for that socket, which nothing reads back: so only where a FIN from
 * another process could overtake them, at fork). */
static void push_past_full(struct rs_ring *r, struct rs_fdb *b, bool tcp)
{
	int dom = 0;
	socklen_t dl = sizeof(dom);
	if (RS_REAL(getsockopt)(b->fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) ||
	    (dom != AF_UNIX && (!tcp || (dom != AF_INET && dom != AF_INET6))))
		return;
	if (!rs_wb_kick(r, b))
		return; /* all in the kernel */
	int orig = 0, outq = 0;
	socklen_t ol = sizeof(orig);
	if (RS_REAL(getsockopt)(b->fd, SOL_SOCKET, SO_SNDBUF, &orig, &ol) ||
	    RS_REAL(ioctl)(b->fd, SIOCOUTQ, &outq))
		return;
	pthread_mutex_lock(&b->lock);
	size_t left = b->wq.bytes;
	pthread_mutex_unlock(&b->lock);
	/* sk_wmem_alloc (SIOCOUTQ) plus the rest with room for skb overhead;
	 * the kernel stores twice the value set. */
	size_t need = (size_t)outq + left + left / 4 + 65536;
	int val = need / 2 > INT_MAX / 2 ? INT_MAX / 2 : (int)(need / 2);
	if (RS_REAL(setsockopt)(b->fd, SOL_SOCKET, SO_SNDBUFFORCE, &val, sizeof(val)))
		RS_REAL(setsockopt)(b->fd, SOL_SOCKET, SO_SNDBUF, &val, sizeof(val));
	/* The send waiting for room would only be woken once the socket is
	 * writable in poll's sense (a quarter of the buffer in use): cancel
	 * it (the queue keeps what it did not send) and send again, without
	 * waiting, as long as the kernel takes more. */
	rs_wb_send_cancel(r, b);
	while (rs_wb_kick(r, b)) {
		pthread_mutex_lock(&b->lock);
		size_t now = b->wq.bytes;
		pthread_mutex_unlock(&b->lock);
		if (now >= left)
			break; /* no room even now (SO_SNDBUF capped): what fits went */
		left = now;
	}
	/* Set back exactly: the kernel stores max(2 * val, SOCK_MIN_SNDBUF). */
	val = orig / 2;
	if (RS_REAL(setsockopt)(b->fd, SOL_SOCKET, SO_SNDBUFFORCE, &val, sizeof(val)))
		RS_REAL(setsockopt)(b->fd, SOL_SOCKET, SO_SNDBUF, &val, sizeof(val));
}

static bool still_pending(struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	bool pending = (b->wq.bytes || b->send_busy) && !b->sk_err && !(b->flags & FDB_RESET);
	pthread_mutex_unlock(&b->lock);
	return pending;
}

/* Every write-behind queue of the process into the kernel, as far as the
 * sockets take it, and past a full unix socket (push_past_full; a full TCP
 * one too with `tcp`): before a call through which the program could see
 * where the bytes are. One submission sends what fits; under SQPOLL the
 * sends are waited for, as they run on the SQ thread's time. Queues whose
 * sends sit in another thread's ring go when that ring is next entered.
 * With nothing queued (the usual case) this costs one load. */
void rs_batch_push_all(bool tcp)
{
	if (!rs_wb_pending_total())
		return;
	enum rs_ring_unavailable why;
	struct rs_ring *r = rs_ring_get(&why);
	bool borrowed = !r && why != RS_RING_NO_URING && (r = rs_ring_borrow()) != NULL;
	if (!r)
		return;
	struct rs_fdb *list[256];
	int n = snapshot(list, 256, has_pending, NULL);
	rs_ring_lock(r);
	for (int i = 0; i < n; i++)
		rs_wb_prep(r, list[i]);
	if (n) {
		rs_ring_poke(r);
		rs_ring_reap(r);
		if (r->sqpoll)
			rs_wb_settle(r);
	}
	for (int i = 0; i < n; i++) {
		if (still_pending(list[i]))
			push_past_full(r, list[i], tcp);
	}
	rs_ring_unlock(r);
	for (int i = 0; i < n; i++)
		rs_fdb_unref(list[i]);
	if (borrowed)
		rs_ring_borrow_end();
}

static bool not_probed(struct rs_fdb *b, void *arg)
{
	return (int)(__atomic_load_n(&b->shut_probe_gen, __ATOMIC_RELAXED) - *(unsigned *)arg) < 0;
}

/* A unix stream socket of this process has shut its reading side: its peer,
 * if it is one of ours, now fails its writes (probe_send_shutdown). Which
 * state is the peer's is not looked up: every unix one is asked, each once
 * per shutdown (its mark, not its place in the list, says which are left). */
void rs_batch_after_shut_rd(void)
{
	unsigned gen = __atomic_add_fetch(&shut_rd_gen, 1, __ATOMIC_SEQ_CST);
	if (!gen) /* 0 means never: skip it on wrap */
		gen = __atomic_add_fetch(&shut_rd_gen, 1, __ATOMIC_SEQ_CST);
	struct rs_fdb *list[256];
	int n;
	while ((n = snapshot(list, 256, not_probed, &gen)) > 0) {
		for (int i = 0; i < n; i++) {
			pthread_mutex_lock(&list[i]->lock);
			probe_send_shutdown(list[i], gen);
			pthread_mutex_unlock(&list[i]->lock);
			rs_fdb_unref(list[i]);
		}
		if (n < 256)
			break;
	}
}

/* A stream socket's number is about to close. Queued bytes may be meant
 * for it: its peer may be in this process (a socketpair, a loopback
 * connection). Natively they are in its receive queue by now, and a close
 * that finds unread bytes there resets the connection (a unix peer reads
 * ECONNRESET, a TCP one gets an RST instead of a FIN); sent afterwards,
 * they would find the socket gone (fuzz seed 2645299342). The close of a
 * number that is not the socket's last changes nothing, but telling is
 * not cheap. A full TCP socket's queue stays queued (see push_past_full). */
void rs_batch_before_close(int fd)
{
	struct rs_fd *e = rs_fd_peek(fd);
	uint32_t st = e ? __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) : 0;
	if (rs_kind_is_stream(RS_FD_KIND(st)) && !(RS_FD_FLAGS(st) & RS_FD_LISTENING))
		rs_batch_push_all(false);
}

static bool on_ring(struct rs_fdb *b, void *arg)
{
	struct rs_ring *r = arg;
	/* Without b->lock (all_lock is held): the fields it looks at are
	 * written atomically, under b->lock, on other threads. A stale answer
	 * is harmless: only this ring's own thread sets them to r. */
	return __atomic_load_n(&b->rx_ring, __ATOMIC_RELAXED) == r ||
	       __atomic_load_n(&b->send_ring, __ATOMIC_RELAXED) == r || rs_acq_ring(b) == r ||
	       (__atomic_load_n(&b->watch_armed, __ATOMIC_RELAXED) &&
		__atomic_load_n(&b->watch_ring, __ATOMIC_RELAXED) == r);
}

void rs_batch_ring_exit(struct rs_ring *r)
{
	struct rs_fdb *list[256];
	int n;
	rs_ring_lock(r);
	while ((n = snapshot(list, 256, on_ring, r)) > 0) {
		for (int i = 0; i < n; i++) {
			struct rs_fdb *b = list[i];
			/* Every slot naming r is cleared (its reference goes
			 * with it) unless an op is still in flight there, so
			 * that r can be destroyed once this thread is gone. */
			pthread_mutex_lock(&b->lock);
			bool rx_here = b->rx_ring == r && b->rx_armed;
			pthread_mutex_unlock(&b->lock);
			if (rx_here) {
				rs_rx_disarm(r, b);
				pthread_mutex_lock(&b->lock);
				/* Another thread's epoll_wait arms it again. */
				b->flags &= ~FDB_NO_REARM;
				pthread_mutex_unlock(&b->lock);
			}
			/* A paused receive is resumed by the next read on the
			 * reader's ring (io_batch.c). */
			pthread_mutex_lock(&b->lock);
			if (b->rx_ring == r && !b->rx_armed)
				rs_ring_slot_set(&b->rx_ring, NULL);
			pthread_mutex_unlock(&b->lock);
			/* The next write arms it again on its own ring. */
			rs_wb_watch_disarm_ring(r, b);
			pthread_mutex_lock(&b->lock);
			if (!b->watch_armed && b->watch_ring == r)
				rs_ring_slot_set(&b->watch_ring, NULL);
			bool send_here = b->send_ring == r;
			pthread_mutex_unlock(&b->lock);
			if (send_here) {
				rs_wb_drain_bounded(r, b);
				/* A poll for room with nothing queued (sends
				 * went to the kernel itself) would die with
				 * the ring and keep EPOLLOUT away for good. */
				rs_wb_pollout_disarm(r, b);
			}
			pthread_mutex_lock(&b->lock);
			if (b->send_ring == r && !b->send_busy && !b->pollout_armed)
				rs_ring_slot_set(&b->send_ring, NULL);
			bool acq_here = rs_acq_ring(b) == r;
			pthread_mutex_unlock(&b->lock);
			if (acq_here) {
				rs_acq_close(r, b);
				/* Its direct descriptors were in r: later accepts go
				 * to the kernel's backlog. */
				pthread_mutex_lock(&b->lock);
				rs_acq_forget_ring(b, r);
				pthread_mutex_unlock(&b->lock);
			}
		}
		for (int i = 0; i < n; i++)
			rs_fdb_unref(list[i]);
		if (n < 256)
			break;
	}
	rs_epoll_ring_exit(r);
	rs_ring_unlock(r);
}

/* ---- fork ------------------------------------------------------------------
 * The child inherits every fd, and with it a share of each socket's
 * receive queue and each listener's backlog: whichever process reads or
 * accepts first gets the bytes or the connection. Receiving or accepting
 * ahead in one process would take them from the other, so before fork every
 * fd state stops doing either, for good (FDB_SHARED, in both processes).
 * What is already stashed moves to memory both processes map, read once by
 * whichever reads first; connections already accepted ahead stay in the
 * parent's queue (the child's copy is dropped: the descriptors live in the
 * parent's ring). */

static void fs_lock(struct rs_fork_stash *fs)
{
	while (__atomic_exchange_n(&fs->lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void fs_unlock(struct rs_fork_stash *fs)
{
	__atomic_store_n(&fs->lock, 0, __ATOMIC_RELEASE);
}

size_t rs_fork_stash_bytes(const struct rs_fdb *b)
{
	struct rs_fork_stash *fs = b->fork_stash;
	if (!fs)
		return 0;
	return __atomic_load_n(&fs->len, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(&fs->off, __ATOMIC_ACQUIRE);
}

long rs_fork_stash_read(struct rs_fdb *b, const struct iovec *iov, int cnt, int flags)
{
	struct rs_fork_stash *fs = b->fork_stash;
	fs_lock(fs);
	size_t off = fs->off, done = 0;
	bool fault = false;
	for (int i = 0; i < cnt && off + done < fs->len; i++) {
		size_t take = fs->len - off - done;
		if (take > iov[i].iov_len)
			take = iov[i].iov_len;
		if (!(flags & MSG_TRUNC) && take &&
		    rs_safe_copy(iov[i].iov_base, fs->data + off + done, take)) {
			fault = true;
			break;
		}
		done += take;
	}
	long ret = (long)done;
	if (!done && fault)
		ret = -EFAULT; /* nothing copied: a bad buffer, as the kernel says */
	else if (!(flags & MSG_PEEK))
		__atomic_store_n(&fs->off, off + done, __ATOMIC_RELEASE);
	fs_unlock(fs);
	if (ret > 0 && !(flags & MSG_PEEK))
		rs_fdb_update_ready(b, false);
	return ret;
}

/* b->lock held: move the stash's bytes into a shared fork stash. */
static void stash_to_shared(struct rs_fdb *b)
{
	if (!b->rq.bytes && !b->fork_stash)
		return;
	/* A stash shared at an earlier fork stays as it is: nothing was
	 * received ahead since, so rq is empty whenever it exists. */
	if (b->fork_stash) {
		__atomic_add_fetch(&b->fork_stash->holders, 1, __ATOMIC_ACQ_REL);
		return;
	}
	size_t size = sizeof(struct rs_fork_stash) + b->rq.bytes;
	struct rs_fork_stash *fs =
		mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fs == MAP_FAILED) {
		rs_warn("fork: no memory to share %zu stashed bytes of fd %d: the parent keeps them",
			b->rq.bytes, b->fd);
		return;
	}
	fs->map_size = size;
	fs->holders = 2;
	struct iovec iov = { fs->data, b->rq.bytes };
	long n = rs_bq_copyout_iov(&b->rq, &iov, 1, false);
	fs->len = n > 0 ? (size_t)n : 0;
	rs_gauge_add(RS_G_STASH_BYTES, -(n > 0 ? n : 0));
	rs_bq_clear(&b->rq);
	b->fork_stash = fs;
}

/* b->lock held, released here, and b's snapshot reference dropped:
 * readiness now comes from the kernel's epoll; what is stashed or queued
 * is still read or accepted first. */
static void stop_ahead(struct rs_fdb *b, bool was_ahead)
{
	b->flags &= ~FDB_LISTEN;
	rs_fdb_rx_off(b);
	rs_fdb_update_ready(b, false);
	pthread_mutex_unlock(&b->lock);
	if (was_ahead)
		rs_epoll_items_to_kernel(b);
	rs_fdb_unref(b);
}

static bool any_fdb(struct rs_fdb *b, void *arg)
{
	(void)arg;
	(void)b;
	return true;
}

void rs_batch_before_fork(void)
{
	/* Only the forking thread's own ring is touched: reaping another
	 * thread's ring could take the completion that thread is sleeping in
	 * io_uring_enter for. Receives and accepts armed on other threads'
	 * rings stay armed in the parent (never re-armed once they end), and
	 * what they take stays the parent's (docs/semantics.md, fork). */
	struct rs_ring *own = rs_tls_ring;
	struct rs_fdb *list[1024];
	int n = snapshot(list, 1024, any_fdb, NULL);
	if (n == 1024)
		rs_warn("fork: more than %d fds with batch state; the rest keep receiving ahead", n);
	for (int i = 0; i < n; i++) {
		struct rs_fdb *b = list[i];
		pthread_mutex_lock(&b->lock);
		b->flags |= FDB_SHARED | FDB_NO_REARM;
		/* No write-behind either (fdb_flags_for): what is queued
		 * still goes out, later writes go to the kernel after it. */
		b->flags &= ~FDB_WB;
		bool was_ahead = b->flags & (FDB_RX | FDB_LISTEN);
		struct rs_ring *rr = b->rx_armed ? b->rx_ring : NULL;
		struct rs_ring *qr = b->acq && rs_acq_active(b) ? rs_acq_ring(b) : NULL;
		pthread_mutex_unlock(&b->lock);
		if ((rr && rr != own) || (qr && qr != own)) {
			rs_fdb_unref(b);
			continue;
		}
		if (rr) {
			rs_ring_lock(rr);
			rs_rx_disarm(rr, b);
			rs_ring_unlock(rr);
		}
		if (qr) {
			rs_ring_lock(qr);
			rs_acq_disarm(qr, b);
			rs_ring_unlock(qr);
		}
		pthread_mutex_lock(&b->lock);
		if (b->rx_armed) {
			pthread_mutex_unlock(&b->lock);
			rs_fdb_unref(b);
			continue;
		}
		stash_to_shared(b);
		stop_ahead(b, was_ahead);
	}
}

/* Child side of fork(): the parent's rings are gone here, and with them
 * every op; bytes stashed or queued before the fork stay the parent's (see
 * docs/semantics.md). */
void rs_batch_after_fork_child(void)
{
	pthread_mutex_init(&all_lock, NULL);
	pthread_mutex_init(&dup_lock, NULL);
	struct rs_fdb *b = all, *next;
	for (; b; b = next) {
		next = b->all_next;
		pthread_mutex_init(&b->lock, NULL);
		rs_bq_clear(&b->rq);
		rs_bq_clear(&b->wq);
		__atomic_store_n(&b->send_ring, NULL, __ATOMIC_RELAXED);
		__atomic_store_n(&b->rx_ring, NULL, __ATOMIC_RELAXED);
		b->send_sqe = NULL;
		b->send_busy = b->pollout_armed = b->pollout_cancel_sent = false;
		b->send_blocked = b->send_cancel_sent = false;
		__atomic_store_n(&b->watch_armed, false, __ATOMIC_RELAXED);
		b->watch_cancel_sent = false;
		__atomic_store_n(&b->watch_ring, NULL, __ATOMIC_RELAXED);
		b->rx_armed = b->rx_cancel_sent = b->rx_paused = false;
		b->flags &= ~FDB_NO_REARM;
		rs_acq_free_in_child(b);
		unsigned items = 0;
		for (struct rs_epitem *it = b->items; it; it = rs_epitem_next_in_fdb(it))
			items++;
		b->refs = b->nums + items + rs_epoll_shadow_refs(b);
		if (!b->refs) {
			if (b->fd >= 0 && rs_internal_fd_is(b->fd)) {
				rs_internal_fd_remove(b->fd);
				RS_REAL(close)(b->fd);
			}
			b->refs = 1;
			rs_fdb_unref(b);
		}
	}
}

void rs_batch_fork_child_to_kernel(void)
{
	struct rs_fdb *list[1024];
	int n = snapshot(list, 1024, any_fdb, NULL);
	for (int i = 0; i < n; i++) {
		struct rs_fdb *b = list[i];
		pthread_mutex_lock(&b->lock);
		stop_ahead(b, b->flags & (FDB_RX | FDB_LISTEN));
	}
}

void rs_batch_no_receive_ahead(int fd)
{
	struct rs_fdb *b = rs_fdb_get(fd);
	enum rs_ring_unavailable why;
	struct rs_ring *r = b ? rs_ring_get(&why) : NULL;
	if (!r)
		return;
	rs_ring_lock(r);
	rs_rx_disarm(r, b);
	pthread_mutex_lock(&b->lock);
	rs_fdb_rx_off(b); /* what the stash holds is still read first */
	pthread_mutex_unlock(&b->lock);
	rs_ring_unlock(r);
	rs_epoll_items_to_kernel(b);
}
