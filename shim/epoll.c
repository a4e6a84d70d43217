/* epoll emulation: see epoll.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "config.h"
#include "epoll.h"
#include "fdtable.h"
#include "internal_fds.h"
#include "log.h"
#include "real.h"
#include "signals.h"
#include "sigmask.h"
#include "stats.h"
#include "vg.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* What the kernel accepts together with EPOLLEXCLUSIVE. */
#define EXCLUSIVE_OK_BITS                                                      \
	(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

struct rs_epitem {
	struct rs_epoll *ep;
	struct rs_fdb *fdb;
	int fd; /* the number it was added through: the kernel keys on both */
	uint32_t events;
	epoll_data_t data;
	bool on_ready, disabled;
	struct rs_epitem *next_in_ep, *prev_in_ep;
	struct rs_epitem *next_in_fdb;
	struct rs_epitem *rnext, *rprev;
};

/* A thread asleep in epoll_wait on an instance (on its stack, linked while
 * it waits). epoll_ctl from another thread must wake it when the change
 * makes something ready, as the kernel's ep_insert/ep_modify do: that
 * thread's ring gets a message (IORING_OP_MSG_RING). */
struct rs_sleeper {
	struct rs_ring *r;
	unsigned id;	     /* the message's res: which sleeper */
	struct rs_op *kwait; /* kernel_wait's EPOLL_WAIT op, to cancel */
	bool kicked;
	struct rs_sleeper *next;
};

struct rs_epoll {
	pthread_mutex_t lock;
	struct rs_sleeper *sleepers;
	unsigned next_sleeper_id;
	bool adopt_pending; /* items added unarmed while it slept elsewhere */
	bool arm_pending;   /* items armed by ADD, maybe not yet submitted */
	struct rs_op kick_op, kick_src_op;
	struct rs_epoll *all_next, *all_prev;
	int epfd;
	unsigned refs;		/* numbers that refer to it + kernel poll in flight */
	/* rs_ring id of the ring whose thread waits; items are armed there.
	 * An id, not the pointer: a ring made after the home's thread exited
	 * may get the same address. */
	uint64_t home;
	unsigned nkernel;	/* fds registered in the real epoll */
	bool kernel_only;	/* nested in poll or another epoll: see demote() */
	bool kpoll_armed, kready;
	/* Which source fills a short events array first, alternated when
	 * one filled it: the kernel cycles through ready level-triggered
	 * items, and neither half may starve the other. */
	bool shim_first;
	struct rs_ring *kpoll_ring;
	struct rs_op kpoll_op;
	struct rs_epitem *items;
	struct rs_epitem *ready_head, *ready_tail;
	/* What the shim registered in the real epoll (kernel_ctl), so that a
	 * hand-over that had to take an item's spurious edge back out of the
	 * kernel's ready list can put back the edges it took on the way
	 * (handover_take_edge). ep->lock held. */
	struct rs_kreg *kregs;
	unsigned nkregs, capkregs;
	struct rs_shadow *shadows;
};

/* A registration handed to the kernel while the shim still holds what
 * the socket's receive took (stashed bytes, a socket error): the kernel's
 * epoll cannot see those, so epoll_wait adds them to the item's event,
 * or reports the item itself when the kernel does not (ep->lock held to
 * use the list). Dropped once the stash is empty. */
struct rs_shadow {
	struct rs_fdb *fdb;
	int fd;
	uint32_t events;
	epoll_data_t data;
	bool edge; /* edge-triggered: an edge the program was not told of */
	struct rs_shadow *next;
};

struct rs_kreg {
	int fd;
	struct epoll_event ev;
};

struct rs_epitem *rs_epitem_next_in_fdb(struct rs_epitem *it)
{
	return it->next_in_fdb;
}

static struct rs_epoll *lookup(int epfd)
{
	struct rs_fd *e = rs_fd_peek(epfd);
	if (!e || RS_FD_KIND(__atomic_load_n(&e->state, __ATOMIC_ACQUIRE)) != RS_KIND_EPOLL)
		return NULL;
	return __atomic_load_n((struct rs_epoll **)&e->batch, __ATOMIC_ACQUIRE);
}

static struct rs_epoll *all_eps;
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;

static void ep_unref(struct rs_epoll *ep)
{
	if (__atomic_sub_fetch(&ep->refs, 1, __ATOMIC_ACQ_REL))
		return;
	pthread_mutex_lock(&all_lock);
	if (ep->all_prev)
		ep->all_prev->all_next = ep->all_next;
	else
		all_eps = ep->all_next;
	if (ep->all_next)
		ep->all_next->all_prev = ep->all_prev;
	pthread_mutex_unlock(&all_lock);
	if (rs_internal_fd_is(ep->epfd)) {
		rs_internal_fd_remove(ep->epfd);
		RS_REAL(close)(ep->epfd);
	}
	while (ep->shadows) {
		struct rs_shadow *sh = ep->shadows;
		ep->shadows = sh->next;
		rs_fdb_unref(sh->fdb);
		free(sh);
	}
	pthread_mutex_destroy(&ep->lock);
	free(ep->kregs);
	free(ep);
}

static void hidden_epfd_moved(void *owner, int oldfd, int newfd)
{
	struct rs_epoll *ep = owner;
	if (ep->epfd == oldfd)
		ep->epfd = newfd;
}

static void kick_done(struct rs_op *op, int res, uint32_t cflags);
static void kick_src_done(struct rs_op *op, int res, uint32_t cflags);

void rs_epoll_created(int epfd)
{
	struct rs_fd *e = rs_fd_peek(epfd);
	if (!e)
		return;
	struct rs_epoll *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return; /* stays a plain kernel epoll */
	pthread_mutex_init(&ep->lock, NULL);
	ep->epfd = epfd;
	ep->refs = 1;
	ep->kick_op.complete = kick_done;
	ep->kick_src_op.complete = kick_src_done;
	pthread_mutex_lock(&all_lock);
	ep->all_next = all_eps;
	if (all_eps)
		all_eps->all_prev = ep;
	all_eps = ep;
	pthread_mutex_unlock(&all_lock);
	__atomic_store_n((struct rs_epoll **)&e->batch, ep, __ATOMIC_RELEASE);
}

void rs_epoll_duped(int oldfd, int newfd)
{
	struct rs_epoll *ep = lookup(oldfd);
	struct rs_fd *e = rs_fd_peek(newfd);
	if (!ep || !e)
		return;
	__atomic_add_fetch(&ep->refs, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n((struct rs_epoll **)&e->batch, ep, __ATOMIC_RELEASE);
}

/* ---- ready list (ep->lock held) ----------------------------------------- */

static void ready_add(struct rs_epoll *ep, struct rs_epitem *it)
{
	if (it->on_ready)
		return;
	it->on_ready = true;
	it->rnext = NULL;
	it->rprev = ep->ready_tail;
	if (ep->ready_tail)
		ep->ready_tail->rnext = it;
	else
		ep->ready_head = it;
	ep->ready_tail = it;
}

static void ready_del(struct rs_epoll *ep, struct rs_epitem *it)
{
	if (!it->on_ready)
		return;
	it->on_ready = false;
	if (it->rprev)
		it->rprev->rnext = it->rnext;
	else
		ep->ready_head = it->rnext;
	if (it->rnext)
		it->rnext->rprev = it->rprev;
	else
		ep->ready_tail = it->rprev;
}

static uint32_t item_mask(const struct rs_epitem *it, uint32_t ready)
{
	/* EPOLLERR and EPOLLHUP are reported whether asked for or not. */
	return ready & (it->events | EPOLLERR | EPOLLHUP);
}

void rs_epoll_wake_fdb(struct rs_fdb *b, uint32_t ready, uint32_t key)
{
	/* ep_poll_callback: a wake-up whose key names none of the item's
	 * events (EPOLLERR and EPOLLHUP always count) does not queue it — an
	 * EPOLLOUT|EPOLLET item gets no edge from bytes arriving. ERR, HUP
	 * and RDHUP come from state changes, which wake with no key. */
	if (key & (RS_EV_ERR | RS_EV_HUP | RS_EV_RDHUP))
		key = RS_WAKE_ALL;
	for (struct rs_epitem *it = b->items; it; it = it->next_in_fdb) {
		struct rs_epoll *ep = it->ep;
		pthread_mutex_lock(&ep->lock);
		if (!it->disabled && (key & (it->events | EPOLLERR | EPOLLHUP)) &&
		    item_mask(it, ready))
			ready_add(ep, it);
		pthread_mutex_unlock(&ep->lock);
	}
}

/* ---- sleepers ------------------------------------------------------------- */

/* ep->lock held. */
static void sleeper_add(struct rs_epoll *ep, struct rs_sleeper *s, struct rs_ring *r)
{
	s->r = r;
	s->id = ++ep->next_sleeper_id;
	s->kwait = NULL;
	s->kicked = false;
	s->next = ep->sleepers;
	ep->sleepers = s;
}

static void sleeper_del(struct rs_epoll *ep, struct rs_sleeper *s)
{
	pthread_mutex_lock(&ep->lock);
	for (struct rs_sleeper **p = &ep->sleepers; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&ep->lock);
}

/* The message arrived on a sleeper's ring (its lock is held by whoever
 * reaps). Its CQE alone ends a wait for any completion; a kernel_wait
 * sleeper waits for its EPOLL_WAIT op instead, which is cancelled so that
 * it comes back and looks at the shim's items too. */
static void kick_done(struct rs_op *op, int res, uint32_t cflags)
{
	(void)cflags;
	struct rs_epoll *ep = container_of(op, struct rs_epoll, kick_op);
	pthread_mutex_lock(&ep->lock);
	for (struct rs_sleeper *s = ep->sleepers; s; s = s->next) {
		if (s->id != (unsigned)res)
			continue;
		if (s->kwait && !s->kicked) {
			struct io_uring_sqe *sqe = rs_ring_sqe(s->r);
			if (sqe) {
				io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)s->kwait, 0);
				sqe->user_data = 0;
			}
		}
		s->kicked = true;
		break;
	}
	pthread_mutex_unlock(&ep->lock);
	ep_unref(ep);
}

