#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"
#include "internal_fds.h"
#include "real.h"

#define RS_MAX_INTERNAL_FDS 512

struct internal_fd {
	int fd;
	rs_fd_moved_fn moved;
	void *owner;
};

static struct internal_fd table[RS_MAX_INTERNAL_FDS];
static int count;
/* Only bounds are read without the lock; they make the common "not ours"
 * answer one comparison for close() and dup2(). */
static int lowest = -1, highest = -1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void recompute_bounds(void)
{
	int lo = -1, hi = -1;
	for (int i = 0; i < count; i++) {
		if (lo < 0 || table[i].fd < lo)
			lo = table[i].fd;
		if (table[i].fd > hi)
			hi = table[i].fd;
	}
	__atomic_store_n(&lowest, lo, __ATOMIC_RELEASE);
	__atomic_store_n(&highest, hi, __ATOMIC_RELEASE);
}

/* The highest free number in [lo, hi] for a copy of fd (close-on-exec),
 * found by probing with F_DUPFD, which gives the lowest free number at or
 * above its argument. -1 if there is none. */
static int dup_into_range(int fd, long lo, long hi)
{
	for (long from = hi; from >= lo && from >= 0; from -= hi - from < 64 ? 1 : 64) {
		int nfd = RS_REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, (int)from);
		if (nfd < 0)
			continue;
		if (nfd <= hi)
			return nfd;
		RS_REAL(close)(nfd); /* [from, hi] is full */
	}
	return -1;
}

static long soft_limit(struct rlimit *rl)
{
	if (getrlimit(RLIMIT_NOFILE, rl) != 0)
		return 1024;
	if (rl->rlim_cur == RLIM_INFINITY || rl->rlim_cur > INT_MAX)
		rl->rlim_cur = INT_MAX;
	return (long)rl->rlim_cur;
}

/* Where the shim's own fds go, so that the program never gets a different
 * number than it would without the shim:
 *  - above the soft RLIMIT_NOFILE when the hard limit leaves room: the
 *    program cannot allocate there (EMFILE), dup2() there (EBADF) or
 *    F_DUPFD there (EINVAL);
 *  - otherwise at the highest free numbers below it, which the kernel's
 *    lowest-free allocation reaches last (and F_DUPFD/dup2 aimed there move
 *    them out of the way first). */
/* Serialises the raise-dup-restore below: two threads doing it at once
 * could each restore the other's raised limit and leave it raised. */
static pthread_mutex_t rlimit_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether a new fd of ours would leave the program fewer free numbers than
 * it has now: true when nothing can go above the soft RLIMIT_NOFILE (the
 * hard limit is as low) and fewer than RS_FD_HEADROOM numbers are free
 * below it. Counting is slow, but only runs in that case. */
#define RS_FD_HEADROOM 64
bool rs_internal_fds_tight(void)
{
	struct rlimit rl;
	long soft = soft_limit(&rl);
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > rl.rlim_cur + 64)
		return false;
	/* Free numbers are counted by polling them (POLLNVAL: not open), a
	 * chunk at a time from 0, until enough are found. Reading
	 * /proc/self/fd would take an fd itself, at the lowest free number,
	 * outside the fd-number gate: another thread's socket() or pipe()
	 * would get a higher number than natively (sqpoll_threads), or
	 * EMFILE at the limit. */
	long free_fds = 0;
	struct pollfd pfd[256];
	struct timespec zero = { 0, 0 };
	for (long base = 0; base < soft && free_fds < RS_FD_HEADROOM; base += 256) {
		long n = soft - base < 256 ? soft - base : 256;
		for (long k = 0; k < n; k++)
			pfd[k] = (struct pollfd){ .fd = (int)(base + k), .events = 0 };
		if (syscall(SYS_ppoll, pfd, (unsigned long)n, &zero, NULL, (size_t)0) < 0)
			return true; /* cannot tell: keep the numbers for the program */
		for (long k = 0; k < n; k++)
			free_fds += (pfd[k].revents & POLLNVAL) != 0;
	}
	return free_fds < RS_FD_HEADROOM;
}

void rs_internal_fds_rlimit_lock(void)
{
	pthread_mutex_lock(&rlimit_lock);
}

