/* Per-fd state, indexed by fd number (socket_wrapper style). Every call that
 * creates an fd resets the entry for the number it returns, so a reused
 * number never inherits the state of the fd that had it before. */
#ifndef RS_FDTABLE_H
#define RS_FDTABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common.h"

enum rs_kind {
	RS_KIND_UNKNOWN = 0, /* not classified yet */
	RS_KIND_TCP,
	RS_KIND_UDP,
	RS_KIND_UNIX_STREAM,
	RS_KIND_UNIX_DGRAM,
	RS_KIND_UNIX_SEQPACKET,
	RS_KIND_SOCK_OTHER, /* raw, netlink, packet...: never served */
	RS_KIND_PIPE,	    /* pipes and FIFOs */
	RS_KIND_FILE,	    /* regular files */
	RS_KIND_DIR,
	RS_KIND_EPOLL,
	RS_KIND_OTHER, /* ttys, device files, eventfd, timerfd, signalfd, inotify... */
};

enum {
	RS_FD_NONBLOCK = 1u << 0,  /* O_NONBLOCK as last set through us */
	RS_FD_TRACKED = 1u << 1,   /* we saw it created: flags are ours */
	RS_FD_SHARED = 1u << 2,	   /* description may be changed elsewhere */
	RS_FD_CLOEXEC = 1u << 3,
	RS_FD_LISTENING = 1u << 4,
	RS_FD_TIMEO = 1u << 5,	   /* SO_RCVTIMEO or SO_SNDTIMEO set */
	RS_FD_STREAM_CONNECTED = 1u << 6,
	RS_FD_DUPED = 1u << 7,	   /* another number in this process shares it */
	RS_FD_LINGER = 1u << 8,	   /* SO_LINGER on (timeout in linger_s) */
	RS_FD_RCVLOWAT = 1u << 9,  /* SO_RCVLOWAT above 1 */
	/* Another process may hold the description (fork, inherited,
	 * SCM_RIGHTS): it can change the socket's state (shutdown) where
	 * the shim does not see it. */
	RS_FD_OTHER_PROC = 1u << 10,
	RS_FD_SHUT_RD = 1u << 11,  /* shutdown(SHUT_RD) was called on it */
};

struct rs_fd {
	uint32_t state; /* kind in bits 0-7, flags from bit 8; atomic access */
	uint32_t gen;	/* bumped whenever the number gets a new open file */
	uint64_t rcvtimeo_us;
	uint64_t sndtimeo_us;
	int linger_s;
	void *batch; /* batch-mode state, owned by the batch layer */
};

/* The other fields of an entry: a number closed on one thread is reused by
 * another's open or accept, with the kernel's fd table as the only order
 * between them, which the compiler (and TSan) cannot see; so every access is
 * atomic, relaxed (plain moves on x86). */
#define RS_FD_LOAD(e, field) __atomic_load_n(&(e)->field, __ATOMIC_RELAXED)
#define RS_FD_STORE(e, field, v) __atomic_store_n(&(e)->field, (v), __ATOMIC_RELAXED)

#define RS_FD_KIND(st) ((enum rs_kind)((st) & 0xff))
#define RS_FD_FLAGS(st) ((st) >> 8)

void rs_fdtable_init(void);
/* Entry for `fd`, allocating its chunk; NULL if fd is out of range. */
struct rs_fd *rs_fd_entry(int fd);
/* Entry only if its chunk exists already. */
struct rs_fd *rs_fd_peek(int fd);

/* A new open file got number `fd`. */
void rs_fd_created(int fd, enum rs_kind kind, unsigned flags);
/* `fd` was closed (or is about to be reused). */
void rs_fd_closed(int fd);
/* `newfd` is a duplicate of `oldfd` (dup, dup2, F_DUPFD...). */
void rs_fd_duped(int oldfd, int newfd, bool cloexec);
void rs_fd_set_flags(int fd, unsigned set, unsigned clear);
/* Kind and flags of `fd`, classifying it first if we never saw it. */
uint32_t rs_fd_state(int fd);
/* Mark every known fd as shared (after fork both processes hold them). */
void rs_fd_mark_all_shared(void);
/* close_range(): forget, or mark close-on-exec, every fd in [first, last]. */
void rs_fd_closed_range(unsigned first, unsigned last);
void rs_fd_cloexec_range(unsigned first, unsigned last);
/* Call fn for every fd in [first, last] that has batch state. */
void rs_fd_for_each_batched(unsigned first, unsigned last, void (*fn)(int fd));
/* Set by batch mode: state found on a number that was closed where the
 * shim could not see it (the number now holds another file). */
extern void (*rs_fd_stale_batch_hook)(int fd, uint32_t old_state, void *batch);
/* What the fstat() the program made tells us, for free. */
void rs_fd_note_stat(int fd, const struct stat *sb);
/* SCM_RIGHTS: received fds are new numbers made without us; sent ones are
 * now open in another process too. */
struct msghdr;
void rs_fd_note_received(const struct msghdr *msg);
void rs_fd_note_sent(const struct msghdr *msg);

static inline bool rs_kind_is_socket(enum rs_kind k)
{
	return k >= RS_KIND_TCP && k <= RS_KIND_SOCK_OTHER;
}

static inline bool rs_kind_is_stream(enum rs_kind k)
{
	return k == RS_KIND_TCP || k == RS_KIND_UNIX_STREAM;
}

/* Exposed for tests and the classifier. */
enum rs_kind rs_kind_from_socket(int domain, int type);
const char *rs_kind_name(enum rs_kind k);

#endif
