/* Completion-based accept. A listening socket the program watches gets one
 * accept at a time armed in the ring; each accepted connection waits as a
 * direct descriptor (the ring's own file table, so it takes no fd number)
 * in a small queue, and accept()/accept4() installs it with
 * IORING_OP_FIXED_FD_INSTALL, which gives exactly the number the real call
 * would have given at that moment. The queue is kept to
 * RINGSHIM_ACCEPT_QUEUE entries so a busy process of a prefork server does
 * not take connections its siblings could serve. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "acceptq.h"
#include "batch.h"
#include "config.h"
#include "log.h"
#include "real.h"
#include "stats.h"
#include "vg.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#ifndef IORING_OP_FIXED_FD_INSTALL
#define IORING_OP_FIXED_FD_INSTALL 54
#endif
#ifndef IORING_FIXED_FD_NO_CLOEXEC
#define IORING_FIXED_FD_NO_CLOEXEC (1U << 0)
#endif

struct rs_acq_slot {
	int index; /* direct descriptor, or -1 for an error */
	int err;
	int flags; /* SOCK_NONBLOCK the connection was accepted with */
	socklen_t alen;
	struct sockaddr_storage addr;
};

struct rs_acq {
	struct rs_fdb *owner;
	struct rs_ring *ring; /* holds the descriptors and the armed accept */
	int flags;	      /* SOCK_NONBLOCK the accept is armed with */
	unsigned head, count, cap;
	bool armed;
	struct rs_op op;
	struct rs_acq_slot pending;
	struct rs_acq_slot slots[];
};

bool rs_acq_supported(void)
{
	return rs_ring_op_supported(IORING_OP_FIXED_FD_INSTALL);
}

static int ensure_files(struct rs_ring *r)
{
	if (r->files_registered)
		return 0;
	struct rlimit rl;
	unsigned n = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n)
		n = (unsigned)rl.rlim_cur;
	int ret = io_uring_register_files_sparse(&r->uring, n);
	if (ret)
		return ret;
	r->files_registered = true;
	return 0;
}

uint32_t rs_acq_ready(const struct rs_fdb *b)
{
	return b->acq && b->acq->count ? RS_EV_IN : 0;
}

bool rs_acq_queued(const struct rs_fdb *b)
{
	/* Atomic: epoll's shadows ask without b->lock. */
	struct rs_acq *q = __atomic_load_n(&b->acq, __ATOMIC_ACQUIRE);
	return q && __atomic_load_n(&q->count, __ATOMIC_ACQUIRE);
}

static void acq_done(struct rs_op *op, int res, uint32_t cflags);

void rs_acq_arm(struct rs_ring *r, struct rs_fdb *b)
{
	if (!(b->flags & FDB_LISTEN) || (b->flags & (FDB_CLOSED | FDB_NO_REARM | FDB_SHARED)))
		return;
	struct rs_acq *q = b->acq;
	if (q && (q->armed || q->count >= q->cap || (q->ring && q->ring != r && q->count)))
		return;
	if (!rs_acq_supported() || ensure_files(r)) {
		b->flags |= FDB_NO_REARM;
		return;
	}
	if (!q) {
		unsigned cap = rs_cfg.accept_queue;
		q = calloc(1, sizeof(*q) + cap * sizeof(q->slots[0]));
		if (!q) {
			b->flags |= FDB_NO_REARM;
			return;
		}
		q->cap = cap;
		q->owner = b;
		q->flags = SOCK_NONBLOCK;
		__atomic_store_n(&b->acq, q, __ATOMIC_RELEASE); /* see rs_acq_ring */
	}
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return;
	q->pending.alen = sizeof(q->pending.addr);
	q->pending.flags = q->flags;
	io_uring_prep_accept(sqe, b->fd, (struct sockaddr *)&q->pending.addr, &q->pending.alen,
			     q->flags);
	sqe->file_index = IORING_FILE_INDEX_ALLOC;
	sqe->user_data = (uint64_t)(uintptr_t)&q->op;
	q->op.complete = acq_done;
	q->armed = true;
	rs_ring_slot_set(&q->ring, r);
	rs_fdb_ref(b);
}