/* The sender's side: a message that could not be sent never arrives. */
static void kick_src_done(struct rs_op *op, int res, uint32_t cflags)
{
	(void)cflags;
	struct rs_epoll *ep = container_of(op, struct rs_epoll, kick_src_op);
	if (res < 0)
		ep_unref(ep);
	ep_unref(ep);
}

/* Wake the threads sleeping in epoll_wait on ep on rings other than r
 * (the caller's, locked). ep->lock not held. */
static void kick_sleepers(struct rs_ring *r, struct rs_epoll *ep)
{
	if (!rs_ring_op_supported(IORING_OP_MSG_RING))
		return;
	bool sent = false;
	pthread_mutex_lock(&ep->lock);
	for (struct rs_sleeper *s = ep->sleepers; s; s = s->next) {
		if (s->r == r)
			continue;
		struct io_uring_sqe *sqe = rs_ring_sqe(r);
		if (!sqe)
			break;
		io_uring_prep_msg_ring(sqe, s->r->uring.ring_fd, s->id,
				       (uint64_t)(uintptr_t)&ep->kick_op, 0);
		sqe->user_data = (uint64_t)(uintptr_t)&ep->kick_src_op;
		/* One reference for each of the two CQEs. */
		__atomic_add_fetch(&ep->refs, 2, __ATOMIC_ACQ_REL);
		sent = true;
	}
	/* Submitted with ep->lock held: the sleepers' rings, whose fds the
	 * SQEs name, stay alive until they unlink themselves. */
	if (sent)
		rs_ring_submit(r);
	pthread_mutex_unlock(&ep->lock);
}

static bool sleeper_elsewhere(struct rs_epoll *ep, struct rs_ring *r)
{
	pthread_mutex_lock(&ep->lock);
	bool other = false;
	for (struct rs_sleeper *s = ep->sleepers; s && !other; s = s->next)
		other = s->r != r;
	pthread_mutex_unlock(&ep->lock);
	return other;
}

/* ---- items --------------------------------------------------------------- */

static struct rs_epitem *find_item(struct rs_epoll *ep, struct rs_fdb *b, int fd)
{
	if (!b)
		return NULL;
	for (struct rs_epitem *it = b->items; it; it = it->next_in_fdb)
		if (it->ep == ep && it->fd == fd)
			return it;
	return NULL;
}

/* b->lock and ep->lock held. */
static void unlink_item(struct rs_epitem *it)
{
	struct rs_epoll *ep = it->ep;
	struct rs_fdb *b = it->fdb;
	ready_del(ep, it);
	if (it->prev_in_ep)
		it->prev_in_ep->next_in_ep = it->next_in_ep;
	else
		ep->items = it->next_in_ep;
	if (it->next_in_ep)
		it->next_in_ep->prev_in_ep = it->prev_in_ep;
	for (struct rs_epitem **p = &b->items; *p; p = &(*p)->next_in_fdb) {
		if (*p == it) {
			*p = it->next_in_fdb;
			break;
		}
	}
}

