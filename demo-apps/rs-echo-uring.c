/* rs-echo-uring: native io_uring echo server, the speed limit ringshim is
 * measured against.
 *
 * One ring, one thread.  A multishot accept feeds connections; each
 * connection has one multishot recv drawing from a shared provided-buffer
 * ring (or, if the kernel refuses buffer rings, a plain recv into its own
 * buffer) and at most one send in flight, so echoed bytes keep their order.
 * Received bytes are copied out of the provided buffer at once, which hands
 * the buffer straight back to the kernel: a slow client then holds only its
 * own queue, never the shared buffers.  All SQEs prepared while handling a
 * batch of completions go to the kernel in the next io_uring_submit_and_wait.
 * SIGTERM/SIGINT arrive through a signalfd read on the same ring. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_GROUP 1
#define BUF_COUNT 1024          /* power of two, as buffer rings require */
#define BUF_SIZE (16 * 1024)
#define PLAIN_RECV_SIZE (16 * 1024)
/* A connection whose client stops reading pauses its recv at this backlog. */
#define QUEUE_HIGH_WATER (1024 * 1024)

/* Operation tag in the low bits of user_data; the rest is the connection
 * pointer (calloc alignment leaves those bits zero). */
enum op { OP_ACCEPT, OP_RECV, OP_SEND, OP_CANCEL, OP_SIGNAL };
#define OP_MASK 7u

struct uconn {
    int fd;
    unsigned inflight;      /* requests whose final CQE has not arrived */
    bool recv_armed;
    bool cancel_inflight;
    bool send_inflight;
    bool shut_down;
    bool eof;               /* the client finished sending */
    bool broken;            /* error: close as soon as nothing is in flight */
    struct bytebuf sending; /* bytes of the send in flight: never touched until it completes */
    struct bytebuf queued;  /* bytes received since; sent next, in order */
    char *recv_buf;         /* plain recv mode only */
};

static struct io_uring ring;
static bool sqpoll;
static bool use_buf_ring = true;
static struct io_uring_buf_ring *buf_ring;
static char *buf_memory;
static int listen_fd;
static int signal_fd;
static struct signalfd_siginfo signal_info;
static struct uconn **conn_by_fd;
static size_t max_fds;

static void usage(void)
{
    printf("usage: rs-echo-uring [-p PORT] [-a ADDR] [-q ENTRIES] [-s [-c CPU] [-i IDLE_MS]]\n"
           "Native io_uring echo server (multishot accept and recv, provided buffers).\n"
           "  -p PORT     port to listen on (default 7003)\n"
           "  -a ADDR     address to bind (default 127.0.0.1)\n"
           "  -q ENTRIES  submission queue entries (default 4096)\n"
           "  -s          kernel submission polling thread (IORING_SETUP_SQPOLL)\n"
           "  -c CPU      pin the polling thread to CPU (IORING_SETUP_SQ_AFF; needs -s)\n"
           "  -i IDLE_MS  polling thread idle time before it sleeps (needs -s)\n"
           "  -h          this help\n");
}

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring))) {
        /* Queue full mid-batch: hand what we have to the kernel. */
        io_uring_submit(&ring);
        if (sqpoll)
            io_uring_sqring_wait(&ring);
    }
    return sqe;
}

static void *tag(struct uconn *c, enum op op)
{
    return (void *)((uintptr_t)c | op);
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, tag(NULL, OP_ACCEPT));
}

static void arm_signal_read(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_read(sqe, signal_fd, &signal_info, sizeof signal_info, 0);
    io_uring_sqe_set_data(sqe, tag(NULL, OP_SIGNAL));
}

static void arm_recv(struct uconn *c)
{
    if (!use_buf_ring && !c->recv_buf)
        c->recv_buf = xmalloc(PLAIN_RECV_SIZE);
    struct io_uring_sqe *sqe = get_sqe();
    if (use_buf_ring) {
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
    } else {
        io_uring_prep_recv(sqe, c->fd, c->recv_buf, PLAIN_RECV_SIZE, 0);
    }
    io_uring_sqe_set_data(sqe, tag(c, OP_RECV));
    c->recv_armed = true;
    c->inflight++;
}

static void cancel_recv(struct uconn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_cancel(sqe, tag(c, OP_RECV), 0);
    io_uring_sqe_set_data(sqe, tag(c, OP_CANCEL));
    c->cancel_inflight = true;
    c->inflight++;
}

