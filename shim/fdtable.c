#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <linux/magic.h>
#include <unistd.h>

#include "fdtable.h"
#include "real.h"
#include "stats.h"

/* Two levels so that a process with RLIMIT_NOFILE of a million pays only for
 * the chunks it touches. */
#define CHUNK_SHIFT 12
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define MAX_CHUNKS 512 /* 2M fds */

static struct rs_fd *chunks[MAX_CHUNKS];

void rs_fdtable_init(void)
{
}

struct rs_fd *rs_fd_peek(int fd)
{
	if (unlikely(fd < 0 || (unsigned)fd >= CHUNK_SIZE * MAX_CHUNKS))
		return NULL;
	struct rs_fd *c = __atomic_load_n(&chunks[fd >> CHUNK_SHIFT], __ATOMIC_ACQUIRE);
	return c ? &c[fd & (CHUNK_SIZE - 1)] : NULL;
}

struct rs_fd *rs_fd_entry(int fd)
{
	struct rs_fd *e = rs_fd_peek(fd);
	if (likely(e) || fd < 0 || (unsigned)fd >= CHUNK_SIZE * MAX_CHUNKS)
		return e;
	void *p = mmap(NULL, CHUNK_SIZE * sizeof(struct rs_fd), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct rs_fd *expected = NULL;
	if (!__atomic_compare_exchange_n(&chunks[fd >> CHUNK_SHIFT], &expected, p, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		munmap(p, CHUNK_SIZE * sizeof(struct rs_fd));
	return rs_fd_peek(fd);
}

enum rs_kind rs_kind_from_socket(int domain, int type)
{
	type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (domain == AF_INET || domain == AF_INET6) {
		if (type == SOCK_STREAM)
			return RS_KIND_TCP;
		if (type == SOCK_DGRAM)
			return RS_KIND_UDP;
	} else if (domain == AF_UNIX) {
		if (type == SOCK_STREAM)
			return RS_KIND_UNIX_STREAM;
		if (type == SOCK_DGRAM)
			return RS_KIND_UNIX_DGRAM;
		if (type == SOCK_SEQPACKET)
			return RS_KIND_UNIX_SEQPACKET;
	}
	return RS_KIND_SOCK_OTHER;
}

const char *rs_kind_name(enum rs_kind k)
{
	static const char *const names[] = {
		"unknown", "tcp",  "udp",  "unix-stream", "unix-dgram", "unix-seqpacket",
		"socket",  "pipe", "file", "dir",	  "epoll",	"other",
	};
	return (unsigned)k < RS_ARRAY_SIZE(names) ? names[k] : "?";
}

static void store_state(struct rs_fd *e, enum rs_kind kind, unsigned flags)
{
	__atomic_store_n(&e->state, (uint32_t)kind | (flags << 8), __ATOMIC_RELEASE);
}

void (*rs_fd_stale_batch_hook)(int fd, uint32_t old_state, void *batch);

void rs_fd_created(int fd, enum rs_kind kind, unsigned flags)
{
	struct rs_fd *e = rs_fd_entry(fd);
	if (!e)
		return;
	void *stale = __atomic_exchange_n(&e->batch, NULL, __ATOMIC_ACQ_REL);
	if (stale && rs_fd_stale_batch_hook)
		rs_fd_stale_batch_hook(fd, __atomic_load_n(&e->state, __ATOMIC_ACQUIRE), stale);
	__atomic_add_fetch(&e->gen, 1, __ATOMIC_RELAXED);
	RS_FD_STORE(e, rcvtimeo_us, 0);
	RS_FD_STORE(e, sndtimeo_us, 0);
	store_state(e, kind, flags | RS_FD_TRACKED);
}

void rs_fd_closed(int fd)
{
	struct rs_fd *e = rs_fd_peek(fd);
	if (!e)
		return;
	__atomic_add_fetch(&e->gen, 1, __ATOMIC_RELAXED);
	store_state(e, RS_KIND_UNKNOWN, 0);
}

void rs_fd_duped(int oldfd, int newfd, bool cloexec)
{
	struct rs_fd *o = rs_fd_peek(oldfd);
	uint32_t st = o ? __atomic_load_n(&o->state, __ATOMIC_ACQUIRE) : 0;
	unsigned flags = RS_FD_FLAGS(st) & ~RS_FD_CLOEXEC;
	/* Two numbers now share one description: a fcntl(F_SETFL) through
	 * either changes both, so neither may trust its cached flags. */
	flags |= RS_FD_SHARED | RS_FD_DUPED;
	if (cloexec)
		flags |= RS_FD_CLOEXEC;
	if (o && RS_FD_KIND(st) != RS_KIND_UNKNOWN)
		rs_fd_set_flags(oldfd, RS_FD_SHARED | RS_FD_DUPED, 0);
	rs_fd_created(newfd, o ? RS_FD_KIND(st) : RS_KIND_UNKNOWN,
		      (o && (RS_FD_FLAGS(st) & RS_FD_TRACKED)) ? flags : 0);
	struct rs_fd *n = rs_fd_peek(newfd);
	if (o && n) {
		RS_FD_STORE(n, rcvtimeo_us, RS_FD_LOAD(o, rcvtimeo_us));
		RS_FD_STORE(n, sndtimeo_us, RS_FD_LOAD(o, sndtimeo_us));
		RS_FD_STORE(n, linger_s, RS_FD_LOAD(o, linger_s));
	}
	if (!o || !(RS_FD_FLAGS(st) & RS_FD_TRACKED))
		rs_fd_closed(newfd); /* classify on first use, as inherited */
}

void rs_fd_set_flags(int fd, unsigned set, unsigned clear)
{
	struct rs_fd *e = rs_fd_peek(fd);
	if (!e)
		return;
	uint32_t old = __atomic_load_n(&e->state, __ATOMIC_RELAXED), nw;
	do {
		if (RS_FD_KIND(old) == RS_KIND_UNKNOWN && !(RS_FD_FLAGS(old) & RS_FD_TRACKED))
			return; /* classification will read the truth */
		nw = (old & 0xff) | (((RS_FD_FLAGS(old) | set) & ~clear) << 8);
	} while (!__atomic_compare_exchange_n(&e->state, &old, nw, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
}

/* Regular files on pseudo filesystems (/proc, /sys, cgroup...) answer
 * differently depending on which task reads them, and io_uring may read them
 * from a worker thread: they stay with libc. The answer is cached per device
 * so it costs one fstatfs per filesystem, not per file. */
#define DEV_CACHE 16
static struct {
	dev_t dev;
	int ok; /* 0: unknown slot, 1: served, 2: not served */
} dev_cache[DEV_CACHE];
static unsigned dev_cache_next;

static bool pseudo_fs(long type)
{
	switch (type) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case BPF_FS_MAGIC:
	case PSTOREFS_MAGIC:
	case EFIVARFS_MAGIC:
	case SELINUX_MAGIC:
	case SMACK_MAGIC:
	case BINFMTFS_MAGIC:
	case 0x62656570: /* configfs */
	case 0x65735543: /* fusectl */
		return true;
	default:
		return false;
	}
}

/* 1 served, 2 not served, 0 unknown (when fd < 0 and not cached). */
static int file_dev_served(int fd, dev_t dev)
{
	for (unsigned i = 0; i < DEV_CACHE; i++)
		if (__atomic_load_n(&dev_cache[i].ok, __ATOMIC_ACQUIRE) && dev_cache[i].dev == dev)
			return dev_cache[i].ok;
	if (fd < 0)
		return 0;
	struct statfs sfs;
	if (fstatfs(fd, &sfs) != 0)
		return 2;
	int ok = pseudo_fs((long)sfs.f_type) ? 2 : 1;
	unsigned slot = __atomic_fetch_add(&dev_cache_next, 1, __ATOMIC_RELAXED) % DEV_CACHE;
	__atomic_store_n(&dev_cache[slot].ok, 0, __ATOMIC_RELEASE);
	dev_cache[slot].dev = dev;
	__atomic_store_n(&dev_cache[slot].ok, ok, __ATOMIC_RELEASE);
	return ok;
}

static enum rs_kind kind_from_mode(int fd, const struct stat *sb)
{
	if (S_ISFIFO(sb->st_mode))
		return RS_KIND_PIPE;
	if (S_ISDIR(sb->st_mode))
		return RS_KIND_DIR;
	if (S_ISREG(sb->st_mode)) {
		int served = file_dev_served(fd, sb->st_dev);
		if (!served)
			return RS_KIND_UNKNOWN;
		return served == 1 ? RS_KIND_FILE : RS_KIND_OTHER;
	}
	return RS_KIND_OTHER;
}

static uint64_t timeo_us(int fd, int opt)
{
	struct timeval tv = { 0, 0 };
	socklen_t len = sizeof(tv);
	if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0)
		return 0;
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* First use of an fd we did not see created (inherited, or made inside libc
 * where we cannot see it): ask the kernel what it is. */
static uint32_t classify(int fd, struct rs_fd *e, uint32_t st)
{
	int saved = errno;
	struct stat sb;
	enum rs_kind kind = RS_KIND_OTHER;
	bool tracked = RS_FD_FLAGS(st) & RS_FD_TRACKED;
	unsigned flags = tracked ? RS_FD_FLAGS(st) : RS_FD_SHARED | RS_FD_OTHER_PROC;

	if (RS_REAL(fstat64)(fd, &sb) != 0) {
		errno = saved;
		return 0; /* EBADF or worse: let the real call report it */
	}
	rs_count(RS_C_fd_classified);
	if (S_ISSOCK(sb.st_mode)) {
		int domain = 0, type = 0, listening = 0;
		socklen_t len = sizeof(int);
		getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
		len = sizeof(int);
		getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
		kind = rs_kind_from_socket(domain, type);
		if (!tracked && kind != RS_KIND_SOCK_OTHER) {
			len = sizeof(int);
			if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
			    listening)
				flags |= RS_FD_LISTENING;
			RS_FD_STORE(e, rcvtimeo_us, timeo_us(fd, SO_RCVTIMEO));
			RS_FD_STORE(e, sndtimeo_us, timeo_us(fd, SO_SNDTIMEO));
			if (RS_FD_LOAD(e, rcvtimeo_us) || RS_FD_LOAD(e, sndtimeo_us))
				flags |= RS_FD_TIMEO;
		}
	} else {
		kind = kind_from_mode(fd, &sb);
	}
	if (!tracked) {
		int fl = RS_REAL(fcntl64)(fd, F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK))
			flags |= RS_FD_NONBLOCK;
		int fdfl = RS_REAL(fcntl64)(fd, F_GETFD);
		if (fdfl >= 0 && (fdfl & FD_CLOEXEC))
			flags |= RS_FD_CLOEXEC;
	}
	flags |= RS_FD_TRACKED;
	uint32_t nst = (uint32_t)kind | (flags << 8);
	/* Lose quietly to a concurrent creator of the same number. */
	__atomic_compare_exchange_n(&e->state, &st, nst, false, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
	errno = saved;
	return __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
}

uint32_t rs_fd_state(int fd)
{
	struct rs_fd *e = rs_fd_entry(fd);
	if (unlikely(!e))
		return 0;
	uint32_t st = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
	if (unlikely(RS_FD_KIND(st) == RS_KIND_UNKNOWN))
		st = classify(fd, e, st);
	return st;
}

void rs_fd_mark_all_shared(void)
{
	for (unsigned c = 0; c < MAX_CHUNKS; c++) {
		struct rs_fd *chunk = chunks[c];
		if (!chunk)
			continue;
		for (unsigned i = 0; i < CHUNK_SIZE; i++) {
			uint32_t st = chunk[i].state;
			if (RS_FD_KIND(st) != RS_KIND_UNKNOWN ||
			    (RS_FD_FLAGS(st) & RS_FD_TRACKED))
				chunk[i].state = st | ((RS_FD_SHARED | RS_FD_OTHER_PROC) << 8);
		}
	}
}

void rs_fd_note_stat(int fd, const struct stat *sb)
{
	struct rs_fd *e = rs_fd_peek(fd);
	if (!e || S_ISSOCK(sb->st_mode))
		return;
	uint32_t st = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
	/* Only fds whose flags we know (made through us) can skip the rest of
	 * classification. */
	if (RS_FD_KIND(st) != RS_KIND_UNKNOWN || !(RS_FD_FLAGS(st) & RS_FD_TRACKED))
		return;
	enum rs_kind k = kind_from_mode(-1, sb);
	if (k == RS_KIND_UNKNOWN)
		return;
	__atomic_compare_exchange_n(&e->state, &st, (st & ~0xffu) | (uint32_t)k, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static void for_range(unsigned first, unsigned last, void (*fn)(struct rs_fd *))
{
	for (unsigned c = first >> CHUNK_SHIFT; c < MAX_CHUNKS && c <= (last >> CHUNK_SHIFT); c++) {
		struct rs_fd *chunk = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
		if (!chunk)
			continue;
		unsigned lo = c == (first >> CHUNK_SHIFT) ? (first & (CHUNK_SIZE - 1)) : 0;
		unsigned hi = c == (last >> CHUNK_SHIFT) ? (last & (CHUNK_SIZE - 1)) : CHUNK_SIZE - 1;
		for (unsigned i = lo; i <= hi; i++)
			fn(&chunk[i]);
	}
}

static void forget(struct rs_fd *e)
{
	if (!e->state)
		return;
	__atomic_add_fetch(&e->gen, 1, __ATOMIC_RELAXED);
	store_state(e, RS_KIND_UNKNOWN, 0);
}

static void set_cloexec(struct rs_fd *e)
{
	if (e->state)
		__atomic_fetch_or(&e->state, (uint32_t)RS_FD_CLOEXEC << 8, __ATOMIC_RELAXED);
}

void rs_fd_for_each_batched(unsigned first, unsigned last, void (*fn)(int fd))
{
	for (unsigned c = first >> CHUNK_SHIFT; c < MAX_CHUNKS && c <= (last >> CHUNK_SHIFT); c++) {
		struct rs_fd *chunk = __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE);
		if (!chunk)
			continue;
		unsigned lo = c == (first >> CHUNK_SHIFT) ? (first & (CHUNK_SIZE - 1)) : 0;
		unsigned hi = c == (last >> CHUNK_SHIFT) ? (last & (CHUNK_SIZE - 1)) : CHUNK_SIZE - 1;
		for (unsigned i = lo; i <= hi; i++)
			if (__atomic_load_n(&chunk[i].batch, __ATOMIC_ACQUIRE))
				fn((int)((c << CHUNK_SHIFT) + i));
	}
}

void rs_fd_closed_range(unsigned first, unsigned last)
{
	for_range(first, last, forget);
}

void rs_fd_cloexec_range(unsigned first, unsigned last)
{
	for_range(first, last, set_cloexec);
}

static void for_each_rights_fd(const struct msghdr *msg, void (*fn)(int))
{
	if (!msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr))
		return;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm;
	     cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const int *fds = (const int *)CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++)
			fn(fds[i]);
	}
}

static void mark_shared(int fd)
{
	rs_fd_set_flags(fd, RS_FD_SHARED | RS_FD_OTHER_PROC, 0);
}

void rs_fd_note_received(const struct msghdr *msg)
{
	/* Back to "never seen": classified on first use, as shared. */
	for_each_rights_fd(msg, rs_fd_closed);
}

void rs_fd_note_sent(const struct msghdr *msg)
{
	for_each_rights_fd(msg, mark_shared);
}