void rs_epoll_forget_fdb(struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	while (b->items) {
		struct rs_epitem *it = b->items;
		struct rs_epoll *ep = it->ep;
		pthread_mutex_lock(&ep->lock);
		unlink_item(it);
		pthread_mutex_unlock(&ep->lock);
		free(it);
		rs_fdb_unref(b);
	}
	pthread_mutex_unlock(&b->lock);
}

/* Arm whatever makes b's readiness known on ring r. r->lock held. */
static void arm_item(struct rs_ring *r, struct rs_fdb *b)
{
	pthread_mutex_lock(&b->lock);
	if (b->flags & FDB_LISTEN)
		rs_acq_arm(r, b);
	else
		rs_rx_arm(r, b);
	pthread_mutex_unlock(&b->lock);
}

/* The shim watches what it receives or accepts itself: fds whose state
 * receives ahead (a stash) or accepts ahead (a queue). The kernel watches
 * everything else — unix stream sockets too, whose bytes the shim never
 * takes, and, under SQPOLL, everything (fdb.c). */
static bool shim_watched(const struct rs_fdb *b)
{
	return b && (b->flags & (FDB_RX | FDB_LISTEN)) && !(b->flags & FDB_CLOSED);
}

/* ---- the kernel part: a multishot poll on the real epoll fd -------------- */

static void kpoll_done(struct rs_op *op, int res, uint32_t cflags)
{
	struct rs_epoll *ep = container_of(op, struct rs_epoll, kpoll_op);
	pthread_mutex_lock(&ep->lock);
	if (res > 0)
		ep->kready = true;
	bool ended = !(cflags & IORING_CQE_F_MORE);
	if (ended)
		ep->kpoll_armed = false;
	pthread_mutex_unlock(&ep->lock);
	if (ended)
		ep_unref(ep);
}

static void kpoll_arm(struct rs_ring *r, struct rs_epoll *ep)
{
	if (ep->kpoll_armed || !ep->nkernel)
		return;
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return;
	io_uring_prep_poll_multishot(sqe, ep->epfd, POLLIN);
	sqe->user_data = (uint64_t)(uintptr_t)&ep->kpoll_op;
	ep->kpoll_op.complete = kpoll_done;
	ep->kpoll_armed = true;
	ep->kpoll_ring = r;
	__atomic_add_fetch(&ep->refs, 1, __ATOMIC_ACQ_REL);
}

/* ---- epoll_ctl ------------------------------------------------------------ */

/* ep->lock held. */
static void kreg_note(struct rs_epoll *ep, int op, int fd, const struct epoll_event *ev)
{
	unsigned i = 0;
	while (i < ep->nkregs && ep->kregs[i].fd != fd)
		i++;
	if (op == EPOLL_CTL_DEL) {
		if (i < ep->nkregs)
			ep->kregs[i] = ep->kregs[--ep->nkregs];
		return;
	}
	if (i == ep->nkregs) {
		if (ep->nkregs == ep->capkregs) {
			unsigned cap = ep->capkregs ? 2 * ep->capkregs : 16;
			struct rs_kreg *k = realloc(ep->kregs, cap * sizeof(*k));
			if (!k)
				return; /* only a hand-over's exactness depends on it */
			ep->kregs = k;
			ep->capkregs = cap;
		}
		ep->nkregs++;
	}
	ep->kregs[i].fd = fd;
	ep->kregs[i].ev = *ev;
}

static int kernel_ctl(struct rs_epoll *ep, int op, int fd, struct epoll_event *ev)
{
	int r = RS_REAL(epoll_ctl)(ep->epfd, op, fd, ev);
	if (r < 0)
		return -errno;
	struct epoll_event copy = { 0, { 0 } };
	bool known = op == EPOLL_CTL_DEL || !rs_safe_copy(&copy, ev, sizeof(copy));
	pthread_mutex_lock(&ep->lock);
	if (known)
		kreg_note(ep, op, fd, &copy);
	for (struct rs_shadow **pp = &ep->shadows; *pp;) {
		struct rs_shadow *sh = *pp;
		if (sh->fd != fd) {
			pp = &sh->next;
			continue;
		}
		if (op == EPOLL_CTL_DEL) {
			*pp = sh->next;
			rs_fdb_unref(sh->fdb);
			free(sh);
			continue;
		}
		if (op == EPOLL_CTL_MOD && known) {
			sh->events = copy.events;
			sh->data = copy.data;
			sh->edge = true; /* ep_modify queues it when ready */
		}
		pp = &sh->next;
	}
	if (op == EPOLL_CTL_ADD) {
		ep->nkernel++;
		ep->kready = true; /* it may be ready already */
	} else if (op == EPOLL_CTL_DEL && ep->nkernel) {
		ep->nkernel--;
	} else if (op == EPOLL_CTL_MOD) {
		ep->kready = true;
	}
	pthread_mutex_unlock(&ep->lock);
	return 0;
}

static int add_item(struct rs_epoll *ep, struct rs_fdb *b, int fd, const struct epoll_event *ev)
{
	enum rs_ring_unavailable why;
	struct rs_ring *r = rs_ring_get(&why);
	if (!r)
		return RS_EPOLL_NOT_OURS;
	struct rs_epitem *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->ep = ep;
	it->fdb = b;
	it->fd = fd;
	it->events = ev->events;
	it->data = ev->data;
	rs_fdb_ref(b);
	rs_ring_lock(r);
	/* A thread sleeping in epoll_wait on ep arms the item on its own
	 * ring when woken: completions armed here would wait for this
	 * thread to reap them. */
	bool elsewhere = sleeper_elsewhere(ep, r) && !(b->flags & FDB_LISTEN);
	pthread_mutex_lock(&b->lock);
	pthread_mutex_lock(&ep->lock);
	it->next_in_ep = ep->items;
	if (ep->items)
		ep->items->prev_in_ep = it;
	ep->items = it;
	it->next_in_fdb = b->items;
	b->items = it;
	if (item_mask(it, __atomic_load_n(&b->ready, __ATOMIC_ACQUIRE)))
		ready_add(ep, it);
	if (elsewhere)
		ep->adopt_pending = true;
	pthread_mutex_unlock(&ep->lock);
	pthread_mutex_unlock(&b->lock);
	if (!elsewhere) {
		arm_item(r, b);
		__atomic_store_n(&ep->arm_pending, true, __ATOMIC_RELEASE);
	}
	kick_sleepers(r, ep);
	rs_ring_unlock(r);
	return 0;
}

