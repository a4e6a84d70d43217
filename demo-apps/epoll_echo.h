/* The nonblocking epoll echo loop shared by rs-echo-epoll and the -e mode
 * of rs-prefork. */
#ifndef DEMO_EPOLL_ECHO_H
#define DEMO_EPOLL_ECHO_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct epoll_echo_options {
    bool edge_triggered;   /* read/write until EAGAIN instead of once per event */
    bool use_recv_send;    /* recv()/send() instead of read()/write() */
    uint64_t *accepted;    /* if set, incremented for every accepted connection */
};

/* Serves echo on the nonblocking listen_fd until stop_requested is set by a
 * stop signal, which may only arrive inside epoll_pwait(wait_mask).  Closes
 * every connection before returning.  SIGPIPE must be ignored by the caller. */
void epoll_echo_serve(int listen_fd, const struct epoll_echo_options *opt,
                      const sigset_t *wait_mask);

#endif
