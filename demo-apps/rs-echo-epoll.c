/* rs-echo-epoll: single-threaded nonblocking epoll echo server. */
#include "common.h"
#include "epoll_echo.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void usage(void)
{
    printf("usage: rs-echo-epoll [-p PORT] [-a ADDR] [-e] [-r]\n"
           "Single-threaded epoll echo server.\n"
           "  -p PORT  port to listen on (default 7001)\n"
           "  -a ADDR  address to bind (default 127.0.0.1)\n"
           "  -e       edge-triggered epoll (read/write until EAGAIN); default level-triggered\n"
           "  -r       use recv()/send() instead of read()/write()\n"
           "  -h       this help\n");
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 7001;
    struct epoll_echo_options opt = { 0 };
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":p:a:erh", long_opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = parse_port("-p", optarg); break;
        case 'a': addr = optarg; break;
        case 'e': opt.edge_triggered = true; break;
        case 'r': opt.use_recv_send = true; break;
        case 'h': usage(); return 0;
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);

    raise_nofile_limit();
    /* write() cannot take MSG_NOSIGNAL, so a client that disconnects while
     * we echo must surface as EPIPE instead of killing the server. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t wait_mask;
    block_stop_signals(&wait_mask);

    int listen_fd = listen_tcp(addr, port, true);
    announce_listening(listen_fd);
    epoll_echo_serve(listen_fd, &opt, &wait_mask);
    close(listen_fd);
    return 0;
}
