/* epoll emulation for batch mode. Fds the shim serves (connected TCP and
 * unix stream sockets, listening sockets) are watched by the shim itself:
 * their readiness comes from the stash, the accept queue and the
 * write-behind queue, with the kernel's level/edge/oneshot rules applied
 * here. Every other fd is registered in the real epoll instance, which the
 * shim watches through a multishot poll on its fd, so one io_uring_enter
 * waits for both. */
#ifndef RS_EPOLL_H
#define RS_EPOLL_H

#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

struct rs_fdb;
struct rs_epoll;

/* Returned by the functions below when epfd is not one of ours: the caller
 * uses the real call. */
#define RS_EPOLL_NOT_OURS (-4096 - 20)

void rs_epoll_created(int epfd);
int rs_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* timeout: NULL waits forever. */
int rs_epoll_wait(int epfd, struct epoll_event *evs, int max, const struct timespec *timeout,
		  const sigset_t *mask);
/* The program closed epfd, or an fd the shim watches. */
void rs_epoll_closed(int epfd);
/* One number referring to ep is gone. */
void rs_epoll_release(struct rs_epoll *ep);
void rs_epoll_duped(int oldfd, int newfd);
/* fd state changed readiness (fdb->lock held); key: what the socket's
 * wake-up was about (RS_WAKE_ALL for a state change). */
void rs_epoll_wake_fdb(struct rs_fdb *b, uint32_t ready, uint32_t key);
void rs_epoll_forget_fdb(struct rs_fdb *b);
/* The program closes fd, the last number of its socket, while the shim
 * keeps the file open through a hidden copy (bytes still queued): remove
 * fd from the kernel epoll instances, as releasing the file would. */
void rs_epoll_number_hidden(int fd);
void rs_epoll_items_to_kernel(struct rs_fdb *b);
void rs_epoll_demote_fd(int epfd);
struct rs_epitem;
struct rs_epitem *rs_epitem_next_in_fdb(struct rs_epitem *it);
void rs_epoll_after_fork_child(void);
/* Ring r's thread exits (r->lock held): an instance's kernel poll armed on
 * r is cancelled and waited for. Destroyed with the ring instead, its end
 * would never be reaped and it would stay "armed" for good: no later wait,
 * whatever its thread, would arm it again, and the instance would miss
 * every event of the fds the kernel watches for it. */
void rs_epoll_ring_exit(struct rs_ring *r);
/* References to b held by registrations handed to the kernel with
 * stashed bytes (the fork child recounts b's references). */
unsigned rs_epoll_shadow_refs(const struct rs_fdb *b);
/* Readiness of an epoll fd itself, for poll()/select() on it. */
uint32_t rs_epoll_poll_ready(int epfd);

#endif