static void start_send(struct uconn *c)
{
    if (c->send_inflight || c->broken)
        return;
    if (!bytebuf_pending(&c->sending)) {
        struct bytebuf spare = c->sending;
        c->sending = c->queued;
        c->queued = spare;
    }
    if (!bytebuf_pending(&c->sending))
        return;
    struct io_uring_sqe *sqe = get_sqe();
    /* Sends pass MSG_NOSIGNAL, so SIGPIPE is left at its default: a client
     * that vanished turns into -EPIPE here. */
    io_uring_prep_send(sqe, c->fd, bytebuf_head(&c->sending), bytebuf_pending(&c->sending), MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, tag(c, OP_SEND));
    c->send_inflight = true;
    c->inflight++;
}

static void conn_free(struct uconn *c)
{
    conn_by_fd[c->fd] = NULL;
    close(c->fd);
    bytebuf_free(&c->sending);
    bytebuf_free(&c->queued);
    free(c->recv_buf);
    free(c);
}

/* Decides what a connection needs next after any of its completions. */
static void conn_settle(struct uconn *c)
{
    size_t backlog = bytebuf_pending(&c->sending) + bytebuf_pending(&c->queued);
    if (!c->broken && !c->eof && !c->cancel_inflight) {
        if (!c->recv_armed && backlog < QUEUE_HIGH_WATER)
            arm_recv(c);
        else if (c->recv_armed && use_buf_ring && backlog >= QUEUE_HIGH_WATER)
            cancel_recv(c);   /* a multishot recv cannot be paused, only ended */
    }
    start_send(c);
    /* shutdown() wakes a pending recv with EOF, which ends it. */
    if (c->broken && c->recv_armed && !c->shut_down) {
        shutdown(c->fd, SHUT_RDWR);
        c->shut_down = true;
    }
    bool finished = c->broken || (c->eof && !c->send_inflight && backlog == 0);
    if (finished && c->inflight == 0)
        conn_free(c);
}

static void on_accept(const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_accept();
    int fd = cqe->res;
    if (fd < 0) {
        errno = -fd;
        warn_errno("accept");
        /* Out of descriptors: drop one pending connection so the
         * multishot accept does not fail in a loop. */
        if (fd == -EMFILE || fd == -ENFILE)
            fd = accept_connection(listen_fd, 0);
        if (fd < 0)
            return;
    }
    struct uconn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    conn_by_fd[fd] = c;
    conn_settle(c);
}

static void on_recv(struct uconn *c, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->inflight--;
    }
    if (cqe->res > 0) {
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            char *buf = buf_memory + (size_t)bid * BUF_SIZE;
            bytebuf_append(&c->queued, buf, (size_t)cqe->res);
            io_uring_buf_ring_add(buf_ring, buf, BUF_SIZE, (unsigned short)bid,
                                  io_uring_buf_ring_mask(BUF_COUNT), 0);
            io_uring_buf_ring_advance(buf_ring, 1);
        } else {
            bytebuf_append(&c->queued, c->recv_buf, (size_t)cqe->res);
        }
    } else if (cqe->res == 0) {
        c->eof = true;
    } else if (cqe->res == -EINVAL && use_buf_ring) {
        /* Buffer rings registered but multishot recv refused: use plain
         * recv everywhere from now on. */
        use_buf_ring = false;
        errno = EINVAL;
        warn_errno("multishot recv refused, using plain recv");
    } else if (cqe->res != -ENOBUFS && cqe->res != -ECANCELED) {
        /* ENOBUFS: all shared buffers were in use for a moment; the recv
         * is simply re-armed.  ECANCELED: our own backpressure pause. */
        c->broken = true;
    }
    conn_settle(c);
}

static void on_send(struct uconn *c, const struct io_uring_cqe *cqe)
{
    c->send_inflight = false;
    c->inflight--;
    if (cqe->res < 0)
        c->broken = true;   /* EPIPE, ECONNRESET: the client is gone */
    else
        bytebuf_consume(&c->sending, (size_t)cqe->res);
    conn_settle(c);
}

