/* rs-prefork: Apache-prefork-style echo server.  The parent listens and
 * forks N children that all accept on the shared listening socket; each
 * child counts its connections in a shared memory slot, so the parent can
 * report them even for a child it had to kill. */
#include "common.h"
#include "epoll_echo.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ECHO_BUF_SIZE (16 * 1024)
/* Children normally exit at once on SIGTERM; one stuck in a blocking call
 * that the signal could not interrupt gets SIGKILL after this grace time. */
#define STOP_GRACE_NS (3 * 1000000000ull)

static void usage(void)
{
    printf("usage: rs-prefork [-p PORT] [-a ADDR] [-n CHILDREN] [-e]\n"
           "Prefork echo server: N child processes accept on one listening socket.\n"
           "  -p PORT      port to listen on (default 7005)\n"
           "  -a ADDR      address to bind (default 127.0.0.1)\n"
           "  -n CHILDREN  number of child processes (default 4)\n"
           "  -e           each child runs an epoll loop with nonblocking accept4;\n"
           "               default: blocking accept(), one connection at a time\n"
           "  -h           this help\n"
           "On SIGTERM the parent stops the children and prints per-child connection counts.\n");
}

/* Blocking model: serve one connection to EOF, then accept the next.
 * A stop signal interrupts accept() or read() with EINTR. */
static void child_blocking(int listen_fd, uint64_t *accepted)
{
    char buf[ECHO_BUF_SIZE];
    while (!stop_requested) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                warn_errno("accept");
            continue;
        }
        (*accepted)++;
        while (!stop_requested) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || !write_all(fd, buf, (size_t)n))
                break;
        }
        close(fd);
    }
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 7005;
    unsigned nchildren = 4;
    bool epoll_mode = false;
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":p:a:n:eh", long_opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = parse_port("-p", optarg); break;
        case 'a': addr = optarg; break;
        case 'n': nchildren = (unsigned)parse_long("-n", optarg, 1, 1024); break;
        case 'e': epoll_mode = true; break;
        case 'h': usage(); return 0;
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);

    raise_nofile_limit();
    /* Children echo with plain write(), which cannot pass MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t wait_mask;
    block_stop_signals(&wait_mask);

    /* O_NONBLOCK lives in the open file description the children share,
     * so it is chosen once, here, for all of them. */
    int listen_fd = listen_tcp(addr, port, epoll_mode);
    size_t counts_size = nchildren * sizeof(uint64_t);
    uint64_t *counts = mmap(NULL, counts_size, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t *pids = xcalloc(nchildren, sizeof *pids);
    bool *reaped = xcalloc(nchildren, sizeof *reaped);
    if (counts == MAP_FAILED)
        die_errno("mmap");

    bool fork_failed = false;
    for (unsigned k = 0; k < nchildren; k++) {
        pids[k] = fork();
        if (pids[k] < 0) {
            warn_errno("fork");
            fork_failed = true;
            nchildren = k;      /* stop the children we have, then exit 1 */
            break;
        }
        if (pids[k] == 0) {
            free(pids);
            free(reaped);
            if (epoll_mode) {
                struct epoll_echo_options opt = { .accepted = &counts[k] };
                epoll_echo_serve(listen_fd, &opt, &wait_mask);
            } else {
                sigprocmask(SIG_SETMASK, &wait_mask, NULL);
                child_blocking(listen_fd, &counts[k]);
            }
            close(listen_fd);
            _exit(0);
        }
    }
    if (!fork_failed) {
        announce_listening(listen_fd);
        while (!stop_requested)
            sigsuspend(&wait_mask);
    }
    close(listen_fd);

    for (unsigned k = 0; k < nchildren; k++)
        kill(pids[k], SIGTERM);
    /* Poll instead of blocking in waitpid so the grace period can expire.
     * Only unreaped children are signalled: a reaped pid may be reused. */
    uint64_t deadline = now_ns() + STOP_GRACE_NS;
    for (unsigned live = nchildren; live > 0;) {
        for (unsigned k = 0; k < nchildren; k++) {
            if (!reaped[k] && waitpid(pids[k], NULL, WNOHANG) == pids[k]) {
                reaped[k] = true;
                live--;
            }
        }
        if (live == 0)
            break;
        if (now_ns() >= deadline) {
            for (unsigned k = 0; k < nchildren; k++) {
                if (!reaped[k]) {
                    fprintf(stderr, "rs-prefork: child %u pid %d ignored SIGTERM, killing it\n",
                            k, (int)pids[k]);
                    kill(pids[k], SIGKILL);
                    waitpid(pids[k], NULL, 0);
                    reaped[k] = true;
                }
            }
            break;
        }
        nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
    }

    uint64_t total = 0;
    for (unsigned k = 0; k < nchildren; k++) {
        fprintf(stderr, "child %u pid %d connections %llu\n", k, (int)pids[k],
                (unsigned long long)counts[k]);
        total += counts[k];
    }
    fprintf(stderr, "total connections %llu\n", (unsigned long long)total);
    free(pids);
    free(reaped);
    munmap(counts, counts_size);
    return fork_failed ? 1 : 0;
}
