#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- command line ------------------------------------------------------ */

void usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", program_invocation_short_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    exit(2);
}

void getopt_failure(int getopt_result, char *const argv[])
{
    const char *what = argv[optind - 1];
    char short_opt[3] = { '-', (char)optopt, 0 };
    if (optopt)
        what = short_opt;
    if (getopt_result == ':')
        usage_error("option %s needs a value", what);
    usage_error("unknown option %s", what);
}

void no_positional_args(int argc, char *const argv[])
{
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
}

long parse_long(const char *opt, const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end)
        usage_error("%s expects an integer, got '%s'", opt, text);
    if (v < min || v > max)
        usage_error("%s must be between %ld and %ld, got %ld", opt, min, max, v);
    return v;
}

int parse_port(const char *opt, const char *text)
{
    return (int)parse_long(opt, text, 1, 65535);
}

double parse_seconds(const char *opt, const char *text, double min)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= min) || v > 1e6)
        usage_error("%s expects a number of seconds >= %g, got '%s'", opt, min, text);
    return v;
}

uint64_t parse_size(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (errno || end == text || *end || text[0] == '-' || v > (max >> shift))
        usage_error("%s expects a size (bytes, K, M or G suffix) up to %llu, got '%s'", opt,
                    (unsigned long long)max, text);
    v <<= shift;
    if (v < min)
        usage_error("%s must be at least %llu, got '%s'", opt, (unsigned long long)min, text);
    return v;
}

/* ---- processes and signals --------------------------------------------- */

static void vreport(const char *fmt, va_list ap, int errnum)
{
    fprintf(stderr, "%s: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    if (errnum)
        fprintf(stderr, ": %s", strerror(errnum));
    fputc('\n', stderr);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap, 0);
    va_end(ap);
    exit(1);
}

void die_errno(const char *fmt, ...)
{
    int errnum = errno;
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap, errnum);
    va_end(ap);
    exit(1);
}

void warn_errno(const char *fmt, ...)
{
    int errnum = errno;
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap, errnum);
    va_end(ap);
    errno = errnum;
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

void raise_nofile_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            warn_errno("cannot raise the open file limit");
    }
}

volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void block_stop_signals(sigset_t *wait_mask)
{
    struct sigaction sa = { .sa_handler = on_stop_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_set, wait_mask);
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGINT);
}

/* ---- sockets ----------------------------------------------------------- */

int listen_tcp(const char *addr, int port, bool nonblocking)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
    struct addrinfo *ai;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%d", port);
    int rc = getaddrinfo(addr, port_text, &hints, &ai);
    if (rc != 0)
        usage_error("-a %s: not a numeric IPv4 or IPv6 address (%s)", addr, gai_strerror(rc));

    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        die_errno("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die_errno("bind %s:%d", addr, port);
    if (listen(fd, LISTEN_BACKLOG) != 0)
        die_errno("listen %s:%d", addr, port);
    freeaddrinfo(ai);
    return fd;
}

void announce_listening(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    getsockname(listen_fd, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        port = ntohs(sin6->sin6_port);
        fprintf(stderr, "listening on [%s]:%d\n", host, port);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        port = ntohs(sin->sin_port);
        fprintf(stderr, "listening on %s:%d\n", host, port);
    }
}

static int reserve_fd = -1;

static void shed_pending_connection(int listen_fd)
{
    int errnum = errno;
    if (reserve_fd >= 0) {
        close(reserve_fd);
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
    }
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    errno = errnum;
    warn_errno("accept (pending connection dropped)");
}

int accept_connection(int listen_fd, int flags)
{
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, flags | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE) {
            /* The reserve descriptor makes room for one accept4; the
             * listener must not block here, hence the poll. */
            struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
            if (poll(&pfd, 1, 0) == 1)
                shed_pending_connection(listen_fd);
            errno = EAGAIN;
        }
        return -1;
    }
}

static int wait_connected(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    int rc;
    do
        rc = poll(&pfd, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -1;
    errno = err;
    return err ? -1 : 0;
}

int connect_tcp(const char *host, int port, double timeout_s, uint64_t retry_deadline_ns)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%d", port);
    if (getaddrinfo(host, port_text, &hints, &ai) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd;
    for (;;) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && wait_connected(fd, (int)(timeout_s * 1000)) == 0))
            break;
        int errnum = errno;
        close(fd);
        fd = -1;
        errno = errnum;
        if (errnum != ECONNREFUSED || now_ns() >= retry_deadline_ns)
            break;
        nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
    }
    int errnum = errno;
    freeaddrinfo(ai);
    errno = errnum;
    return fd;
}

void set_nodelay(int fd, bool on)
{
    int v = on;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

void set_nonblocking(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* ---- time -------------------------------------------------------------- */

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- byte buffer ------------------------------------------------------- */

void bytebuf_append(struct bytebuf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t pending = bytebuf_pending(b);
        /* Reclaim consumed space first; grow only if that is not enough. */
        if (b->off > 0) {
            memmove(b->data, b->data + b->off, pending);
            b->off = 0;
            b->len = pending;
        }
        if (pending + n > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < pending + n)
                cap *= 2;
            b->data = realloc(b->data, cap);
            if (!b->data)
                die("out of memory");
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

void bytebuf_consume(struct bytebuf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void bytebuf_free(struct bytebuf *b)
{
    free(b->data);
    *b = (struct bytebuf){ 0 };
}
