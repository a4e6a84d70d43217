/* rs-echo-threads: thread-per-connection blocking echo server. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Hundreds of threads each need only a read buffer and a few frames. */
#define THREAD_STACK_SIZE (64 * 1024)
#define ECHO_BUF_SIZE (16 * 1024)

static void usage(void)
{
    printf("usage: rs-echo-threads [-p PORT] [-a ADDR]\n"
           "Echo server with one blocking thread per connection.\n"
           "  -p PORT  port to listen on (default 7002)\n"
           "  -a ADDR  address to bind (default 127.0.0.1)\n"
           "  -h       this help\n");
}

static void *serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[ECHO_BUF_SIZE];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        /* EOF, reset or any other error simply ends this connection. */
        if (n <= 0 || !write_all(fd, buf, (size_t)n))
            break;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 7002;
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":p:a:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = parse_port("-p", optarg); break;
        case 'a': addr = optarg; break;
        case 'h': usage(); return 0;
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);

    raise_nofile_limit();
    /* Plain write() has no MSG_NOSIGNAL: a vanished client must give EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Threads inherit the blocked stop signals, so only the accept loop's
     * ppoll ever receives them. */
    sigset_t wait_mask;
    block_stop_signals(&wait_mask);

    /* Nonblocking listener: ppoll decides when to accept, and accept must not
     * block if the pending connection was reset meanwhile.  Accepted sockets
     * do not inherit O_NONBLOCK. */
    int listen_fd = listen_tcp(addr, port, true);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    announce_listening(listen_fd);

    while (!stop_requested) {
        struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
        if (ppoll(&pfd, 1, NULL, &wait_mask) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("ppoll");
        }
        int fd;
        while ((fd = accept_connection(listen_fd, 0)) >= 0) {
            pthread_t tid;
            int err = pthread_create(&tid, &attr, serve_connection, (void *)(intptr_t)fd);
            if (err) {
                errno = err;
                warn_errno("pthread_create (connection dropped)");
                close(fd);
            }
        }
        if (errno != EAGAIN)
            warn_errno("accept");
    }
    /* Connection threads end with the process. */
    pthread_attr_destroy(&attr);
    close(listen_fd);
    return 0;
}