static void setup_ring(unsigned entries, int sq_cpu, int sq_idle_ms)
{
    struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
                                .cq_entries = entries * 4 };
    if (sqpoll) {
        p.flags |= IORING_SETUP_SQPOLL;
        if (sq_cpu >= 0) {
            p.flags |= IORING_SETUP_SQ_AFF;
            p.sq_thread_cpu = (unsigned)sq_cpu;
        }
        if (sq_idle_ms >= 0)
            p.sq_thread_idle = (unsigned)sq_idle_ms;
    } else {
        /* One thread submits and reaps: let the kernel run completion work
         * only when we wait, instead of interrupting us. */
        p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    }
    int ret = io_uring_queue_init_params(entries, &ring, &p);
    if (ret == -EINVAL && !sqpoll) {
        struct io_uring_params plain = { .flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
                                        .cq_entries = entries * 4 };
        ret = io_uring_queue_init_params(entries, &ring, &plain);
    }
    if (ret < 0) {
        errno = -ret;
        die_errno("io_uring_queue_init");
    }
}

/* Registers the provided-buffer ring by hand (liburing 2.3 has no
 * io_uring_setup_buf_ring).  Returns 0 or a negative errno. */
static int setup_buf_ring(void)
{
    size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
    buf_ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf_ring == MAP_FAILED)
        return -errno;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)buf_ring, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP,
    };
    int ret = io_uring_register_buf_ring(&ring, &reg, 0);
    if (ret < 0) {
        munmap(buf_ring, ring_bytes);
        return ret;
    }
    buf_memory = xmalloc((size_t)BUF_COUNT * BUF_SIZE);
    io_uring_buf_ring_init(buf_ring);
    for (unsigned i = 0; i < BUF_COUNT; i++)
        io_uring_buf_ring_add(buf_ring, buf_memory + (size_t)i * BUF_SIZE, BUF_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(BUF_COUNT), (int)i);
    io_uring_buf_ring_advance(buf_ring, BUF_COUNT);
    return 0;
}

static void dispatch(const struct io_uring_cqe *cqe)
{
    uintptr_t data = (uintptr_t)io_uring_cqe_get_data(cqe);
    struct uconn *c = (struct uconn *)(data & ~(uintptr_t)OP_MASK);
    switch ((enum op)(data & OP_MASK)) {
    case OP_ACCEPT: on_accept(cqe); break;
    case OP_RECV: on_recv(c, cqe); break;
    case OP_SEND: on_send(c, cqe); break;
    case OP_CANCEL:
        c->cancel_inflight = false;
        c->inflight--;
        conn_settle(c);
        break;
    case OP_SIGNAL: stop_requested = 1; break;
    }
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 7003;
    unsigned entries = 4096;
    int sq_cpu = -1, sq_idle_ms = -1;
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, ":p:a:q:sc:i:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = parse_port("-p", optarg); break;
        case 'a': addr = optarg; break;
        case 'q': entries = (unsigned)parse_long("-q", optarg, 1, 32768); break;
        case 's': sqpoll = true; break;
        case 'c': sq_cpu = (int)parse_long("-c", optarg, 0, 4095); break;
        case 'i': sq_idle_ms = (int)parse_long("-i", optarg, 0, 3600000); break;
        case 'h': usage(); return 0;
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);
    if (!sqpoll && (sq_cpu >= 0 || sq_idle_ms >= 0))
        usage_error("-c and -i only apply to the polling thread of -s");

    raise_nofile_limit();
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    max_fds = lim.rlim_cur;
    conn_by_fd = xcalloc(max_fds, sizeof *conn_by_fd);

    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_set, NULL);
    signal_fd = signalfd(-1, &stop_set, SFD_CLOEXEC);
    if (signal_fd < 0)
        die_errno("signalfd");

    listen_fd = listen_tcp(addr, port, true);
    setup_ring(entries, sq_cpu, sq_idle_ms);
    int buf_ring_error = setup_buf_ring();
    use_buf_ring = buf_ring_error == 0;
    arm_accept();
    arm_signal_read();
    announce_listening(listen_fd);
    if (!use_buf_ring) {
        errno = -buf_ring_error;
        warn_errno("provided buffer ring refused, using plain recv");
    }

    while (!stop_requested) {
        int ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            errno = -ret;
            die_errno("io_uring_submit_and_wait");
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            dispatch(cqe);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }

    /* Tearing the ring down cancels every request, so no completion can
     * refer to a connection once it is freed. */
    io_uring_queue_exit(&ring);
    for (size_t fd = 0; fd < max_fds; fd++)
        if (conn_by_fd[fd])
            conn_free(conn_by_fd[fd]);
    free(conn_by_fd);
    if (buf_memory) {
        free(buf_memory);
        munmap(buf_ring, BUF_COUNT * sizeof(struct io_uring_buf));
    }
    close(signal_fd);
    close(listen_fd);
    return 0;
}