/* What b's readiness owes to state the receive or accept took from the
 * socket and the kernel no longer shows: stashed bytes, a socket error,
 * queued connections (no longer in the listener's backlog). */
static uint32_t residue(struct rs_fdb *b)
{
	if (b->flags & FDB_CLOSED)
		return 0;
	if (!__atomic_load_n(&b->rq.bytes, __ATOMIC_ACQUIRE) && !rs_fork_stash_bytes(b) &&
	    !__atomic_load_n(&b->sk_err, __ATOMIC_ACQUIRE) && !rs_acq_queued(b))
		return 0;
	return __atomic_load_n(&b->ready, __ATOMIC_ACQUIRE) &
	       (EPOLLIN | EPOLLRDNORM | EPOLLERR | EPOLLRDHUP | EPOLLHUP);
}

/* Report b's residue for a registration the kernel holds (b->lock not
 * held); the shadow takes a reference to b. */
static void add_shadow(struct rs_epoll *ep, struct rs_fdb *b, int fd, uint32_t events,
		       epoll_data_t data, bool edge)
{
	struct rs_shadow *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return;
	rs_fdb_ref(b);
	sh->fdb = b;
	sh->fd = fd;
	sh->events = events;
	sh->data = data;
	sh->edge = edge;
	pthread_mutex_lock(&ep->lock);
	sh->next = ep->shadows;
	ep->shadows = sh;
	pthread_mutex_unlock(&ep->lock);
}

int rs_epoll_ctl(int epfd, int op, int fd, struct epoll_event *uev)
{
	struct rs_epoll *ep = lookup(epfd);
	if (!ep)
		return RS_EPOLL_NOT_OURS;
	/* The kernel's order of checks (do_epoll_ctl): the event is read for
	 * every op but DEL, then the fds, then the rest. */
	struct epoll_event ev = { 0, { 0 } };
	bool has_event = op != EPOLL_CTL_DEL;
	if (has_event && rs_safe_copy(&ev, uev, sizeof(ev)))
		return -EFAULT;
	uint32_t st = rs_fd_state(fd);
	if (!st)
		return -EBADF;
	if (RS_FD_KIND(st) == RS_KIND_EPOLL && fd != epfd)
		rs_epoll_demote_fd(fd); /* nested: the outer epoll must see it */
	struct rs_fdb *b = rs_fdb_get(fd);
	if (!b && op == EPOLL_CTL_ADD && !ep->kernel_only && !rs_cfg.sqpoll)
		b = rs_fdb_attach(fd, st);
	struct rs_epitem *it = NULL;
	if (b) {
		pthread_mutex_lock(&b->lock);
		it = find_item(ep, b, fd);
		pthread_mutex_unlock(&b->lock);
	}
	bool shim = it || (op == EPOLL_CTL_ADD && shim_watched(b) && !ep->kernel_only);
	if (!shim) {
		int r = kernel_ctl(ep, op, fd, uev);
		/* A new registration of an fd that no longer receives ahead
		 * (fork) but still holds bytes the kernel does not show (its
		 * stash, shared at fork): those are reported too, as for the
		 * registrations handed over (fuzz seed 217, full program). */
		if (!r && op == EPOLL_CTL_ADD && b && residue(b))
			add_shadow(ep, b, fd, ev.events, ev.data, true);
		return r;
	}
	if (has_event && (ev.events & EPOLLEXCLUSIVE) &&
	    (op == EPOLL_CTL_MOD || (op == EPOLL_CTL_ADD && (ev.events & ~EXCLUSIVE_OK_BITS))))
		return -EINVAL;

	switch (op) {
	case EPOLL_CTL_ADD:
		if (it)
			return -EEXIST;
		int r = add_item(ep, b, fd, &ev);
		return r == RS_EPOLL_NOT_OURS ? kernel_ctl(ep, op, fd, uev) : r;
	case EPOLL_CTL_MOD:
		pthread_mutex_lock(&b->lock);
		pthread_mutex_lock(&ep->lock);
		if (it->events & EPOLLEXCLUSIVE) {
			pthread_mutex_unlock(&ep->lock);
			pthread_mutex_unlock(&b->lock);
			return -EINVAL;
		}
		it->events = ev.events;
		it->data = ev.data;
		it->disabled = false;
		bool now_ready = item_mask(it, __atomic_load_n(&b->ready, __ATOMIC_ACQUIRE));
		if (now_ready)
			ready_add(ep, it);
		else
			ready_del(ep, it);
		pthread_mutex_unlock(&ep->lock);
		pthread_mutex_unlock(&b->lock);
		if (now_ready) {
			/* ep_modify wakes the waiters when the item is ready. */
			enum rs_ring_unavailable why;
			struct rs_ring *r = rs_ring_get(&why);
			if (r) {
				rs_ring_lock(r);
				kick_sleepers(r, ep);
				rs_ring_unlock(r);
			}
		}
		return 0;
	case EPOLL_CTL_DEL:
		pthread_mutex_lock(&b->lock);
		pthread_mutex_lock(&ep->lock);
		unlink_item(it);
		pthread_mutex_unlock(&ep->lock);
		pthread_mutex_unlock(&b->lock);
		free(it);
		rs_fdb_unref(b);
		return 0;
	default:
		return -EINVAL;
	}
}

#define EP_PRIVATE_BITS (EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)

/* The item for (fd, data) was just added to the real epoll and the
 * kernel queued it (ep_insert queues whatever is ready), but the program
 * was already told about that edge: take it back out of the ready list.
 * Only epoll_wait takes items off it, in list order, and one event at a
 * time rotates it: a level-triggered item reported goes back to the
 * tail, so after the items ahead of ours have been reported once each
 * they stand in their old order again. An edge-triggered or oneshot
 * item reported on the way lost its edge (or got disabled): a MOD puts
 * it back (ep_modify queues it again when ready). */
