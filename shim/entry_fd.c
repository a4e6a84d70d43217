/* Calls that make, duplicate, change or close fds. They pass through to
 * libc; the shim only keeps its fd table true and keeps its own fds (ring,
 * log) out of the program's way. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "batch.h"
#include "entry.h"
#include "internal_fds.h"
#include "io_strict.h"
#include "real.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static unsigned open_flags(int flags)
{
	return ((flags & O_NONBLOCK) ? RS_FD_NONBLOCK : 0) |
	       ((flags & O_CLOEXEC) ? RS_FD_CLOEXEC : 0);
}

static int track_open(int fd, int flags)
{
	/* The kind is found on first use (or from the program's own fstat). */
	if (fd >= 0 && rs_ready())
		rs_fd_created(fd, RS_KIND_UNKNOWN, open_flags(flags));
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

RS_EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return track_open(RS_FDGATE_SLOW(RS_REAL(open64)(path, flags, mode)), flags);
}

RS_EXPORT int open64(const char *path, int flags, ...) RS_ALIAS(open);

RS_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return track_open(RS_FDGATE_SLOW(RS_REAL(openat64)(dirfd, path, flags, mode)), flags);
}

RS_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
	RS_ALIAS(openat);

RS_EXPORT int __open_2(const char *path, int flags)
{
	return track_open(RS_FDGATE_SLOW(RS_REAL(__open64_2)(path, flags)), flags);
}

RS_EXPORT int __open64_2(const char *path, int flags) RS_ALIAS(__open_2);

RS_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return track_open(RS_FDGATE_SLOW(RS_REAL(__openat64_2)(dirfd, path, flags)), flags);
}

RS_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
	RS_ALIAS(__openat_2);

RS_EXPORT int creat(const char *path, mode_t mode)
{
	int flags = O_CREAT | O_WRONLY | O_TRUNC;
	return track_open(RS_FDGATE_SLOW(RS_REAL(open64)(path, flags, mode)), flags);
}

RS_EXPORT int creat64(const char *path, mode_t mode) RS_ALIAS(creat);

RS_EXPORT int pipe2(int fds[2], int flags)
{
	int r = RS_FDGATE(RS_REAL(pipe2)(fds, flags));
	if (r == 0 && rs_ready()) {
		rs_fd_created(fds[0], RS_KIND_PIPE, open_flags(flags));
		rs_fd_created(fds[1], RS_KIND_PIPE, open_flags(flags));
	}
	return r;
}

RS_EXPORT int pipe(int fds[2])
{
	return pipe2(fds, 0);
}

void rs_track_accepted(int listen_fd, int newfd, int flags)
{
	if (!rs_ready())
		return;
	struct rs_fd *l = rs_fd_peek(listen_fd);
	enum rs_kind k = l ? RS_FD_KIND(__atomic_load_n(&l->state, __ATOMIC_ACQUIRE))
			   : RS_KIND_UNKNOWN;
	if (k == RS_KIND_UNKNOWN || k == RS_KIND_SOCK_OTHER) {
		rs_fd_closed(newfd); /* classify on first use */
		return;
	}
	unsigned f = open_flags(flags & SOCK_NONBLOCK ? O_NONBLOCK : 0) |
		     (flags & SOCK_CLOEXEC ? RS_FD_CLOEXEC : 0);
	if (rs_kind_is_stream(k))
		f |= RS_FD_STREAM_CONNECTED;
	rs_fd_created(newfd, k, f);
}

/* close() of a number the shim uses itself fails as if it were not open:
 * the program never opened it. */
RS_EXPORT int close(int fd)
{
	if (!rs_ready())
		return RS_REAL(close)(fd);
	if (unlikely(rs_internal_fd_is(fd))) {
		errno = EBADF;
		return -1;
	}
	rs_strict_fds_closing(fd, fd);
	struct rs_fd *e = rs_fd_peek(fd);
	uint32_t st = e ? __atomic_load_n(&e->state, __ATOMIC_ACQUIRE) : 0;
	struct rs_call c;
	/* An fd we never classified is not worth classifying just to close. */
	if (RS_FD_KIND(st) != RS_KIND_UNKNOWN) {
		rs_begin(&c, RS_C_call_close, fd, RS_OPK_RW);
	} else {
		rs_count(RS_C_call_close);
		rs_count(RS_C_pt_fd_kind);
		c.ring = NULL;
	}
	/* Settle and forget first: once the number is free another thread may
	 * get it, and its new entry must not be wiped by us. */
	if (rs_cfg.mode == RS_MODE_BATCH) {
		rs_batch_before_close(fd);
		rs_batch_number_closing(fd);
	}
	rs_fd_closed(fd);
	if (!c.ring)
		return RS_REAL(close)(fd);
	return (int)rs_end(&c, c.io->close(&c));
}

