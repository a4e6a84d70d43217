/* rs-loadgen: closed-loop echo load generator that verifies every byte.
 *
 * Each connection sends a stream of SIZE-byte messages, keeping DEPTH of them
 * in flight.  Message k of connection c carries the pattern stream
 * pattern_key(c, k), so the echoed stream is known in advance and checked
 * byte for byte as it arrives. */
#include "common.h"
#include "histogram.h"
#include "pattern.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK (64 * 1024)
#define MAX_ERROR_LINES 10
#define STALL_NS 1000000000ull

struct config {
    const char *host;
    int port;
    unsigned conns;
    uint64_t size;
    unsigned depth;
    double secs;
    double warmup;
    unsigned threads;
    bool json;
    bool quiet;
};

struct lg_conn {
    int fd;
    uint32_t id;
    uint32_t events;
    bool failed;
    /* Positions in the connection's byte stream (message k covers bytes
     * [k*size, (k+1)*size)). */
    uint64_t released;      /* bytes allowed onto the wire: in-flight window */
    uint64_t sent;
    uint64_t verified;
    uint64_t stamped;       /* messages whose first byte has been written */
    uint64_t last_echo_ns;  /* when echoed bytes last arrived (or the run began) */
    uint64_t *send_time_ns; /* per in-flight message, indexed by seq % depth */
};

struct worker {
    pthread_t thread;
    const struct config *cfg;
    struct lg_conn *conns;
    unsigned nconns;
    unsigned live;
    int epoll_fd;
    uint64_t measure_start_ns, measure_end_ns;
    /* results, owned by the worker until it is joined */
    struct histogram hist;
    uint64_t requests;
    uint64_t errors;
    unsigned stalled;       /* live connections owed an echo for STALL_NS at the end */
    uint64_t progress;      /* completed requests, read live by the main thread */
    bool finished;          /* set (atomically) when the worker stops early or on time */
    char out_buf[IO_CHUNK];
    char in_buf[IO_CHUNK];
    char expect_buf[IO_CHUNK];
};

static unsigned error_lines;

static void usage(void)
{
    printf("usage: rs-loadgen -p PORT [-H HOST] [-c CONNS] [-s SIZE] [-d DEPTH] [-t SECS]\n"
           "                  [-w SECS] [-T THREADS] [-j] [-q]\n"
           "Echo load generator: verifies every echoed byte, reports throughput and latency.\n"
           "  -H HOST     server host (default 127.0.0.1)\n"
           "  -p PORT     server port (required)\n"
           "  -c CONNS    connections (default 50)\n"
           "  -s SIZE     message size in bytes, K/M suffix allowed (default 128)\n"
           "  -d DEPTH    pipelined messages in flight per connection (default 1)\n"
           "  -t SECS     measured duration, fractions allowed (default 5)\n"
           "  -w SECS     warm-up before measuring (default 0)\n"
           "  -T THREADS  worker threads, each with its own epoll loop (default 1)\n"
           "  -j          print a JSON object instead of the text line\n"
           "  -q          no progress output on stderr\n"
           "  -h          this help\n"
           "Exit status 1 on any verification or connection error, or if no request completed.\n");
}

/* One line per error, up to a limit: a broken server can fail thousands of
 * connections at once. */
static void report_conn_error(struct worker *w, struct lg_conn *c, const char *what, int errnum)
{
    w->errors++;
    unsigned line = __atomic_fetch_add(&error_lines, 1, __ATOMIC_RELAXED);
    if (line < MAX_ERROR_LINES)
        fprintf(stderr, "rs-loadgen: conn %u: %s%s%s\n", c->id, what, errnum ? ": " : "",
                errnum ? strerror(errnum) : "");
    else if (line == MAX_ERROR_LINES)
        fprintf(stderr, "rs-loadgen: further errors not shown\n");
}

static void conn_fail(struct worker *w, struct lg_conn *c, const char *what, int errnum)
{
    report_conn_error(w, c, what, errnum);
    c->failed = true;
    close(c->fd);
    w->live--;
}

