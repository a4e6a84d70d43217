/* Shared prologue and epilogue of the interposed entry points. */
#ifndef RS_ENTRY_H
#define RS_ENTRY_H

#include <errno.h>

#include "config.h"
#include "init.h"
#include "io.h"
#include "log.h"
#include "thread.h"

/* What kind of call asks: decides which fd kinds the ring serves it for. */
enum rs_opk {
	RS_OPK_RW,   /* read/write(v): sockets, pipes, files */
	RS_OPK_POS,  /* positional forms: regular files only */
	RS_OPK_SOCK, /* socket calls */
};

extern const struct rs_io *rs_mode_io;

/* RS_C_COUNT if the ring may serve this call on this kind of fd, else the
 * passthrough reason to count. */
static inline enum rs_counter rs_servable(enum rs_kind k, enum rs_opk opk)
{
	unsigned bit;
	switch (k) {
	case RS_KIND_TCP:
		bit = RS_FDS_TCP;
		break;
	case RS_KIND_UDP:
		bit = RS_FDS_UDP;
		break;
	case RS_KIND_UNIX_STREAM:
	case RS_KIND_UNIX_DGRAM:
	case RS_KIND_UNIX_SEQPACKET:
		bit = RS_FDS_UNIX;
		break;
	case RS_KIND_PIPE:
		if (opk != RS_OPK_RW)
			return RS_C_pt_fd_kind;
		bit = RS_FDS_PIPES;
		break;
	case RS_KIND_FILE:
		if (opk == RS_OPK_SOCK)
			return RS_C_pt_fd_kind;
		bit = RS_FDS_FILES;
		break;
	default:
		return RS_C_pt_fd_kind;
	}
	if (opk == RS_OPK_POS && k != RS_KIND_FILE)
		return RS_C_pt_fd_kind;
	return (rs_cfg.fds & bit) ? RS_C_COUNT : RS_C_pt_fds_filter;
}

/* The first passthrough of each reason is logged (RINGSHIM_LOG=info): the
 * commonest complaint about such libraries is silent non-acceleration. */
static inline void rs_note_passthrough(enum rs_counter why, int fd)
{
	rs_count(why);
	if (unlikely(rs_log_level >= RS_LOG_INFO))
		rs_log_once((unsigned)why, RS_LOG_INFO, "passing calls to libc: %s (first seen on fd %d)",
			    rs_counter_name(why), fd);
}

/* fd has state in the shim (batch mode: stash, write-behind queue, accept
 * queue, or it is an emulated epoll instance). */
static inline bool rs_fd_has_batch(int fd)
{
	struct rs_fd *e = rs_fd_peek(fd);
	return e && __atomic_load_n(&e->batch, __ATOMIC_ACQUIRE);
}

/* A thread without a ring of its own (RINGSHIM_MAX_RINGS reached, or its
 * ring could not be made) must not pass a call on shim state to libc: the
 * call would skip bytes stashed or queued by other threads, or an emulated
 * epoll's events. It borrows the lending ring instead (rs_ring_borrow) and
 * returns it with rs_ring_borrow_end. True if it borrowed. */
static inline bool rs_borrow_for(int fd, enum rs_ring_unavailable u)
{
	if (rs_cfg.mode != RS_MODE_BATCH || u == RS_RING_NO_URING || rs_tls_borrowed ||
	    !rs_fd_has_batch(fd))
		return false;
	return rs_ring_borrow() != NULL;
}

/* The same for the entry points that do not go through rs_begin (epoll,
 * poll, select): borrows when this thread has no ring and fd has shim
 * state (-1: the caller has checked the set). */
static inline bool rs_borrow_if_ringless(int fd)
{
	if (rs_cfg.mode != RS_MODE_BATCH || rs_tls_ring || rs_tls_borrowed || rs_depth)
		return false;
	/* Checked first: rs_ring_get makes this thread's ring if it can,
	 * which a call on the kernel's own state has no need for. */
	if (fd >= 0 && !rs_fd_has_batch(fd))
		return false;
	enum rs_ring_unavailable u;
	if (rs_ring_get(&u))
		return false;
	return u != RS_RING_NO_URING && rs_ring_borrow() != NULL;
}

/* Decide how this call is served: c->ring set and c->io a ring backend, or
 * c->ring NULL and c->io the passthrough backend. */
static inline void rs_begin(struct rs_call *c, enum rs_counter call, int fd, enum rs_opk opk)
{
	c->fd = fd;
	c->held_fd = -1;
	c->borrowed = false;
	c->ring = NULL;
	c->io = &rs_io_passthrough;
	c->served = RS_C_served_ring;
	c->st = 0;
	if (unlikely(!rs_ready()))
		return;
	rs_count(call);
	if (unlikely(rs_depth)) {
		rs_note_passthrough(RS_C_pt_reentry, fd);
		return;
	}
	c->st = rs_fd_state(fd);
	enum rs_counter why = rs_servable(RS_FD_KIND(c->st), opk);
	if (why != RS_C_COUNT) {
		rs_note_passthrough(why, fd);
		return;
	}
	enum rs_ring_unavailable u;
	struct rs_ring *r = rs_ring_get(&u);
	if (unlikely(!r)) {
		if (!rs_borrow_for(fd, u)) {
			rs_note_passthrough(u == RS_RING_CAP ? RS_C_pt_ring_cap : RS_C_pt_fallback, fd);
			return;
		}
		r = rs_tls_borrowed;
		c->borrowed = true;
	}
	c->ring = r;
	c->io = rs_mode_io;
	c->saved_errno = errno;
	rs_depth++;
	if (rs_cfg.mode == RS_MODE_BATCH)
		rs_ring_flush_if_old(r);
}

/* Finish: count how the call was served and turn -errno into errno. On
 * success errno is what it was before the call. */
static inline ssize_t rs_end(struct rs_call *c, ssize_t res)
{
	if (unlikely(c->held_fd >= 0))
		rs_call_drop_held(c);
	if (c->ring) {
		if (unlikely(c->borrowed))
			rs_ring_borrow_end();
		rs_depth--;
		if (c->served >= RS_C_PT_FIRST && c->served < RS_C_served_ring)
			rs_note_passthrough(c->served, c->fd);
		else
			rs_count(c->served);
		if (res >= 0) {
			errno = c->saved_errno;
			return res;
		}
	}
	if (res < 0) {
		errno = (int)-res;
		return -1;
	}
	return res;
}

/* Bookkeeping for fds made by calls (entry_fd.c). */
void rs_track_accepted(int listen_fd, int newfd, int flags);

#endif