static void handover_take_edge(struct rs_epoll *ep, int fd, epoll_data_t data)
{
	struct epoll_event taken[32];
	int ntaken = 0;
	pthread_mutex_lock(&ep->lock);
	unsigned limit = ep->nkernel + 1;
	pthread_mutex_unlock(&ep->lock);
	for (unsigned i = 0; i < limit; i++) {
		struct epoll_event e;
		if (RS_REAL(epoll_wait)(ep->epfd, &e, 1, 0) != 1)
			break;
		if (e.data.u64 == data.u64)
			break;
		/* Seen again: a full turn without ours (it was not queued
		 * after all); the list is back in its order. */
		bool again = false;
		for (int j = 0; j < ntaken && !again; j++)
			again = taken[j].data.u64 == e.data.u64;
		if (again || ntaken == (int)(sizeof(taken) / sizeof(taken[0])))
			break;
		taken[ntaken++] = e;
	}
	for (int j = 0; j < ntaken; j++) {
		struct epoll_event redo[4];
		int nredo = 0, fds[4];
		pthread_mutex_lock(&ep->lock);
		for (unsigned k = 0; k < ep->nkregs && nredo < 4; k++) {
			struct rs_kreg *kr = &ep->kregs[k];
			if (kr->fd != fd && kr->ev.data.u64 == taken[j].data.u64 &&
			    (kr->ev.events & (EPOLLET | EPOLLONESHOT)) &&
			    !(kr->ev.events & EPOLLEXCLUSIVE)) {
				fds[nredo] = kr->fd;
				redo[nredo++] = kr->ev;
			}
		}
		pthread_mutex_unlock(&ep->lock);
		for (int k = 0; k < nredo; k++)
			RS_REAL(epoll_ctl)(ep->epfd, EPOLL_CTL_MOD, fds[k], &redo[k]);
	}
}

/* Register a shim item in the real epoll with the state it has: the
 * kernel's item must not report an edge the program already had (a new
 * ADD queues whatever is ready), and a oneshot item that fired stays
 * disabled. */
