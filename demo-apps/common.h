/* Helpers shared by the demo programs: option parsing, sockets, signals,
 * clocks and a growable byte buffer.  Plain libc only: these programs are
 * the unmodified workloads ringshim is tested against. */
#ifndef DEMO_COMMON_H
#define DEMO_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LISTEN_BACKLOG 4096

/* ---- command line ------------------------------------------------------ */

/* Prints "PROG: <message> (see --help)" to stderr and exits 2. */
void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Reports a getopt '?' or ':' result (the option string must start with ':')
 * through usage_error(). */
void getopt_failure(int getopt_result, char *const argv[]) __attribute__((noreturn));

/* Rejects positional arguments left after getopt. */
void no_positional_args(int argc, char *const argv[]);

long parse_long(const char *opt, const char *text, long min, long max);
int parse_port(const char *opt, const char *text);
double parse_seconds(const char *opt, const char *text, double min);
/* Accepts an optional K/M/G (binary) suffix. */
uint64_t parse_size(const char *opt, const char *text, uint64_t min, uint64_t max);

/* ---- processes and signals --------------------------------------------- */

/* Prints "PROG: <message>" to stderr and exits 1. */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Same, with ": strerror(errno)" appended. */
void die_errno(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Prints "PROG: <message>: strerror(errno)" and returns. */
void warn_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that cannot fail: running out of memory ends the program. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);

/* Many connections need many descriptors; the hard limit is usually far
 * above the default soft limit of 1024. */
void raise_nofile_limit(void);

extern volatile sig_atomic_t stop_requested;

/* Installs a SIGTERM/SIGINT handler that sets stop_requested (without
 * SA_RESTART, so blocking calls return EINTR) and blocks both signals.
 * *wait_mask receives the previous mask with them unblocked: pass it to
 * epoll_pwait/ppoll/sigsuspend so a stop signal can only arrive while the
 * program waits and is never lost between checking the flag and waiting. */
void block_stop_signals(sigset_t *wait_mask);

/* ---- sockets ----------------------------------------------------------- */

/* Binds and listens (SO_REUSEADDR, LISTEN_BACKLOG) on ADDR:PORT.  ADDR must
 * be a numeric IPv4 or IPv6 address (else exit 2, like any bad option); a
 * failing bind or listen exits 1 with one line. */
int listen_tcp(const char *addr, int port, bool nonblocking);

/* Prints the single "listening on ADDR:PORT" readiness line to stderr. */
void announce_listening(int listen_fd);

/* accept4() that survives descriptor exhaustion: on EMFILE/ENFILE it closes
 * a reserved descriptor, accepts and drops the pending connection (so a
 * level-triggered listener does not spin) and reports it.  Returns -1 with
 * errno EAGAIN when nothing is pending, or another errno on real errors;
 * ECONNABORTED and EINTR are retried. */
int accept_connection(int listen_fd, int flags);

/* Connects to HOST:PORT, waiting at most timeout_s per attempt and retrying
 * ECONNREFUSED until retry_deadline_ns (a now_ns() value) so a client can be
 * started right after its server.  Returns a nonblocking connected socket,
 * or -1 with errno set (host lookup failures set EHOSTUNREACH). */
int connect_tcp(const char *host, int port, double timeout_s, uint64_t retry_deadline_ns);

void set_nodelay(int fd, bool on);
void set_nonblocking(int fd, bool on);

/* Blocking-socket helper: loops over short writes and EINTR. */
bool write_all(int fd, const void *data, size_t len);

/* ---- time -------------------------------------------------------------- */

uint64_t now_ns(void);

/* ---- byte buffer ------------------------------------------------------- */

/* Bytes [off, len) are pending; consuming only moves off, so a partial write
 * never costs a memmove. */
struct bytebuf {
    char *data;
    size_t off, len, cap;
};

void bytebuf_append(struct bytebuf *b, const void *data, size_t n);
static inline size_t bytebuf_pending(const struct bytebuf *b) { return b->len - b->off; }
static inline const char *bytebuf_head(const struct bytebuf *b) { return b->data + b->off; }
/* Marks n pending bytes as done; an emptied buffer starts over at offset 0. */
void bytebuf_consume(struct bytebuf *b, size_t n);
void bytebuf_free(struct bytebuf *b);

#endif
