/* rs-pingpong: one connection, strict request/response against an echo
 * server: send SIZE bytes, wait for all of them to come back, repeat.  Only
 * one message is ever in flight, so nothing can be batched: this measures
 * the per-operation cost of the I/O path. */
#include "common.h"
#include "histogram.h"
#include "pattern.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define REPLY_TIMEOUT_S 5

static void usage(void)
{
    printf("usage: rs-pingpong -p PORT [-H HOST] [-s SIZE] [-n COUNT] [-j]\n"
           "One-connection ping-pong against an echo server; verifies every byte.\n"
           "  -H HOST   server host (default 127.0.0.1)\n"
           "  -p PORT   server port (required)\n"
           "  -s SIZE   message size in bytes, K/M suffix allowed (default 64)\n"
           "  -n COUNT  round trips (default 100000)\n"
           "  -j        print a JSON object instead of the text line\n"
           "  -h        this help\n"
           "Exit status 1 on any connection or verification error.\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    size_t size = 64;
    uint64_t count = 100000;
    bool json = false;
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":H:p:s:n:jh", long_opts, NULL)) != -1) {
        switch (c) {
        case 'H': host = optarg; break;
        case 'p': port = parse_port("-p", optarg); break;
        case 's': size = parse_size("-s", optarg, 1, 64 << 20); break;
        case 'n': count = (uint64_t)parse_long("-n", optarg, 1, 1000000000000L); break;
        case 'j': json = true; break;
        case 'h': usage(); return 0;
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);
    if (!port)
        usage_error("-p PORT is required");
    /* A server that disconnects must show up as EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);

    int fd = connect_tcp(host, port, 5.0, now_ns() + 5000000000ull);
    if (fd < 0)
        die_errno("connect %s:%d", host, port);
    set_nonblocking(fd, false);
    set_nodelay(fd, true);
    /* An echo server that loses bytes would otherwise leave us waiting forever. */
    struct timeval reply_timeout = { .tv_sec = REPLY_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &reply_timeout, sizeof reply_timeout);

    char *out = xmalloc(size), *in = xmalloc(size);
    struct histogram *hist = xcalloc(1, sizeof *hist);

    uint64_t errors = 0, start = now_ns();
    for (uint64_t seq = 0; seq < count && !errors; seq++) {
        pattern_fill(pattern_key(0, seq), 0, out, size);
        uint64_t t0 = now_ns();
        if (!write_all(fd, out, size)) {
            warn_errno("write");
            errors++;
            break;
        }
        size_t got = 0;
        while (got < size) {
            ssize_t n = read(fd, in + got, size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (n == 0)
                    fprintf(stderr, "rs-pingpong: server closed the connection\n");
                else if (errno == EAGAIN)
                    fprintf(stderr, "rs-pingpong: no complete echo of message %llu within %d s\n",
                            (unsigned long long)seq, REPLY_TIMEOUT_S);
                else
                    warn_errno("read");
                errors++;
                break;
            }
            got += (size_t)n;
        }
        if (got < size)
            break;
        hist_record(hist, (now_ns() - t0) / 1000);
        if (memcmp(in, out, size) != 0) {
            fprintf(stderr, "rs-pingpong: verification error in message %llu\n",
                    (unsigned long long)seq);
            errors++;
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    close(fd);

    const char *fmt = json
        ? "{\"size\":%zu,\"count\":%llu,\"secs\":%.3f,\"rtt_us_p50\":%llu,\"rtt_us_p99\":%llu,\"errors\":%llu}\n"
        : "rs-pingpong: size=%zu count=%llu secs=%.3f rtt_us_p50=%llu rtt_us_p99=%llu errors=%llu\n";
    printf(fmt, size, (unsigned long long)hist->count, secs,
           (unsigned long long)hist_percentile(hist, 50), (unsigned long long)hist_percentile(hist, 99),
           (unsigned long long)errors);
    free(out);
    free(in);
    free(hist);
    return errors ? 1 : 0;
}
