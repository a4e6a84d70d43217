#include "epoll_echo.h"

#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct echo_conn {
    int fd;
    uint32_t events;        /* current epoll interest (level-triggered mode) */
    struct bytebuf out;     /* echoed bytes the socket has not taken yet */
};

struct echo_server {
    const struct epoll_echo_options *opt;
    int epoll_fd;
    int listen_fd;
    struct echo_conn **by_fd;   /* open connections, for the final cleanup */
    size_t max_fds;             /* descriptors are always below RLIMIT_NOFILE */
    char io_buf[64 * 1024];
};

/* The listener's epoll data; connections carry their echo_conn pointer. */
static char listener_tag;

static ssize_t conn_read(struct echo_server *s, struct echo_conn *c)
{
    if (s->opt->use_recv_send)
        return recv(c->fd, s->io_buf, sizeof s->io_buf, 0);
    return read(c->fd, s->io_buf, sizeof s->io_buf);
}

/* Writes as much of data as the socket takes now.  Returns the byte count,
 * or -1 if the connection is broken (EPIPE, ECONNRESET, ...). */
static ssize_t conn_write(struct echo_server *s, struct echo_conn *c, const char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = s->opt->use_recv_send ? send(c->fd, data + done, len - done, 0)
                                          : write(c->fd, data + done, len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            break;
        } else {
            return -1;
        }
    }
    return (ssize_t)done;
}

static void conn_close(struct echo_server *s, struct echo_conn *c)
{
    s->by_fd[c->fd] = NULL;
    close(c->fd);   /* also removes it from the epoll set */
    bytebuf_free(&c->out);
    free(c);
}

/* Level-triggered mode watches either input or output: while echoed bytes
 * are stuck we stop reading, which pushes back on the client instead of
 * buffering without limit.  Edge-triggered mode registered both once. */
static void conn_want(struct echo_server *s, struct echo_conn *c, uint32_t events)
{
    if (s->opt->edge_triggered || c->events == events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void conn_service(struct echo_server *s, struct echo_conn *c)
{
    if (bytebuf_pending(&c->out)) {
        ssize_t n = conn_write(s, c, bytebuf_head(&c->out), bytebuf_pending(&c->out));
        if (n < 0)
            goto broken;
        bytebuf_consume(&c->out, (size_t)n);
        if (bytebuf_pending(&c->out)) {
            conn_want(s, c, EPOLLOUT);
            return;
        }
    }
    for (;;) {
        ssize_t n = conn_read(s, c);
        if (n == 0)
            goto broken;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            goto broken;
        }
        ssize_t sent = conn_write(s, c, s->io_buf, (size_t)n);
        if (sent < 0)
            goto broken;
        if (sent < n) {
            bytebuf_append(&c->out, s->io_buf + sent, (size_t)(n - sent));
            conn_want(s, c, EPOLLOUT);
            return;
        }
        if (!s->opt->edge_triggered)
            break;
    }
    conn_want(s, c, EPOLLIN);
    return;
broken:
    conn_close(s, c);
}

static void accept_pending(struct echo_server *s)
{
    for (;;) {
        int fd = accept_connection(s->listen_fd, SOCK_NONBLOCK);
        if (fd < 0) {
            /* EAGAIN is routine: with several processes on one listener
             * (rs-prefork -e) another one often wins the race. */
            if (errno != EAGAIN)
                warn_errno("accept");
            return;
        }
        struct echo_conn *c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->events = s->opt->edge_triggered ? EPOLLIN | EPOLLOUT | EPOLLET : EPOLLIN;
        struct epoll_event ev = { .events = c->events, .data.ptr = c };
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            warn_errno("epoll_ctl");
            close(fd);
            free(c);
            continue;
        }
        s->by_fd[fd] = c;
        if (s->opt->accepted)
            (*s->opt->accepted)++;
    }
}

void epoll_echo_serve(int listen_fd, const struct epoll_echo_options *opt,
                      const sigset_t *wait_mask)
{
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);

    struct echo_server *s = xcalloc(1, sizeof *s);
    s->opt = opt;
    s->listen_fd = listen_fd;
    s->max_fds = lim.rlim_cur;
    s->by_fd = xcalloc(s->max_fds, sizeof *s->by_fd);
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epoll_fd < 0)
        die_errno("epoll_create1");
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listener_tag };
    if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, listen_fd, &lev) != 0)
        die_errno("epoll_ctl listener");

    struct epoll_event events[512];
    while (!stop_requested) {
        int n = epoll_pwait(s->epoll_fd, events, 512, -1, wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_errno("epoll_pwait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &listener_tag)
                accept_pending(s);
            else
                conn_service(s, events[i].data.ptr);
        }
    }

    for (size_t fd = 0; fd < s->max_fds; fd++)
        if (s->by_fd[fd])
            conn_close(s, s->by_fd[fd]);
    close(s->epoll_fd);
    free(s->by_fd);
    free(s);
}