static void acq_done(struct rs_op *op, int res, uint32_t cflags)
{
	(void)cflags;
	struct rs_acq *q = container_of(op, struct rs_acq, op);
	struct rs_fdb *b = q->owner;
	pthread_mutex_lock(&b->lock);
	q->armed = false;
	if (res >= 0) { /* the kernel wrote the peer's address */
		RS_VG_DEFINED(&q->pending.alen, sizeof(q->pending.alen));
		RS_VG_DEFINED(&q->pending.addr, q->pending.alen < sizeof(q->pending.addr)
							? q->pending.alen
							: sizeof(q->pending.addr));
	}
	if (res != -ECANCELED && q->count < q->cap) {
		struct rs_acq_slot *s = &q->slots[(q->head + q->count) % q->cap];
		*s = q->pending;
		s->index = res >= 0 ? res : -1;
		s->err = res >= 0 ? 0 : -res;
		q->count++;
		rs_count(RS_C_accept_queued);
		rs_gauge_add(RS_G_ACCEPTQ_DEPTH, 1);
	} else if (res >= 0) {
		/* Raced with a close of the listener: give the connection
		 * back as the kernel would, by closing it. */
		struct io_uring_sqe *sqe = rs_ring_sqe(q->ring);
		if (sqe) {
			io_uring_prep_close_direct(sqe, (unsigned)res);
			sqe->user_data = 0;
		}
	}
	/* An error is handed to the program's next accept() before anything
	 * else is accepted, so a persistent one cannot spin here. */
	if (res >= 0 && res != -ECANCELED)
		rs_acq_arm(q->ring, b);
	rs_fdb_update_ready(b, res != -ECANCELED);
	pthread_mutex_unlock(&b->lock);
	rs_fdb_unref(b);
}

/* Copy a peer address out the way move_addr_to_user() does. */
static int put_addr(const struct rs_acq_slot *s, struct sockaddr *addr, socklen_t *alen)
{
	if (!addr)
		return 0;
	socklen_t ulen;
	if (rs_safe_copy(&ulen, alen, sizeof(ulen)))
		return -EFAULT;
	if ((int)ulen < 0)
		return -EINVAL;
	socklen_t n = ulen < s->alen ? ulen : s->alen;
	if (n && rs_safe_copy(addr, &s->addr, n))
		return -EFAULT;
	return rs_safe_copy(alen, &s->alen, sizeof(*alen)) ? -EFAULT : 0;
}

/* Give the program a queued connection. r is the queue's ring (locked). */
static int install(struct rs_ring *r, struct rs_fdb *b, const struct rs_acq_slot *s, int flags)
{
	struct rs_op op = { 0 };
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return -EAGAIN;
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_FIXED_FD_INSTALL;
	sqe->fd = s->index;
	sqe->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK;
	sqe->rw_flags = (flags & SOCK_CLOEXEC) ? 0 : IORING_FIXED_FD_NO_CLOEXEC;
	sqe->user_data = (uint64_t)(uintptr_t)&op;
	/* Linked: the slot is freed only if the install worked. */
	struct io_uring_sqe *close_sqe = rs_ring_sqe(r);
	if (close_sqe) {
		io_uring_prep_close_direct(close_sqe, (unsigned)s->index);
		close_sqe->user_data = 0;
	} else {
		sqe->flags &= ~IOSQE_IO_LINK;
	}
	struct rs_wait w = { 0 };
	int fd = rs_ring_run(r, &op, &w);
	(void)b;
	if (fd >= 0 && (flags & SOCK_NONBLOCK) != (s->flags & SOCK_NONBLOCK)) {
		int fl = RS_REAL(fcntl64)(fd, F_GETFL);
		RS_REAL(fcntl64)(fd, F_SETFL, (flags & SOCK_NONBLOCK) ? fl | O_NONBLOCK
								    : fl & ~O_NONBLOCK);
	}
	return fd;
}