static void handover(struct rs_epoll *ep, int fd, uint32_t events, epoll_data_t data,
		     bool edge_pending, bool disabled)
{
	struct epoll_event ev = { events, data };
	if (!disabled && (!(events & EPOLLET) || edge_pending)) {
		kernel_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		return;
	}
	/* What ep_insert's poll will find (POLL* and EPOLL* bits agree). */
	struct pollfd p = { fd, POLLIN | POLLOUT | POLLPRI | POLLRDHUP, 0 };
	uint32_t now = RS_REAL(poll)(&p, 1, 0) == 1 ? (uint32_t)p.revents : 0;
	if (disabled && now && !(events & EPOLLEXCLUSIVE)) {
		/* A disabled item keeps only the private bits, which no ADD
		 * gives (EPOLLERR|EPOLLHUP are always added): register it
		 * ready, oneshot, and take that one event. */
		ev.events = (events & EP_PRIVATE_BITS) | EPOLLONESHOT | now;
	} else if (!(now & (events | EPOLLERR | EPOLLHUP))) {
		kernel_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		return; /* not queued */
	}
	if (kernel_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		return;
	handover_take_edge(ep, fd, data);
	if (ev.events != events) {
		/* Record what the program asked for, disabled as it is. */
		pthread_mutex_lock(&ep->lock);
		struct epoll_event want = { events, data };
		kreg_note(ep, EPOLL_CTL_MOD, fd, &want);
		pthread_mutex_unlock(&ep->lock);
	}
}

/* Move b's registrations from the shim to the kernel epoll instances they
 * belong to (b stopped receiving ahead, or its epoll got nested). */
void rs_epoll_items_to_kernel(struct rs_fdb *b)
{
	for (;;) {
		pthread_mutex_lock(&b->lock);
		struct rs_epitem *it = b->items;
		if (!it) {
			pthread_mutex_unlock(&b->lock);
			return;
		}
		struct rs_epoll *ep = it->ep;
		pthread_mutex_lock(&ep->lock);
		/* An edge-triggered item off the ready list: the program was
		 * told about its last edge. */
		bool edge_pending = it->on_ready;
		bool disabled = it->disabled;
		unlink_item(it);
		pthread_mutex_unlock(&ep->lock);
		pthread_mutex_unlock(&b->lock);
		handover(ep, it->fd, it->events, it->data, edge_pending, disabled);
		if (residue(b) && !disabled)
			add_shadow(ep, b, it->fd, it->events, it->data, edge_pending);
		rs_fdb_unref(b); /* the item's reference */
		free(it);
	}
}

/* An emulated epoll fd watched by poll(), select() or another epoll: those
 * only see the kernel's epoll instance, so everything moves there and stays
 * there. (Bytes already stashed are still read first; they are reported by
 * this epoll's own epoll_wait, not through the outer watcher.) */
void rs_epoll_demote_fd(int epfd)
{
	struct rs_epoll *ep = lookup(epfd);
	if (!ep || ep->kernel_only)
		return;
	ep->kernel_only = true;
	enum rs_ring_unavailable why;
	struct rs_ring *r = rs_ring_get(&why);
	for (;;) {
		pthread_mutex_lock(&ep->lock);
		struct rs_epitem *it = ep->items;
		struct rs_fdb *b = it ? it->fdb : NULL;
		if (b)
			rs_fdb_ref(b);
		pthread_mutex_unlock(&ep->lock);
		if (!b)
			break;
		if (r) {
			rs_ring_lock(r);
			/* An accept left armed would keep emptying the
			 * backlog the kernel's epoll now watches. */
			if (b->flags & FDB_LISTEN)
				rs_acq_disarm(r, b);
			else
				rs_rx_disarm(r, b);
			rs_ring_unlock(r);
		}
		pthread_mutex_lock(&b->lock);
		/* Disarmed for good (FDB_NO_REARM): a later ADD to another
		 * set must go to the kernel, as in stop_ahead (fdb.c). */
		b->flags &= ~FDB_LISTEN;
		rs_fdb_rx_off(b);
		pthread_mutex_unlock(&b->lock);
		rs_epoll_items_to_kernel(b);
		rs_fdb_unref(b);
	}
}

/* ---- epoll_wait ----------------------------------------------------------- */

/* Report ready shim items into evs (program memory). ep->lock held.
 * Returns the count, or -EFAULT if nothing could be written. */
static int collect(struct rs_epoll *ep, struct epoll_event *evs, int max)
{
	int n = 0;
	struct rs_epitem *stop = ep->ready_tail;
	struct rs_epitem *it = ep->ready_head;
	while (it && n < max) {
		struct rs_epitem *next = it->rnext;
		bool last = it == stop;
		ready_del(ep, it);
		uint32_t mask = it->disabled ? 0
					     : item_mask(it, __atomic_load_n(&it->fdb->ready,
								      __ATOMIC_ACQUIRE));
		if (mask) {
			struct epoll_event ev;
			ev.events = mask;
			ev.data = it->data;
			if (rs_safe_copy(&evs[n], &ev, sizeof(ev))) {
				ready_add(ep, it);
				return n ? n : -EFAULT;
			}
			n++;
			if (it->events & EPOLLONESHOT)
				it->disabled = true;
			else if (!(it->events & EPOLLET))
				ready_add(ep, it); /* level-triggered: asked again next time */
		}
		if (last)
			break;
		it = next;
	}
	return n;
}

/* Items armed on another thread's ring (the program moved its event loop
 * to this thread): their completions must come here now. */
static void adopt(struct rs_ring *r, struct rs_epoll *ep)
{
	ep->home = r->id;
	struct rs_fdb *batch[64];
	for (;;) {
		int n = 0;
		pthread_mutex_lock(&ep->lock);
		for (struct rs_epitem *it = ep->items; it && n < 64; it = it->next_in_ep) {
			struct rs_fdb *b = it->fdb;
			if ((b->rx_armed && b->rx_ring != r) ||
			    (!b->rx_armed && !(b->flags & FDB_LISTEN))) {
				rs_fdb_ref(b);
				batch[n++] = b;
			}
		}
		pthread_mutex_unlock(&ep->lock);
		for (int i = 0; i < n; i++) {
			struct rs_fdb *b = batch[i];
			if (b->rx_armed && b->rx_ring != r) {
				rs_rx_disarm(r, b);
				pthread_mutex_lock(&b->lock);
				b->flags &= ~FDB_NO_REARM;
				pthread_mutex_unlock(&b->lock);
			}
			arm_item(r, b);
			rs_fdb_unref(b);
		}
		if (n < 64)
			break;
	}
}

/* Add the shadows' readiness to the kernel's events evs[0..n) (program
 * memory), or report a shadow the kernel did not. Returns the new count,
 * or -EFAULT. */
static int shadows_merge(struct rs_epoll *ep, struct epoll_event *evs, int n, int max)
{
	pthread_mutex_lock(&ep->lock);
	for (struct rs_shadow **pp = &ep->shadows; *pp;) {
		struct rs_shadow *sh = *pp;
		uint32_t res = residue(sh->fdb);
		if (!res) {
			*pp = sh->next;
			rs_fdb_unref(sh->fdb);
			free(sh);
			continue;
		}
		pp = &sh->next;
		/* A oneshot item that fired is disabled: it reports nothing,
		 * not even ERR or HUP, as the kernel's. */
		bool enabled = sh->events & ~EP_PRIVATE_BITS;
		uint32_t mask = enabled ? res & (sh->events | EPOLLERR | EPOLLHUP) : 0;
		bool seen = false;
		for (int i = 0; i < n && !seen; i++) {
			struct epoll_event e;
			if (rs_safe_copy(&e, &evs[i], sizeof(e)) || e.data.u64 != sh->data.u64)
				continue;
			seen = true;
			e.events |= mask;
			if (rs_safe_copy(&evs[i], &e, sizeof(e))) {
				pthread_mutex_unlock(&ep->lock);
				return -EFAULT;
			}
			sh->edge = false;
			/* The kernel's oneshot item fired and is disabled now:
			 * so is the shadow (fuzz seed 217: reported again). */
			if (sh->events & EPOLLONESHOT)
				sh->events &= EP_PRIVATE_BITS;
		}
		if (seen || !mask || n >= max || ((sh->events & EPOLLET) && !sh->edge))
			continue;
		/* The kernel's item is not queued: the whole of tcp_poll's
		 * answer, the socket's part asked of the socket. */
		struct pollfd p = { sh->fd, POLLIN | POLLOUT | POLLPRI | POLLRDHUP, 0 };
		uint32_t now = RS_REAL(poll)(&p, 1, 0) == 1 ? (uint32_t)p.revents : 0;
		struct epoll_event e = { mask | (now & (sh->events | EPOLLERR | EPOLLHUP)), sh->data };
		if (rs_safe_copy(&evs[n], &e, sizeof(e))) {
			pthread_mutex_unlock(&ep->lock);
			return n ? n : -EFAULT;
		}
		n++;
		sh->edge = false;
		if (sh->events & EPOLLONESHOT)
			sh->events &= EP_PRIVATE_BITS; /* reported once */
	}
	pthread_mutex_unlock(&ep->lock);
	return n;
}

#ifndef IORING_OP_EPOLL_WAIT
#define IORING_OP_EPOLL_WAIT 59
#endif

/* An epoll set with nothing watched by the shim is the kernel's own: wait
 * on it through the ring (IORING_OP_EPOLL_WAIT, Linux 6.15), so queued
 * sends and the wait share one io_uring_enter — or none at all under
 * SQPOLL with busy polling. The events land straight in the program's
 * array; the op is cancelled (and reaped) before a timeout or a signal
 * returns. */
static int kernel_wait(struct rs_ring *r, struct rs_epoll *ep, struct rs_sleeper *me,
		       struct epoll_event *evs, int max, const struct timespec *timeout,
		       const sigset_t *mask)
{
	bool zero = timeout && !timeout->tv_sec && !timeout->tv_nsec;
	if (mask && !zero) {
		/* The kernel looks for events before it looks at signals, and
		 * returning events restores the old mask without delivering
		 * what the new one let in; an enter with the mask would
		 * deliver a pending signal before the op's CQE is in. */
		int n = RS_REAL(epoll_wait)(ep->epfd, evs, max, 0);
		if (n)
			return n < 0 ? -errno : n;
	}
	struct rs_op op = { 0 };
	struct io_uring_sqe *sqe = rs_ring_sqe(r);
	if (!sqe)
		return -EBUSY;
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_EPOLL_WAIT;
	sqe->fd = ep->epfd;
	sqe->addr = (uint64_t)(uintptr_t)evs;
	sqe->len = (unsigned)max;
	sqe->user_data = (uint64_t)(uintptr_t)&op;
	struct rs_wait w = { 0 };
	w.interruptible = true;
	w.never_restart = true;
	w.sigmask = mask;
	if (timeout && !zero)
		w.timeout_ns = (uint64_t)timeout->tv_sec * 1000000000u + (uint64_t)timeout->tv_nsec;
	if (zero) {
		/* Nothing ready must not wait: give the op one pass, then take
		 * it back. */
		rs_ring_poke(r);
		rs_ring_reap(r);
		if (!op.done) {
			int res = rs_ring_cancel_wait(r, &op);
			return res == -ECANCELED ? 0 : res;
		}
		return op.res;
	}
	pthread_mutex_lock(&ep->lock);
	me->kwait = &op;
	bool kicked = me->kicked; /* an ADD came before the op was set */
	pthread_mutex_unlock(&ep->lock);
	if (kicked) {
		pthread_mutex_lock(&ep->lock);
		me->kwait = NULL;
		pthread_mutex_unlock(&ep->lock);
		int res = rs_ring_cancel_wait(r, &op);
		return res;
	}
	int res = rs_ring_run(r, &op, &w);
	pthread_mutex_lock(&ep->lock);
	me->kwait = NULL;
	pthread_mutex_unlock(&ep->lock);
	if (res == RS_TIMED_OUT)
		return 0;
	if (res == -EINTR)
		rs_count(RS_C_eintr);
	return res;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int rs_epoll_wait(int epfd, struct epoll_event *evs, int max, const struct timespec *timeout,
		  const sigset_t *mask)
{
	struct rs_epoll *ep = lookup(epfd);
	if (!ep)
		return RS_EPOLL_NOT_OURS;
	if (max <= 0 || max > INT_MAX / (int)sizeof(struct epoll_event))
		return -EINVAL;
	enum rs_ring_unavailable why;
	struct rs_ring *r = rs_ring_get(&why);
	if (!r)
		return RS_EPOLL_NOT_OURS;
	uint64_t deadline = 0;
	bool forever = !timeout;
	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)
			return -EINVAL;
		deadline = now_ns() + (uint64_t)timeout->tv_sec * 1000000000u +
			   (uint64_t)timeout->tv_nsec;
	}
	struct rs_sig_mark mark = rs_sig_mark();
	int n = 0;
	struct rs_sleeper me;

	rs_ring_lock(r);
	pthread_mutex_lock(&ep->lock);
	bool kernel_only = !ep->items && !ep->shadows;
	/* From here on an epoll_ctl on another thread wakes this one. */
	sleeper_add(ep, &me, r);
	pthread_mutex_unlock(&ep->lock);
	if (kernel_only && rs_ring_op_supported(IORING_OP_EPOLL_WAIT)) {
		n = kernel_wait(r, ep, &me, evs, max, timeout, mask);
		if (n > 0) /* written by the kernel through the ring */
			RS_VG_DEFINED(evs, (size_t)n * sizeof(*evs));
		/* Cancelled by an ADD of an fd the shim watches: wait for
		 * both below, for the time left. */
		if (n != -ECANCELED || !me.kicked) {
			sleeper_del(ep, &me);
			rs_ring_unlock(r);
			return n;
		}
		n = 0;
	}
	if (ep->home != r->id || __atomic_exchange_n(&ep->adopt_pending, false, __ATOMIC_ACQ_REL))
		adopt(r, ep);
	bool zero = timeout && !timeout->tv_sec && !timeout->tv_nsec;
	bool poked = false;
	bool mask_decided = false, masked = false;
	const sigset_t *enter_mask = NULL;
	sigset_t saved_mask;
	if (__atomic_exchange_n(&ep->arm_pending, false, __ATOMIC_ACQ_REL)) {
		/* ep_insert polls the file: a connection or bytes already
		 * there are reported by the next wait, even next to other
		 * events at hand. Here they are known once the accept or
		 * receive armed by the ADD has run: submit it (it completes
		 * inline when there is something). One enter for all the
		 * ADDs since the last wait. */
		rs_ring_poke(r);
	}
	for (;;) {
		rs_ring_reap(r);
		/* Items another thread added while this one slept. */
		if (__atomic_exchange_n(&ep->adopt_pending, false, __ATOMIC_ACQ_REL))
			adopt(r, ep);
		pthread_mutex_lock(&ep->lock);
		bool kcheck = ep->nkernel && ep->kready;
		kpoll_arm(r, ep);
		pthread_mutex_unlock(&ep->lock);
		n = 0;
		bool shim_first = ep->shim_first;
		if (shim_first) {
			pthread_mutex_lock(&ep->lock);
			int s = collect(ep, evs, max);
			pthread_mutex_unlock(&ep->lock);
			if (s < 0) {
				n = s;
				break;
			}
			n = s;
		}
		if (kcheck && n < max) {
			int k = RS_REAL(epoll_wait)(ep->epfd, evs + n, max - n, 0);
			if (k < 0) {
				if (!n)
					n = -errno;
				if (n < 0)
					break;
				k = 0;
			}
			pthread_mutex_lock(&ep->lock);
			/* Level-triggered kernel items stay ready without a new
			 * wakeup: look again next time as long as there were some
			 * (or when there was no room to ask). */
			ep->kready = k > 0;
			pthread_mutex_unlock(&ep->lock);
			n += k;
		}
		if (ep->shadows) {
			int s = shadows_merge(ep, evs, n, max);
			if (s < 0 && !n) {
				n = s;
				break;
			}
			if (s > 0)
				n = s;
		}
		if (!shim_first && n < max) {
			pthread_mutex_lock(&ep->lock);
			int s = collect(ep, evs + n, max - n);
			pthread_mutex_unlock(&ep->lock);
			if (s < 0 && !n) {
				n = s;
				break;
			}
			if (s > 0)
				n += s;
		}
		if (n == max)
			ep->shim_first = !shim_first;
		/* Events at hand return at once; the sends queued meanwhile go
		 * out with the next enter — the one that waits, a full SQ, or
		 * RINGSHIM_FLUSH_US — so a busy loop pays no syscall at all. */
		if (n)
			break;
		if (zero) {
			if (poked || !(io_uring_sq_ready(&r->uring) || rs_ring_has_news(r)))
				break;
			rs_ring_poke(r); /* completions may be waiting to be run */
			poked = true;
			continue;
		}
		struct __kernel_timespec ts, *tsp = NULL;
		if (!forever) {
			uint64_t now = now_ns();
			if (now >= deadline)
				break;
			ts.tv_sec = (long long)((deadline - now) / 1000000000u);
			ts.tv_nsec = (long long)((deadline - now) % 1000000000u);
			tsp = &ts;
		}
		if (mask && !mask_decided) {
			/* The mask holds from the first sleep to the return,
			 * as epoll_pwait's does: a signal it keeps out is
			 * delivered only once the result is decided, and one
			 * it lets in, pending already, ends the call now that
			 * nothing is ready. When it only lets signals in, each
			 * wait can carry it (no system call): between two
			 * waits the thread's own mask holds those signals
			 * back, as the kernel's wait would have until its
			 * end. When it keeps out one the thread lets in, that
			 * signal would be delivered between two waits and end
			 * the call with EINTR: set the mask for the whole
			 * call instead. */
			mask_decided = true;
			sigset_t cur;
			if (rs_sigmask_current(&cur) && rs_sigmask_only_unblocks(mask, &cur)) {
				enter_mask = mask;
			} else {
				rs_ring_unlock(r); /* a handler may do I/O itself */
				RS_REAL(pthread_sigmask)(SIG_SETMASK, mask, &saved_mask);
				rs_ring_lock(r);
				masked = true;
			}
		}
		if (rs_sig.delivered == mark.delivered)
			rs_ring_wait_any(r, tsp, enter_mask);
		rs_ring_reap(r);
		/* epoll_wait is never restarted: any handler ends it. */
		if (rs_sig.delivered != mark.delivered) {
			pthread_mutex_lock(&ep->lock);
			bool ready = ep->ready_head || (ep->nkernel && ep->kready);
			pthread_mutex_unlock(&ep->lock);
			if (!ready) {
				rs_count(RS_C_eintr);
				n = -EINTR;
				break;
			}
		}
	}
	sleeper_del(ep, &me);
	rs_ring_unlock(r);
	if (masked)
		RS_REAL(pthread_sigmask)(SIG_SETMASK, &saved_mask, NULL);
	return n;
}

