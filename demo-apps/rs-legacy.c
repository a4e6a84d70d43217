/* rs-legacy: an echo server written the way many old servers write replies:
 * every complete SIZE-byte message goes back in CHUNK-byte unbuffered
 * write() calls.  This is the workload where coalescing small writes pays. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define THREAD_STACK_SIZE (64 * 1024)

static size_t msg_size = 1024;
static size_t chunk_size = 64;
static bool nodelay = true;

static void usage(void)
{
    printf("usage: rs-legacy [-p PORT] [-a ADDR] [-m SIZE] [-w CHUNK] [-N] [-t]\n"
           "Echo server that answers each SIZE-byte message with many small write() calls.\n"
           "  -p PORT   port to listen on (default 7004)\n"
           "  -a ADDR   address to bind (default 127.0.0.1)\n"
           "  -m SIZE   message size in bytes (default 1024)\n"
           "  -w CHUNK  bytes per write() call (default 64)\n"
           "  -N        leave Nagle on (default sets TCP_NODELAY on every connection)\n"
           "  -t        thread per connection, blocking I/O (default single-threaded epoll)\n"
           "  -h        this help\n");
}

/* ---- thread-per-connection model ---------------------------------------- */

static void *serve_blocking(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *msg = xmalloc(msg_size);
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, msg + have, msg_size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        if (have < msg_size)
            continue;
        have = 0;
        bool ok = true;
        for (size_t off = 0; ok && off < msg_size; off += chunk_size)
            ok = write_all(fd, msg + off, msg_size - off < chunk_size ? msg_size - off : chunk_size);
        if (!ok)
            break;
    }
    free(msg);
    close(fd);
    return NULL;
}

static void run_threads(int listen_fd, const sigset_t *wait_mask)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (!stop_requested) {
        struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
        if (ppoll(&pfd, 1, NULL, wait_mask) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("ppoll");
        }
        int fd;
        while ((fd = accept_connection(listen_fd, 0)) >= 0) {
            set_nodelay(fd, nodelay);
            pthread_t tid;
            int err = pthread_create(&tid, &attr, serve_blocking, (void *)(intptr_t)fd);
            if (err) {
                errno = err;
                warn_errno("pthread_create (connection dropped)");
                close(fd);
            }
        }
        if (errno != EAGAIN)
            warn_errno("accept");
    }
    pthread_attr_destroy(&attr);
}

/* ---- single-threaded epoll model ---------------------------------------- */

struct legacy_conn {
    int fd;
    uint32_t events;
    size_t have;            /* bytes of the current incomplete message */
    char *msg;
    struct bytebuf out;     /* reply bytes the socket refused; sent before anything newer */
};

static int epoll_fd;
static struct legacy_conn **conn_by_fd;
static size_t max_fds;
static char io_buf[64 * 1024];
static char listener_tag;

/* Writes pending reply bytes CHUNK at a time, the way the legacy server
 * would.  Returns false if the connection broke. */
static bool write_chunks(struct legacy_conn *c, const char *data, size_t len)
{
    size_t off = 0;
    if (!bytebuf_pending(&c->out)) {
        while (off < len) {
            size_t want = len - off < chunk_size ? len - off : chunk_size;
            ssize_t n = write(c->fd, data + off, want);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN)
                    return false;
                break;
            }
            off += (size_t)n;
            if ((size_t)n < want)
                break;  /* the socket buffer is full: keep the rest */
        }
    }
    if (off < len)
        bytebuf_append(&c->out, data + off, len - off);
    return true;
}

static bool flush_pending(struct legacy_conn *c)
{
    while (bytebuf_pending(&c->out)) {
        size_t pending = bytebuf_pending(&c->out);
        ssize_t n = write(c->fd, bytebuf_head(&c->out), pending < chunk_size ? pending : chunk_size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN;
        }
        bytebuf_consume(&c->out, (size_t)n);
    }
    return true;
}

static void conn_close(struct legacy_conn *c)
{
    conn_by_fd[c->fd] = NULL;
    close(c->fd);
    bytebuf_free(&c->out);
    free(c->msg);
    free(c);
}

static void conn_want(struct legacy_conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* Splits input into messages and replies to each complete one. */
static bool consume_input(struct legacy_conn *c, const char *data, size_t len)
{
    while (len > 0) {
        size_t take = msg_size - c->have < len ? msg_size - c->have : len;
        memcpy(c->msg + c->have, data, take);
        c->have += take;
        data += take;
        len -= take;
        if (c->have == msg_size) {
            c->have = 0;
            if (!write_chunks(c, c->msg, msg_size))
                return false;
        }
    }
    return true;
}

static void conn_service(struct legacy_conn *c)
{
    if (!flush_pending(c))
        goto broken;
    /* Stop reading while replies are stuck, so a client that does not read
     * cannot make us buffer without bound. */
    if (bytebuf_pending(&c->out)) {
        conn_want(c, EPOLLOUT);
        return;
    }
    ssize_t n;
    do
        n = read(c->fd, io_buf, sizeof io_buf);
    while (n < 0 && errno == EINTR);
    if (n == 0 || (n < 0 && errno != EAGAIN))
        goto broken;
    if (n > 0 && !consume_input(c, io_buf, (size_t)n))
        goto broken;
    conn_want(c, bytebuf_pending(&c->out) ? EPOLLOUT : EPOLLIN);
    return;
broken:
    conn_close(c);
}

static void accept_pending(int listen_fd)
{
    int fd;
    while ((fd = accept_connection(listen_fd, SOCK_NONBLOCK)) >= 0) {
        struct legacy_conn *c = xcalloc(1, sizeof *c);
        c->msg = xmalloc(msg_size);
        set_nodelay(fd, nodelay);
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            warn_errno("epoll_ctl");
            close(fd);
            free(c->msg);
            free(c);
            continue;
        }
        conn_by_fd[fd] = c;
    }
    if (errno != EAGAIN)
        warn_errno("accept");
}

static void run_epoll(int listen_fd, const sigset_t *wait_mask)
{
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    max_fds = lim.rlim_cur;
    conn_by_fd = xcalloc(max_fds, sizeof *conn_by_fd);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die_errno("epoll_create1");
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listener_tag };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &lev) != 0)
        die_errno("epoll_ctl listener");

    struct epoll_event events[512];
    while (!stop_requested) {
        int n = epoll_pwait(epoll_fd, events, 512, -1, wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_errno("epoll_pwait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &listener_tag)
                accept_pending(listen_fd);
            else
                conn_service(events[i].data.ptr);
        }
    }
    for (size_t fd = 0; fd < max_fds; fd++)
        if (conn_by_fd[fd])
            conn_close(conn_by_fd[fd]);
    free(conn_by_fd);
    close(epoll_fd);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 7004;
    bool threaded = false;
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":p:a:m:w:Nth", long_opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = parse_port("-p", optarg); break;
        case 'a': addr = optarg; break;
        case 'm': msg_size = parse_size("-m", optarg, 1, 64 << 20); break;
        case 'w': chunk_size = parse_size("-w", optarg, 1, 64 << 20); break;
        case 'N': nodelay = false; break;
        case 't': threaded = true; break;
        case 'h': usage(); return 0;
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);

    raise_nofile_limit();
    /* This server must use plain write(), which cannot pass MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t wait_mask;
    block_stop_signals(&wait_mask);

    int listen_fd = listen_tcp(addr, port, true);
    announce_listening(listen_fd);
    if (threaded)
        run_threads(listen_fd, &wait_mask);
    else
        run_epoll(listen_fd, &wait_mask);
    close(listen_fd);
    return 0;
}