void rs_internal_fds_rlimit_unlock(void)
{
	pthread_mutex_unlock(&rlimit_lock);
}

static int dup_high(int fd)
{
	struct rlimit rl;
	pthread_mutex_lock(&rlimit_lock);
	long soft = soft_limit(&rl);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > rl.rlim_cur + 64) {
		struct rlimit raised = rl;
		raised.rlim_cur = rl.rlim_max < rl.rlim_cur + 4096 ? rl.rlim_max : rl.rlim_cur + 4096;
		if (RS_REAL(setrlimit)(RLIMIT_NOFILE, &raised) == 0) {
			int nfd = RS_REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, (int)soft);
			RS_REAL(setrlimit)(RLIMIT_NOFILE, &rl);
			if (nfd >= 0) {
				pthread_mutex_unlock(&rlimit_lock);
				return nfd;
			}
		}
	}
	pthread_mutex_unlock(&rlimit_lock);
	int nfd = dup_into_range(fd, soft > 65536 ? soft - 65536 : 0, soft - 1);
	return nfd < 0 ? -EMFILE : nfd;
}

int rs_internal_fd_hide(int fd, rs_fd_moved_fn moved, void *owner)
{
	int saved = errno;
	int h = dup_high(fd);
	errno = saved;
	if (h < 0)
		return -1;
	rs_internal_fd_add(h, moved, owner);
	return h;
}

void rs_internal_fd_add(int fd, rs_fd_moved_fn moved, void *owner)
{
	pthread_mutex_lock(&lock);
	if (count < RS_MAX_INTERNAL_FDS)
		table[count++] = (struct internal_fd){ fd, moved, owner };
	recompute_bounds();
	pthread_mutex_unlock(&lock);
}

/* The low number a new ring (or internal fd) came with. */
#define CLOSE_FRESH(fd)                                                         \
	do {                                                                    \
		RS_FRESH_FD_BEGIN();                                            \
		RS_REAL(close)(fd);                                             \
		RS_FRESH_FD_END();                                              \
	} while (0)

int rs_internal_fd_move_high(int fd, rs_fd_moved_fn moved, void *owner)
{
	int saved = errno;
	int nfd = dup_high(fd);
	if (nfd > fd) {
		CLOSE_FRESH(fd);
	} else {
		if (nfd >= 0)
			CLOSE_FRESH(nfd);
		nfd = fd;
	}
	rs_internal_fd_add(nfd, moved, owner);
	errno = saved;
	return nfd;
}

void rs_internal_fd_remove(int fd)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < count; i++) {
		if (table[i].fd == fd) {
			table[i] = table[--count];
			break;
		}
	}
	recompute_bounds();
	pthread_mutex_unlock(&lock);
}

bool rs_internal_fd_is(int fd)
{
	int lo = __atomic_load_n(&lowest, __ATOMIC_ACQUIRE);
	if (lo < 0 || fd < lo || fd > __atomic_load_n(&highest, __ATOMIC_ACQUIRE))
		return false;
	bool found = false;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < count && !found; i++)
		found = table[i].fd == fd;
	pthread_mutex_unlock(&lock);
	return found;
}

int rs_internal_fd_next(int from)
{
	int lo = __atomic_load_n(&lowest, __ATOMIC_ACQUIRE);
	if (lo < 0 || from > __atomic_load_n(&highest, __ATOMIC_ACQUIRE))
		return -1;
	int best = -1;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < count; i++)
		if (table[i].fd >= from && (best < 0 || table[i].fd < best))
			best = table[i].fd;
	pthread_mutex_unlock(&lock);
	return best;
}

void rs_internal_fd_evict(int fd)
{
	if (!rs_internal_fd_is(fd))
		return;
	int saved = errno;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < count; i++) {
		if (table[i].fd != fd)
			continue;
		int nfd = dup_high(fd);
		if (nfd < 0)
			nfd = RS_REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, 0);
		if (nfd < 0)
			break;
		table[i].fd = nfd;
		if (table[i].moved)
			table[i].moved(table[i].owner, fd, nfd);
		RS_REAL(close)(fd);
		break;
	}
	recompute_bounds();
	pthread_mutex_unlock(&lock);
	errno = saved;
}