void rs_epoll_number_hidden(int fd)
{
	/* The registrations are keyed on (file, number) and only a DEL
	 * through the number itself finds them: do it before the number
	 * goes. Every instance is asked; those without it say ENOENT. */
	pthread_mutex_lock(&all_lock);
	for (struct rs_epoll *ep = all_eps; ep; ep = ep->all_next) {
		pthread_mutex_lock(&ep->lock);
		if (ep->nkernel && !RS_REAL(epoll_ctl)(ep->epfd, EPOLL_CTL_DEL, fd, NULL)) {
			ep->nkernel--;
			kreg_note(ep, EPOLL_CTL_DEL, fd, NULL);
		}
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_mutex_unlock(&all_lock);
}

void rs_epoll_closed(int epfd)
{
	struct rs_fd *e = rs_fd_peek(epfd);
	if (!e)
		return;
	struct rs_epoll *ep = __atomic_exchange_n((struct rs_epoll **)&e->batch, NULL,
						  __ATOMIC_ACQ_REL);
	if (!ep)
		return;
	pthread_mutex_lock(&ep->lock);
	if (ep->epfd == epfd &&
	    __atomic_load_n(&ep->refs, __ATOMIC_ACQUIRE) > 1 + (ep->kpoll_armed ? 1 : 0)) {
		/* Other numbers (dups) still refer to the instance, but the
		 * real calls name it by this one, which may next be a socket:
		 * keep a hidden copy to name it by. */
		int hidden = rs_internal_fd_hide(epfd, hidden_epfd_moved, ep);
		if (hidden >= 0)
			ep->epfd = hidden;
	}
	pthread_mutex_unlock(&ep->lock);
	rs_epoll_release(ep);
}

void rs_epoll_release(struct rs_epoll *ep)
{
	if (__atomic_load_n(&ep->refs, __ATOMIC_ACQUIRE) > 1 + (ep->kpoll_armed ? 1 : 0)) {
		ep_unref(ep); /* another number still refers to it */
		return;
	}
	/* Drop the shim's registrations, as the kernel does when the last
	 * reference to an epoll file goes. */
	for (;;) {
		pthread_mutex_lock(&ep->lock);
		struct rs_epitem *it = ep->items;
		struct rs_fdb *b = it ? it->fdb : NULL;
		if (b)
			rs_fdb_ref(b);
		pthread_mutex_unlock(&ep->lock);
		if (!b)
			break;
		pthread_mutex_lock(&b->lock);
		pthread_mutex_lock(&ep->lock);
		if (it == ep->items) {
			unlink_item(it);
			free(it);
			rs_fdb_unref(b);
		}
		pthread_mutex_unlock(&ep->lock);
		pthread_mutex_unlock(&b->lock);
		rs_fdb_unref(b);
	}
	ep_unref(ep);
}

uint32_t rs_epoll_poll_ready(int epfd)
{
	struct rs_epoll *ep = lookup(epfd);
	if (!ep)
		return 0;
	pthread_mutex_lock(&ep->lock);
	bool ready = false;
	for (struct rs_epitem *it = ep->ready_head; it && !ready; it = it->rnext)
		ready = !it->disabled &&
			item_mask(it, __atomic_load_n(&it->fdb->ready, __ATOMIC_ACQUIRE));
	pthread_mutex_unlock(&ep->lock);
	return ready ? POLLIN : 0;
}

/* References to b held by shadows (for the fork child's recount; single
 * threaded there, no locks). */
unsigned rs_epoll_shadow_refs(const struct rs_fdb *b)
{
	unsigned n = 0;
	for (struct rs_epoll *ep = all_eps; ep; ep = ep->all_next)
		for (struct rs_shadow *sh = ep->shadows; sh; sh = sh->next)
			n += sh->fdb == b;
	return n;
}

void rs_epoll_ring_exit(struct rs_ring *r)
{
	for (;;) {
		struct rs_epoll *ep = NULL;
		pthread_mutex_lock(&all_lock);
		for (struct rs_epoll *x = all_eps; x && !ep; x = x->all_next) {
			pthread_mutex_lock(&x->lock);
			if (x->kpoll_armed && x->kpoll_ring == r) {
				ep = x;
				__atomic_add_fetch(&ep->refs, 1, __ATOMIC_ACQ_REL);
			}
			pthread_mutex_unlock(&x->lock);
		}
		pthread_mutex_unlock(&all_lock);
		if (!ep)
			return;
		struct io_uring_sqe *sqe = rs_ring_sqe(r);
		if (sqe) {
			io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&ep->kpoll_op, 0);
			sqe->user_data = 0;
		}
		bool armed = true;
		/* Bounded (2 s), as the exit's other waits. */
		for (int i = 0; i < 200 && armed; i++) {
			rs_ring_reap(r);
			pthread_mutex_lock(&ep->lock);
			armed = ep->kpoll_armed && ep->kpoll_ring == r;
			if (!armed)
				ep->kready = true; /* the next wait asks the kernel */
			pthread_mutex_unlock(&ep->lock);
			if (armed) {
				struct __kernel_timespec ts = { 0, 10000000 };
				rs_ring_wait_any(r, &ts, NULL);
			}
		}
		ep_unref(ep);
		if (armed)
			return; /* would be found again */
	}
}

/* In a fork child every epoll instance is rebuilt lazily: its home ring
 * and the kernel poll died with the parent's rings. */
void rs_epoll_after_fork_child(void)
{
	pthread_mutex_init(&all_lock, NULL);
	for (struct rs_epoll *ep = all_eps; ep; ep = ep->all_next) {
		pthread_mutex_init(&ep->lock, NULL);
		ep->home = 0;
		if (ep->kpoll_armed) {
			ep->kpoll_armed = false;
			ep->refs--;
		}
		ep->kready = true;
	}
}
