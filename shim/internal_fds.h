/* File descriptors the shim itself holds (ring fds, the log file, sockets
 * kept open for pending sends after the program closed them). The program
 * must never see them: they sit at high numbers, close()/close_range() skip
 * them, and dup2()/dup3() onto one of them first moves ours out of the way. */
#ifndef RS_INTERNAL_FDS_H
#define RS_INTERNAL_FDS_H

#include <stdbool.h>

typedef void (*rs_fd_moved_fn)(void *owner, int oldfd, int newfd);

/* The kernel gives a new fd the lowest free number, and io_uring_setup()
 * cannot be told otherwise: a ring fd exists at a low number until it is
 * moved high. The gate keeps the program's own fd-creating calls (socket,
 * open, pipe, dup...) out of that window, so a thread starting its ring
 * never shifts the number another thread's socket() gets. Readers are the
 * program's calls (shared, never blocked by a waiting writer). The writer
 * waits for them to leave, but only a few milliseconds while an open() is
 * among them (RS_FDGATE_SLOW), then goes ahead: a reader blocked in a FIFO
 * open() must not stall other threads. The other calls never block, so
 * waiting for them is short even when a reader was descheduled inside. */
int rs_fdgate_enter(void);		/* 0 when entered: pass to _leave */
void rs_fdgate_leave(int entered);
bool rs_fdgate_lock(void);		/* true when held exclusively */
void rs_fdgate_unlock(bool held);
int rs_fdgate_enter_slow(void);
void rs_fdgate_leave_slow(int entered);
#define RS_FDGATE_SLOW(expr)                                                   \
	({                                                                     \
		int g_ = rs_fdgate_enter_slow();                               \
		__typeof__(expr) r_ = (expr);                                  \
		rs_fdgate_leave_slow(g_);                                      \
		r_;                                                            \
	})
#define RS_FDGATE(expr)                                                        \
	({                                                                     \
		int g_ = rs_fdgate_enter();                                    \
		__typeof__(expr) r_ = (expr);                                  \
		rs_fdgate_leave(g_);                                           \
		r_;                                                            \
	})

/* dup `fd` to a high number (close-on-exec), close `fd`, register the copy.
 * Returns the fd now in use (the original one if it could not be moved). */
int rs_internal_fd_move_high(int fd, rs_fd_moved_fn moved, void *owner);
/* Register an fd already in place; `moved` is told when it gets renumbered. */
/* A hidden close-on-exec copy of fd at a high number (never, even for a
 * moment, at a low one a program's socket() could want), registered as
 * ours; -1 if none could be made. */
int rs_internal_fd_hide(int fd, rs_fd_moved_fn moved, void *owner);
void rs_internal_fd_add(int fd, rs_fd_moved_fn moved, void *owner);
void rs_internal_fd_remove(int fd);
bool rs_internal_fd_is(int fd);
/* If `fd` is ours, renumber it so the program can use that number. */
void rs_internal_fd_evict(int fd);
void rs_internal_fds_after_fork_child(void);
void rs_internal_fds_rlimit_changed(void);
/* Held around the program's own RLIMIT_NOFILE changes: the shim briefly
 * raises the limit to place an fd above it and must not restore an old
 * value over the program's new one. */
/* Whether the program's fd numbers are nearly used up with nowhere above
 * the limit to put ours: then the shim creates no more fds of its own. */
bool rs_internal_fds_tight(void);
void rs_internal_fds_rlimit_lock(void);
void rs_internal_fds_rlimit_unlock(void);
/* Before the program's F_DUPFD(from): make room at and above `from`. */
void rs_internal_fds_clear_from(int from);
/* Lowest number >= `from` that is one of ours, or -1. */
int rs_internal_fd_next(int from);

#endif