/* The program changed its soft RLIMIT_NOFILE: fds of ours inside its new
 * range move out of the way. */
void rs_internal_fds_rlimit_changed(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	int saved = errno;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < count; i++) {
		int fd = table[i].fd;
		if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)fd >= rl.rlim_cur)
			continue;
		int nfd = dup_high(fd);
		if (nfd < 0 || nfd < fd)
			continue;
		table[i].fd = nfd;
		if (table[i].moved)
			table[i].moved(table[i].owner, fd, nfd);
		RS_REAL(close)(fd);
	}
	recompute_bounds();
	pthread_mutex_unlock(&lock);
	errno = saved;
}

/* F_DUPFD(from): the program expects the lowest free number at or above
 * `from`. One of ours only gets in the way when every number between `from`
 * and it is taken (a probe lands above it); then it moves to another high
 * free number. Moving ours below `from` instead would put it where the
 * program's next socket() or open() expects to land. */
void rs_internal_fds_clear_from(int from)
{
	if (from < 0 || rs_internal_fd_next(from) < 0)
		return;
	int saved = errno;
	pthread_mutex_lock(&lock);
	for (int tries = 0; tries < RS_MAX_INTERNAL_FDS; tries++) {
		int idx = -1;
		for (int i = 0; i < count; i++)
			if (table[i].fd >= from && (idx < 0 || table[i].fd < table[idx].fd))
				idx = i;
		if (idx < 0)
			break;
		int fd = table[idx].fd;
		int probe = RS_REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, from);
		if (probe < 0 && errno != EMFILE)
			break;
		if (probe >= 0) {
			RS_REAL(close)(probe);
			if (probe < fd)
				break;
		}
		int nfd = dup_high(fd);
		if (nfd < 0)
			break;
		table[idx].fd = nfd;
		if (table[idx].moved)
			table[idx].moved(table[idx].owner, fd, nfd);
		RS_REAL(close)(fd);
	}
	recompute_bounds();
	pthread_mutex_unlock(&lock);
	errno = saved;
}

static pthread_rwlock_t gate = PTHREAD_RWLOCK_INITIALIZER;

int rs_fdgate_enter(void)
{
	/* EDEADLK when this thread holds it exclusively (a signal handler
	 * that interrupted ring set-up): then it is already ours. */
	int saved = errno;
	int r = pthread_rwlock_rdlock(&gate);
	errno = saved;
	return r;
}

void rs_fdgate_leave(int entered)
{
	if (entered == 0) {
		int saved = errno;
		pthread_rwlock_unlock(&gate);
		errno = saved;
	}
}

/* Readers inside an open(), which may block (a FIFO). */
static unsigned slow_readers;

int rs_fdgate_enter_slow(void)
{
	__atomic_add_fetch(&slow_readers, 1, __ATOMIC_ACQ_REL);
	return rs_fdgate_enter();
}

void rs_fdgate_leave_slow(int entered)
{
	rs_fdgate_leave(entered);
	__atomic_sub_fetch(&slow_readers, 1, __ATOMIC_ACQ_REL);
}

bool rs_fdgate_lock(void)
{
	/* In 3 ms slices: past the first, only while no open() is inside
	 * (then the readers are calls that never block, and going ahead
	 * would let one of them get a shifted number), and for 1 s at most. */
	for (int slice = 0; slice < 333; slice++) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 3000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		int r = pthread_rwlock_timedwrlock(&gate, &t);
		if (r == 0)
			return true;
		if (r != ETIMEDOUT || __atomic_load_n(&slow_readers, __ATOMIC_ACQUIRE))
			return false;
	}
	return false;
}

void rs_fdgate_unlock(bool held)
{
	if (held)
		pthread_rwlock_unlock(&gate);
}

void rs_internal_fds_after_fork_child(void)
{
	/* Another thread may have held these: it does not exist here. */
	pthread_rwlock_init(&gate, NULL);
	slow_readers = 0;
	pthread_mutex_init(&rlimit_lock, NULL);
	/* The lock may have been held by a thread that does not exist here. */
	pthread_mutex_init(&lock, NULL);
}