RS_EXPORT int __close(int fd) RS_ALIAS(close);
RS_EXPORT int __close_nocancel(int fd) RS_ALIAS(close);

RS_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	if (!rs_ready() || first > last)
		return RS_REAL(close_range)(first, last, flags);
	int saved = errno;
	if (flags & CLOSE_RANGE_CLOEXEC) {
		int r = RS_REAL(close_range)(first, last, flags);
		if (r == 0)
			rs_fd_cloexec_range(first, last);
		return r;
	}
	rs_strict_fds_closing((int)(first > INT_MAX ? INT_MAX : first),
			      (int)(last > INT_MAX ? INT_MAX : last));
	if (rs_cfg.mode == RS_MODE_BATCH) {
		rs_batch_push_all(false);
		rs_fd_for_each_batched(first, last, rs_batch_number_closing);
	}
	/* Close around our own fds. */
	unsigned cur = first;
	int r = 0;
	for (;;) {
		int ours = rs_internal_fd_next((int)(cur > INT_MAX ? INT_MAX : cur));
		if (ours < 0 || (unsigned)ours > last) {
			r = RS_REAL(close_range)(cur, last, flags);
			break;
		}
		if ((unsigned)ours > cur)
			r = RS_REAL(close_range)(cur, (unsigned)ours - 1, flags);
		if (r != 0 || (unsigned)ours == last)
			break;
		cur = (unsigned)ours + 1;
	}
	if (r == 0) {
		rs_fd_closed_range(first, last);
		errno = saved;
	}
	return r;
}

RS_EXPORT void closefrom(int lowfd)
{
	if (lowfd < 0)
		lowfd = 0;
	if (close_range((unsigned)lowfd, ~0U, 0) == 0)
		return;
	struct rlimit rl;
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX ? (int)rl.rlim_cur
									     : 65536;
	for (int fd = lowfd; fd < max; fd++)
		close(fd);
}

static void duped(int oldfd, int newfd, bool cloexec)
{
	rs_fd_duped(oldfd, newfd, cloexec);
	if (rs_cfg.mode == RS_MODE_BATCH)
		rs_batch_duped(oldfd, newfd);
}

/* dup2/dup3 close newfd first when it is open. */
static void before_dup_onto(int oldfd, int newfd)
{
	if (oldfd == newfd)
		return;
	/* A dup onto newfd that fails leaves newfd open and untouched: the
	 * kernel checks oldfd before it closes anything. Seeing newfd as
	 * closed here would drop its state (its fdb, and with it its epoll
	 * registrations: fuzz seed 809221175, dup3 of an unopened fd onto a
	 * registered socket lost its EPOLLOUT). So an oldfd that is not open
	 * closes nothing. (Another thread closing oldfd between this check
	 * and the dup is a race natively too.) */
	int saved = errno;
	bool open = RS_REAL(fcntl64)(oldfd, F_GETFD) >= 0;
	errno = saved;
	if (!open)
		return;
	rs_strict_fds_closing(newfd, newfd);
	rs_internal_fd_evict(newfd);
	if (rs_cfg.mode == RS_MODE_BATCH) {
		rs_batch_before_close(newfd);
		rs_batch_number_closing(newfd);
	}
}

RS_EXPORT int dup(int oldfd)
{
	int r = RS_FDGATE(RS_REAL(dup)(oldfd));
	if (r >= 0 && rs_ready())
		duped(oldfd, r, false);
	return r;
}

RS_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	/* (Bad flags fail with EINVAL before newfd is closed, too.) */
	if (rs_ready() && !(flags & ~O_CLOEXEC))
		before_dup_onto(oldfd, newfd);
	int r = RS_REAL(dup3)(oldfd, newfd, flags);
	if (r >= 0 && rs_ready())
		duped(oldfd, r, flags & O_CLOEXEC);
	return r;
}

RS_EXPORT int dup2(int oldfd, int newfd)
{
	if (rs_ready())
		before_dup_onto(oldfd, newfd);
	int r = RS_REAL(dup2)(oldfd, newfd);
	if (r >= 0 && oldfd != newfd && rs_ready())
		duped(oldfd, r, false);
	return r;
}

RS_EXPORT int __dup2(int oldfd, int newfd) RS_ALIAS(dup2);

RS_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int iarg = (int)(intptr_t)arg;
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && rs_ready())
		rs_internal_fds_clear_from(iarg);
	int r = cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC ? RS_FDGATE(RS_REAL(fcntl64)(fd, cmd, arg))
							 : RS_REAL(fcntl64)(fd, cmd, arg);
	if (r < 0 || !rs_ready())
		return r;
	switch (cmd) {
	case F_DUPFD:
		duped(fd, r, false);
		break;
	case F_DUPFD_CLOEXEC:
		duped(fd, r, true);
		break;
	case F_SETFL:
		rs_fd_set_flags(fd, (iarg & O_NONBLOCK) ? RS_FD_NONBLOCK : 0,
				(iarg & O_NONBLOCK) ? 0 : RS_FD_NONBLOCK);
		break;
	case F_SETFD:
		rs_fd_set_flags(fd, (iarg & FD_CLOEXEC) ? RS_FD_CLOEXEC : 0,
				(iarg & FD_CLOEXEC) ? 0 : RS_FD_CLOEXEC);
		break;
	default:
		break;
	}
	return r;
}