int rs_acq_take(struct rs_ring *r, struct rs_fdb *b, struct sockaddr *addr, socklen_t *alen,
		int flags)
{
	pthread_mutex_lock(&b->lock);
	struct rs_acq *q = b->acq;
	if (!q || !q->count) {
		pthread_mutex_unlock(&b->lock);
		return RS_ACQ_EMPTY;
	}
	struct rs_acq_slot s = q->slots[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	rs_gauge_add(RS_G_ACCEPTQ_DEPTH, -1);
	/* Future accepts come out with the flags this program asks for. */
	q->flags = flags & SOCK_NONBLOCK;
	rs_fdb_update_ready(b, false);
	pthread_mutex_unlock(&b->lock);

	int ret;
	if (s.index < 0) {
		ret = -s.err;
	} else {
		ret = install(r, b, &s, flags);
		if (ret < 0) {
			/* Out of fds (EMFILE) and the like: the connection stays
			 * queued, as it would stay in the kernel's backlog. */
			pthread_mutex_lock(&b->lock);
			q->head = (q->head + q->cap - 1) % q->cap;
			q->slots[q->head] = s;
			q->count++;
			rs_gauge_add(RS_G_ACCEPTQ_DEPTH, 1);
			rs_fdb_update_ready(b, false);
			pthread_mutex_unlock(&b->lock);
			return ret;
		}
		int err = put_addr(&s, addr, alen);
		if (err) {
			RS_REAL(close)(ret);
			ret = err;
		}
	}
	pthread_mutex_lock(&b->lock);
	rs_acq_arm(r, b);
	pthread_mutex_unlock(&b->lock);
	return ret;
}

struct rs_ring *rs_acq_ring(const struct rs_fdb *b)
{
	/* Atomic: on_ring (fdb.c) asks without the locks. */
	struct rs_acq *q = __atomic_load_n(&b->acq, __ATOMIC_ACQUIRE);
	return q ? __atomic_load_n(&q->ring, __ATOMIC_RELAXED) : NULL;
}

bool rs_acq_active(const struct rs_fdb *b)
{
	return b->acq && (b->acq->armed || b->acq->count);
}

/* Drop the queue: its connections are closed, as the kernel resets the
 * connections of a listener's backlog when the listener closes. r locked. */
void rs_acq_close(struct rs_ring *r, struct rs_fdb *b)
{
	struct rs_acq *q = b->acq;
	if (!q)
		return;
	pthread_mutex_lock(&b->lock);
	struct rs_ring *held = rs_ring_hold(q->ring); /* may be another thread's */
	pthread_mutex_unlock(&b->lock);
	struct rs_ring *qr = held ? held : r;
	if (qr != r) {
		rs_ring_unlock(r);
		rs_ring_lock(qr);
	}
	pthread_mutex_lock(&b->lock);
	b->flags |= FDB_NO_REARM;
	if (q->armed) {
		struct io_uring_sqe *sqe = rs_ring_sqe(qr);
		if (sqe) {
			io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&q->op, 0);
			sqe->user_data = 0;
		}
	}
	struct rs_acq_slot taken[64];
	unsigned ntaken = 0;
	while (q->count) {
		struct rs_acq_slot *s = &q->slots[q->head];
		if (s->index >= 0 && ntaken < 64)
			taken[ntaken++] = *s;
		q->head = (q->head + 1) % q->cap;
		q->count--;
		rs_gauge_add(RS_G_ACCEPTQ_DEPTH, -1);
	}
	pthread_mutex_unlock(&b->lock);
	/* The kernel resets connections still waiting in a closing listener's
	 * backlog: give each one a real fd, make its close abortive, close. */
	for (unsigned i = 0; i < ntaken; i++) {
		int fd = install(qr, b, &taken[i], SOCK_CLOEXEC | taken[i].flags);
		if (fd >= 0) {
			struct linger l = { 1, 0 };
			RS_REAL(setsockopt)(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			RS_REAL(close)(fd);
		}
	}
	for (;;) {
		rs_ring_poke(qr);
		rs_ring_reap(qr);
		pthread_mutex_lock(&b->lock);
		bool armed = q->armed;
		pthread_mutex_unlock(&b->lock);
		if (!armed)
			break;
		rs_ring_wait_any(qr, NULL, NULL);
	}
	if (qr != r) {
		rs_ring_unlock(qr);
		rs_ring_lock(r);
	}
	rs_ring_put(held);
}

/* Stop accepting ahead, keep what is queued. r locked. */
void rs_acq_disarm(struct rs_ring *r, struct rs_fdb *b)
{
	struct rs_acq *q = b->acq;
	if (!q)
		return;
	pthread_mutex_lock(&b->lock);
	struct rs_ring *held = rs_ring_hold(q->ring); /* may be another thread's */
	pthread_mutex_unlock(&b->lock);
	struct rs_ring *qr = held ? held : r;
	if (qr != r) {
		rs_ring_unlock(r);
		rs_ring_lock(qr);
	}
	pthread_mutex_lock(&b->lock);
	b->flags |= FDB_NO_REARM;
	if (q->armed) {
		struct io_uring_sqe *sqe = rs_ring_sqe(qr);
		if (sqe) {
			io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&q->op, 0);
			sqe->user_data = 0;
		}
	}
	pthread_mutex_unlock(&b->lock);
	for (;;) {
		rs_ring_poke(qr);
		rs_ring_reap(qr);
		pthread_mutex_lock(&b->lock);
		bool armed = q->armed;
		pthread_mutex_unlock(&b->lock);
		if (!armed)
			break;
		rs_ring_wait_any(qr, NULL, NULL);
	}
	if (qr != r) {
		rs_ring_unlock(qr);
		rs_ring_lock(r);
	}
	rs_ring_put(held);
}

void rs_acq_forget_ring(struct rs_fdb *b, struct rs_ring *r)
{
	if (b->acq && b->acq->ring == r && !b->acq->armed)
		rs_ring_slot_set(&b->acq->ring, NULL);
}

struct rs_ring *rs_acq_ring_hold(const struct rs_fdb *b)
{
	return b->acq ? rs_ring_hold(b->acq->ring) : NULL;
}

void rs_acq_free_in_child(struct rs_fdb *b)
{
	/* The parent's rings, and the references to them, are gone here. */
	if (b->acq)
		b->acq->ring = NULL;
	rs_acq_free(b);
}

void rs_acq_free(struct rs_fdb *b)
{
	if (b->acq)
		rs_ring_put(b->acq->ring);
	free(b->acq);
	__atomic_store_n(&b->acq, NULL, __ATOMIC_RELAXED);
}
