#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

static int high_floor(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return 1024;
	long soft = (long)rl.rlim_cur;
	if (soft <= 64)
		return -1;
	long floor = soft - 256;
	if (floor < soft * 3 / 4)
		floor = soft * 3 / 4;
	return (int)floor;
}

static int dup_high(int fd)
{
	int floor = high_floor();
	if (floor < 0)
		return -EINVAL;
	int nfd = RS_REAL(fcntl64)(fd, F_DUPFD_CLOEXEC, floor);
	return nfd < 0 ? -errno : nfd;
}

void rs_internal_fd_add(int fd, rs_fd_moved_fn moved, void *owner)
{
	pthread_mutex_lock(&lock);
	if (count < RS_MAX_INTERNAL_FDS)
		table[count++] = (struct internal_fd){ fd, moved, owner };
	recompute_bounds();
	pthread_mutex_unlock(&lock);
}

int rs_internal_fd_move_high(int fd, rs_fd_moved_fn moved, void *owner)
{
	int saved = errno;
	int floor = high_floor();
	int nfd = fd;
	if (floor >= 0 && fd < floor) {
		nfd = dup_high(fd);
		if (nfd >= 0)
			RS_REAL(close)(fd);
		else
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
		/* Any free number will do; prefer high ones, but when the
		 * program itself lives up there take the lowest free one. */
		int nfd = dup_high(fd);
		if (nfd < 0 || nfd == fd)
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

void rs_internal_fds_after_fork_child(void)
{
	/* The lock may have been held by a thread that does not exist here. */
	pthread_mutex_init(&lock, NULL);
}