RS_EXPORT int fcntl64(int fd, int cmd, ...) RS_ALIAS(fcntl);
RS_EXPORT int __fcntl(int fd, int cmd, ...) RS_ALIAS(fcntl);

RS_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int r = RS_REAL(ioctl)(fd, req, arg);
	if (r < 0 || !rs_ready())
		return r;
	switch (req) {
	case FIONREAD: {
		/* Bytes the shim already received count as readable. */
		struct rs_fdb *b = rs_cfg.mode == RS_MODE_BATCH ? rs_fdb_get(fd) : NULL;
		if (b) {
			pthread_mutex_lock(&b->lock);
			*(int *)arg += (int)(b->rq.bytes + rs_fork_stash_bytes(b));
			pthread_mutex_unlock(&b->lock);
		}
		break;
	}
	case FIONBIO: {
		int on = *(int *)arg; /* the kernel just read it */
		rs_fd_set_flags(fd, on ? RS_FD_NONBLOCK : 0, on ? 0 : RS_FD_NONBLOCK);
		break;
	}
	case FIOCLEX:
		rs_fd_set_flags(fd, RS_FD_CLOEXEC, 0);
		break;
	case FIONCLEX:
		rs_fd_set_flags(fd, 0, RS_FD_CLOEXEC);
		break;
	default:
		break;
	}
	return r;
}

RS_EXPORT int fstat(int fd, struct stat *sb)
{
	int r = RS_REAL(fstat64)(fd, sb);
	if (r == 0 && rs_ready())
		rs_fd_note_stat(fd, sb);
	return r;
}

RS_EXPORT int fstat64(int fd, struct stat64 *sb)
{
	return fstat(fd, (struct stat *)sb);
}

/* fclose() closes its fd inside libc, out of our sight. */
RS_EXPORT int fclose(FILE *f)
{
	if (f && rs_ready()) {
		int fd = fileno(f);
		if (fd >= 0) {
			if (rs_cfg.mode == RS_MODE_BATCH)
				rs_batch_number_closing(fd);
			rs_fd_closed(fd);
		}
	}
	return RS_REAL(fclose)(f);
}

/* Raising the fd limit can bring the shim's own fds into the program's
 * range: they move out of the way. */
static RS_NO_SANITIZE bool ready_no_init(void)
{
	return __atomic_load_n(&rs_state, __ATOMIC_ACQUIRE) == RS_STATE_READY;
}

RS_EXPORT RS_NO_SANITIZE int setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
	int (*real)(__rlimit_resource_t, const struct rlimit *) =
		__atomic_load_n(&rs_real.setrlimit, __ATOMIC_ACQUIRE);
	if (!real)
		real = rs_real_early_setrlimit();
	bool nofile = res == RLIMIT_NOFILE;
	if (nofile)
		rs_internal_fds_rlimit_lock();
	int r = real(res, rl);
	if (nofile)
		rs_internal_fds_rlimit_unlock();
	if (r == 0 && nofile && ready_no_init())
		rs_internal_fds_rlimit_changed();
	return r;
}

RS_EXPORT RS_NO_SANITIZE int setrlimit64(__rlimit_resource_t res, const struct rlimit64 *rl)
{
	return setrlimit(res, (const struct rlimit *)rl);
}

RS_EXPORT RS_NO_SANITIZE int prlimit(pid_t pid, __rlimit_resource_t res, const struct rlimit *nrl,
				     struct rlimit *orl)
{
	int (*real)(pid_t, __rlimit_resource_t, const struct rlimit *, struct rlimit *) =
		__atomic_load_n(&rs_real.prlimit, __ATOMIC_ACQUIRE);
	if (!real)
		real = rs_real_early_prlimit();
	bool nofile = nrl && res == RLIMIT_NOFILE && (pid == 0 || pid == getpid());
	if (nofile)
		rs_internal_fds_rlimit_lock();
	int r = real(pid, res, nrl, orl);
	if (nofile)
		rs_internal_fds_rlimit_unlock();
	if (r == 0 && nofile && ready_no_init())
		rs_internal_fds_rlimit_changed();
	return r;
}

RS_EXPORT RS_NO_SANITIZE int prlimit64(pid_t pid, __rlimit_resource_t res,
				       const struct rlimit64 *nrl, struct rlimit64 *orl)
{
	return prlimit(pid, res, (const struct rlimit *)nrl, (struct rlimit *)orl);
}