/* Fills buf with bytes [pos, pos + len) of the connection's stream. */
static void stream_fill(const struct worker *w, const struct lg_conn *c, uint64_t pos, char *buf, size_t len)
{
    uint64_t size = w->cfg->size;
    while (len > 0) {
        uint64_t seq = pos / size, off = pos % size;
        size_t n = size - off < len ? (size_t)(size - off) : len;
        pattern_fill(pattern_key(c->id, seq), off, buf, n);
        buf += n;
        pos += n;
        len -= n;
    }
}

static void conn_want(struct worker *w, struct lg_conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(w->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void conn_send(struct worker *w, struct lg_conn *c, uint64_t now)
{
    uint64_t size = w->cfg->size;
    if (now < w->measure_end_ns) {
        uint64_t window = (uint64_t)w->cfg->depth * size;
        uint64_t done = c->verified - c->verified % size;
        if (c->released < done + window)
            c->released = done + window;
    }
    while (c->sent < c->released) {
        size_t len = c->released - c->sent < IO_CHUNK ? (size_t)(c->released - c->sent) : IO_CHUNK;
        stream_fill(w, c, c->sent, w->out_buf, len);
        uint64_t t = now_ns();
        ssize_t n = write(c->fd, w->out_buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_fail(w, c, "write", errno);
            return;
        }
        c->sent += (uint64_t)n;
        for (; c->stamped * size < c->sent; c->stamped++)
            c->send_time_ns[c->stamped % w->cfg->depth] = t;
        if ((size_t)n < len)
            break;
    }
    conn_want(w, c, c->sent < c->released ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void conn_receive(struct worker *w, struct lg_conn *c)
{
    ssize_t n;
    do
        n = read(c->fd, w->in_buf, sizeof w->in_buf);
    while (n < 0 && errno == EINTR);
    uint64_t now = now_ns();
    if (n < 0 && errno == EAGAIN)
        return;
    if (n < 0) {
        conn_fail(w, c, "read", errno);
        return;
    }
    if (n == 0) {
        conn_fail(w, c, "server closed the connection", 0);
        return;
    }
    if (c->verified + (uint64_t)n > c->sent) {
        conn_fail(w, c, "received more bytes than were sent", 0);
        return;
    }
    stream_fill(w, c, c->verified, w->expect_buf, (size_t)n);
    if (memcmp(w->in_buf, w->expect_buf, (size_t)n) != 0) {
        size_t i = 0;
        while (w->in_buf[i] == w->expect_buf[i])
            i++;
        uint64_t pos = c->verified + i;
        char what[128];
        snprintf(what, sizeof what, "verification error in message %llu at byte %llu",
                 (unsigned long long)(pos / w->cfg->size), (unsigned long long)(pos % w->cfg->size));
        conn_fail(w, c, what, 0);
        return;
    }

    uint64_t size = w->cfg->size;
    uint64_t first_done = c->verified / size;
    c->verified += (uint64_t)n;
    c->last_echo_ns = now;
    uint64_t completed = c->verified / size;
    bool measuring = now >= w->measure_start_ns && now < w->measure_end_ns;
    for (uint64_t seq = first_done; measuring && seq < completed; seq++) {
        hist_record(&w->hist, (now - c->send_time_ns[seq % w->cfg->depth]) / 1000);
        w->requests++;
    }
    __atomic_fetch_add(&w->progress, completed - first_done, __ATOMIC_RELAXED);
    if (completed > first_done)
        conn_send(w, c, now);
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (unsigned i = 0; i < w->nconns; i++) {
        w->conns[i].last_echo_ns = now_ns();
        conn_send(w, &w->conns[i], w->conns[i].last_echo_ns);
    }

    struct epoll_event events[512];
    uint64_t now;
    while (w->live > 0 && (now = now_ns()) < w->measure_end_ns) {
        int timeout_ms = (int)((w->measure_end_ns - now + 999999) / 1000000);
        int n = epoll_wait(w->epoll_fd, events, 512, timeout_ms);
        if (n < 0 && errno != EINTR)
            die_errno("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct lg_conn *c = events[i].data.ptr;
            if (!c->failed && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                conn_receive(w, c);
            if (!c->failed && (events[i].events & EPOLLOUT))
                conn_send(w, c, now_ns());
        }
    }
    for (unsigned i = 0; i < w->nconns; i++) {
        struct lg_conn *c = &w->conns[i];
        if (!c->failed && c->sent > c->verified && now_ns() - c->last_echo_ns > STALL_NS)
            w->stalled++;
    }
    __atomic_store_n(&w->finished, true, __ATOMIC_RELEASE);
    return NULL;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    *cfg = (struct config){ .host = "127.0.0.1", .conns = 50, .size = 128, .depth = 1,
                            .secs = 5, .threads = 1 };
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":H:p:c:s:d:t:w:T:jqh", long_opts, NULL)) != -1) {
        switch (c) {
        case 'H': cfg->host = optarg; break;
        case 'p': cfg->port = parse_port("-p", optarg); break;
        case 'c': cfg->conns = (unsigned)parse_long("-c", optarg, 1, 1000000); break;
        case 's': cfg->size = parse_size("-s", optarg, 1, 64 << 20); break;
        case 'd': cfg->depth = (unsigned)parse_long("-d", optarg, 1, 4096); break;
        case 't': cfg->secs = parse_seconds("-t", optarg, 0.01); break;
        case 'w': cfg->warmup = parse_seconds("-w", optarg, 0); break;
        case 'T': cfg->threads = (unsigned)parse_long("-T", optarg, 1, 1024); break;
        case 'j': cfg->json = true; break;
        case 'q': cfg->quiet = true; break;
        case 'h': usage(); exit(0);
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);
    if (!cfg->port)
        usage_error("-p PORT is required");
    if (cfg->threads > cfg->conns)
        cfg->threads = cfg->conns;
}

/* Opens every connection before the clock starts, so connection setup never
 * counts against the measurement. */
static void connect_all(const struct config *cfg, struct worker *workers)
{
    uint64_t retry_deadline = now_ns() + 5000000000ull;
    for (unsigned i = 0; i < cfg->conns; i++) {
        struct worker *w = &workers[i % cfg->threads];
        struct lg_conn *c = &w->conns[w->nconns++];
        c->id = i;
        c->fd = connect_tcp(cfg->host, cfg->port, 5.0, retry_deadline);
        if (c->fd < 0)
            die_errno("connect %s:%d (connection %u)", cfg->host, cfg->port, i);
        set_nodelay(c->fd, true);
        c->send_time_ns = xcalloc(cfg->depth, sizeof *c->send_time_ns);
        c->events = EPOLLIN;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            die_errno("epoll_ctl");
        w->live++;
    }
}

static void show_progress(const struct config *cfg, struct worker *workers, uint64_t start_ns,
                          uint64_t measure_start_ns, uint64_t end_ns)
{
    uint64_t last_total = 0, last_ns = start_ns;
    for (;;) {
        uint64_t now = now_ns();
        unsigned finished = 0;
        for (unsigned t = 0; t < cfg->threads; t++)
            finished += __atomic_load_n(&workers[t].finished, __ATOMIC_ACQUIRE);
        if (now >= end_ns || finished == cfg->threads)
            return;
        /* Short naps so a run whose connections all failed ends promptly. */
        uint64_t wait = end_ns - now < 100000000ull ? end_ns - now : 100000000ull;
        nanosleep(&(struct timespec){ .tv_sec = (time_t)(wait / 1000000000u),
                                      .tv_nsec = (long)(wait % 1000000000u) }, NULL);
        now = now_ns();
        if (now >= end_ns || cfg->quiet || now - last_ns < 1000000000ull)
            continue;
        uint64_t total = 0;
        for (unsigned t = 0; t < cfg->threads; t++)
            total += __atomic_load_n(&workers[t].progress, __ATOMIC_RELAXED);
        fprintf(stderr, "rs-loadgen: %6.1fs %s rps=%.0f\n", (double)(now - start_ns) / 1e9,
                now < measure_start_ns ? "warm-up" : "running",
                (double)(total - last_total) * 1e9 / (double)(now - last_ns));
        last_total = total;
        last_ns = now;
    }
}

int main(int argc, char **argv)
{
    struct config cfg;
    parse_args(argc, argv, &cfg);
    raise_nofile_limit();
    /* A server that disconnects must show up as EPIPE and be counted. */
    signal(SIGPIPE, SIG_IGN);

    struct worker *workers = xcalloc(cfg.threads, sizeof *workers);
    for (unsigned t = 0; t < cfg.threads; t++) {
        workers[t].cfg = &cfg;
        workers[t].conns = xcalloc(cfg.conns / cfg.threads + 1, sizeof *workers[t].conns);
        workers[t].epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (workers[t].epoll_fd < 0)
            die_errno("epoll_create1");
    }
    connect_all(&cfg, workers);

    uint64_t start = now_ns();
    uint64_t measure_start = start + (uint64_t)(cfg.warmup * 1e9);
    uint64_t measure_end = measure_start + (uint64_t)(cfg.secs * 1e9);
    for (unsigned t = 0; t < cfg.threads; t++) {
        workers[t].measure_start_ns = measure_start;
        workers[t].measure_end_ns = measure_end;
        int err = pthread_create(&workers[t].thread, NULL, worker_run, &workers[t]);
        if (err) {
            errno = err;
            die_errno("pthread_create");
        }
    }
    show_progress(&cfg, workers, start, measure_start, measure_end);

    struct histogram *hist = xcalloc(1, sizeof *hist);
    uint64_t requests = 0, errors = 0;
    unsigned stalled = 0;
    for (unsigned t = 0; t < cfg.threads; t++) {
        struct worker *w = &workers[t];
        pthread_join(w->thread, NULL);
        hist_merge(hist, &w->hist);
        requests += w->requests;
        errors += w->errors;
        stalled += w->stalled;
        for (unsigned i = 0; i < w->nconns; i++) {
            if (!w->conns[i].failed)
                close(w->conns[i].fd);
            free(w->conns[i].send_time_ns);
        }
        free(w->conns);
        close(w->epoll_fd);
    }

    /* Not an error: a prefork server legitimately leaves queued connections
     * unserved.  But a lost wakeup or lost bytes look exactly like this. */
    if (stalled)
        fprintf(stderr, "rs-loadgen: warning: %u connections waited over %.0f s for an echo at the end\n",
                stalled, STALL_NS / 1e9);
    uint64_t verified_bytes = requests * cfg.size;
    double rps = (double)requests / cfg.secs;
    double mbps = (double)verified_bytes * 8 / cfg.secs / 1e6;
    const char *fmt = cfg.json
        ? "{\"conns\":%u,\"size\":%llu,\"depth\":%u,\"threads\":%u,\"secs\":%.2f,"
          "\"requests\":%llu,\"rps\":%.1f,\"mbps\":%.2f,\"p50_us\":%llu,\"p90_us\":%llu,"
          "\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,\"errors\":%llu,\"verified_bytes\":%llu}\n"
        : "rs-loadgen: conns=%u size=%llu depth=%u threads=%u secs=%.2f requests=%llu rps=%.1f "
          "mbps=%.2f p50_us=%llu p90_us=%llu p99_us=%llu p999_us=%llu max_us=%llu errors=%llu "
          "verified_bytes=%llu\n";
    printf(fmt, cfg.conns, (unsigned long long)cfg.size, cfg.depth, cfg.threads, cfg.secs,
           (unsigned long long)requests, rps, mbps,
           (unsigned long long)hist_percentile(hist, 50), (unsigned long long)hist_percentile(hist, 90),
           (unsigned long long)hist_percentile(hist, 99), (unsigned long long)hist_percentile(hist, 99.9),
           (unsigned long long)hist->max_us, (unsigned long long)errors,
           (unsigned long long)verified_bytes);
    free(hist);
    free(workers);

    if (errors || requests == 0) {
        if (requests == 0 && !errors)
            fprintf(stderr, "rs-loadgen: no request completed\n");
        return 1;
    }
    return 0;
}
