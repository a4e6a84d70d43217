/* Fd numbers are exactly the ones the kernel hands out: lowest free number
 * for open/socket/pipe/accept/dup, the asked-for number for dup2/dup3/
 * F_DUPFD, the daemon pattern (close 0-2, reopen), close_range/closefrom,
 * numbers near RLIMIT_NOFILE (where the shim keeps its own fds), a blocking
 * accept that owns its number before a connection arrives, and rings made
 * by new threads when many fds are open. High numbers are printed relative
 * to the soft limit. Never lists /proc/self/fd (the shim's ring fds are
 * visible there by design). */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "check.h"

static long rlim;

static const char *num(long fd)
{
	static char buf[4][32];
	static int i;
	char *b = buf[i++ & 3];
	if (fd >= rlim - 1000 && fd < rlim)
		snprintf(b, 32, "rlim-%ld", rlim - fd);
	else
		snprintf(b, 32, "%ld", fd);
	return b;
}

#define TN(label, expr)                                                        \
	({                                                                     \
		errno = EDOM;                                                  \
		long r_ = (long)(expr);                                        \
		int e_ = errno;                                                \
		if (r_ < 0)                                                    \
			t_note("%s: ret=-1 errno=%s", label, t_errname(e_));   \
		else                                                           \
			t_note("%s: fd %s errno-kept=%s", label, num(r_),      \
			       e_ == EDOM ? "yes" : t_errname(e_));            \
		r_;                                                            \
	})

/* A round trip through the ring: proves I/O still works. */
static void ping(const char *what, int a, int b)
{
	char buf[8];
	long w = write(a, "ping", 4);
	long r = read(b, buf, sizeof(buf));
	t_note("%s: write=%ld read=%ld %s", what, w, r, r == 4 && !memcmp(buf, "ping", 4) ? "ok" : "BAD");
}

static int listener(struct sockaddr_in *a)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(*a);
	if (l < 0 || bind(l, (struct sockaddr *)a, sizeof(*a)) || listen(l, 8) ||
	    getsockname(l, (struct sockaddr *)a, &al))
		t_die("listener");
	return l;
}

struct conn_thread {
	pid_t main_tid;
	struct sockaddr_in addr;
	long fd;
};

static void *connect_later(void *p)
{
	struct conn_thread *t = p;
	t_wait_blocked_task(getpid(), t->main_tid);
	t->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (t->fd >= 0 && connect((int)t->fd, (struct sockaddr *)&t->addr, sizeof(t->addr)))
		t->fd = -2;
	return NULL;
}

struct io_thread {
	int a, b, gate;
	pid_t tid;
};

static void *io_then_wait(void *p)
{
	struct io_thread *t = p;
	char buf[8];
	__atomic_store_n(&t->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	/* First ring call of this thread: its ring is made now. */
	if (write(t->a, "t", 1) != 1 || read(t->b, buf, 1) != 1)
		return (void *)1;
	/* Stay alive (and keep the ring) until the main thread says so. */
	if (read(t->gate, buf, 1) != 1)
		return (void *)2;
	return NULL;
}

int main(void)
{
	int sv[2], p[2];
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		t_die("getrlimit");
	if (rl.rlim_cur < 2048) {
		printf("#skip RLIMIT_NOFILE below 2048\n");
		return 77;
	}
	rlim = (long)rl.rlim_cur;
	t_expect("served_ring>0");
	signal(SIGPIPE, SIG_IGN);

	t_note("== the first ring call takes no number from the program");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	t_note("socketpair: %d %d", sv[0], sv[1]);
	ping("first I/O", sv[0], sv[1]);
	TN("socket after the first ring call", socket(AF_INET, SOCK_STREAM, 0));
	TN("pipe (read end shown)", pipe(p) ? -1 : p[0]);
	t_note("pipe write end: %d", p[1]);

	t_note("== daemon pattern: close 0-2, reopen /dev/null");
	int saved = fcntl(1, F_DUPFD_CLOEXEC, 100);
	close(0);
	close(1);
	close(2);
	long d0 = open("/dev/null", O_RDONLY);
	long d1 = open("/dev/null", O_WRONLY);
	long d2 = open("/dev/null", O_WRONLY);
	dup2(saved, 1);
	close(saved);
	t_note("reopened: %ld %ld %ld", d0, d1, d2);
	TE("close 0", close(0));
	TN("open after close(0)", open("/dev/null", O_RDONLY));
	ping("I/O still fine", sv[0], sv[1]);

	t_note("== lowest free number");
	TE("close 5 (the socket)", close(5));
	TN("socket", socket(AF_UNIX, SOCK_STREAM, 0));
	TN("dup", dup(sv[0]));
	TN("dup2 onto 40", dup2(sv[0], 40));
	TN("dup2 onto itself", dup2(40, 40));
	TN("dup3 onto 41 O_CLOEXEC", dup3(sv[0], 41, O_CLOEXEC));
	t_note("41 FD_CLOEXEC=%d", fcntl(41, F_GETFD) & FD_CLOEXEC);
	TN("dup3 onto itself", dup3(41, 41, 0));
	TN("F_DUPFD 40", fcntl(sv[0], F_DUPFD, 40));
	TN("F_DUPFD_CLOEXEC 40", fcntl(sv[0], F_DUPFD_CLOEXEC, 40));
	ping("through 42", 42, sv[1]);
	struct sockaddr_in la;
	int l = listener(&la);
	t_note("listener: %d", l);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	connect(c, (struct sockaddr *)&la, sizeof(la));
	TE("close 6 (the pipe read end)", close(6));
	TN("accept", accept(l, NULL, NULL));
	fcntl(l, F_SETFL, O_NONBLOCK);
	TN("accept4 empty queue, nonblocking", accept4(l, NULL, NULL, SOCK_NONBLOCK));
	fcntl(l, F_SETFL, 0);

	t_note("== a blocking accept owns its number before a connection arrives");
	int lowest = dup(0);
	close(lowest);
	struct conn_thread ct = { (pid_t)syscall(SYS_gettid), la, -1 };
	pthread_t th;
	pthread_create(&th, NULL, connect_later, &ct);
	long a = accept(l, NULL, NULL);
	pthread_join(th, NULL);
	t_note("accept: lowest free at call time: %s; thread's socket: lowest+%ld", a == lowest ? "yes" : "no",
	       ct.fd - lowest);
	close((int)a);
	close((int)ct.fd);
	close(c);

	t_note("== close_range(3, ~0U, 0)");
	TE("close_range", close_range(3, ~0U, 0));
	TE("write to closed sv[0]", write(sv[0], "x", 1));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	t_note("socketpair: %d %d", sv[0], sv[1]);
	ping("I/O after close_range", sv[0], sv[1]);
	TN("pipe (read end shown)", pipe(p) ? -1 : p[0]);
	t_note("pipe write end: %d", p[1]);
	ping("pipe I/O", p[1], p[0]);
	TE("close_range(6, 5) (first > last)", close_range(6, 5, 0));
	TE("close_range(5, 5)", close_range(5, 5, 0));
	TE("close(5) again", close(5));

	t_note("== numbers near RLIMIT_NOFILE (%s .. %s)", num(rlim - 300), num(rlim - 1));
	long dups[10];
	for (int i = 0; i < 10; i++)
		dups[i] = fcntl(sv[0], F_DUPFD, rlim - 260);
	t_note("F_DUPFD from rlim-260, ten times:");
	for (int i = 0; i < 10; i++)
		t_note("  %s", dups[i] < 0 ? t_errname(errno) : num(dups[i]));
	for (int i = 0; i < 10; i++)
		close((int)dups[i]);
	TN("F_DUPFD rlim-1", fcntl(sv[0], F_DUPFD, rlim - 1));
	close((int)(rlim - 1));
	TN("F_DUPFD rlim", fcntl(sv[0], F_DUPFD, rlim));
	TN("dup2 onto rlim", dup2(sv[0], (int)rlim));
	int ok = 0, bad = 0;
	for (long n = rlim - 300; n < rlim; n++) {
		long r = dup2(sv[0], (int)n);
		if (r == n)
			ok++;
		else if (bad++ == 0)
			t_note("dup2 onto %s: %ld %s", num(n), r, r < 0 ? t_errname(errno) : "");
	}
	t_note("dup2 onto each of rlim-300 .. rlim-1: %d returned their number, %d did not", ok, bad);
	int wrote = 0, got = 0;
	char big[512];
	for (long n = rlim - 300; n < rlim; n++) {
		wrote += write((int)n, "h", 1) == 1;
		got += read(sv[1], big, sizeof(big)) == 1;
	}
	t_note("one byte through each: %d written, %d read", wrote, got);
	ping("I/O through the originals", sv[0], sv[1]);
	TN("socket now", socket(AF_INET, SOCK_STREAM, 0));
	TN("pipe now (read end shown)", pipe(p) ? -1 : p[0]);
	ping("pipe I/O", p[1], p[0]);
	int closed_ok = 0;
	for (long n = rlim - 300; n < rlim; n++)
		closed_ok += close((int)n) == 0;
	t_note("closed %d of them", closed_ok);
	ping("I/O after closing them", sv[0], sv[1]);

	t_note("== closefrom(3)");
	closefrom(3);
	TE("read closed sv[1]", read(sv[1], big, 1));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	t_note("socketpair: %d %d", sv[0], sv[1]);
	ping("I/O after closefrom", sv[0], sv[1]);
	int closes = 0;
	for (long n = 5; n < rlim; n++)
		closes += close((int)n) == 0;
	t_note("close() succeeded on %d numbers in 5 .. rlim-1 (none are the program's)", closes);

	t_note("== a new thread's ring when many fds are open (soft limit 1024)");
	struct rlimit small = { 1024, rl.rlim_max };
	TE("setrlimit 1024", setrlimit(RLIMIT_NOFILE, &small));
	rlim = 1024;
	ping("main thread I/O (its ring is above the new limit)", sv[0], sv[1]);
	int gate[2];
	if (pipe(gate))
		t_die("gate");
	t_note("gate pipe: %d %d", gate[0], gate[1]);
	int fd;
	while ((fd = dup(0)) >= 0 && fd < 899)
		;
	lowest = dup(0);
	close(lowest);
	t_note("lowest free after filling: %s", num(lowest));
	struct io_thread it = { sv[0], sv[1], gate[0], 0 };
	pthread_create(&th, NULL, io_then_wait, &it);
	/* Wait until the thread has done its I/O and sits in read(gate). */
	while (!__atomic_load_n(&it.tid, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	t_wait_blocked_task(getpid(), it.tid);
	TN("dup while the thread lives", dup(0));
	TN("socket while the thread lives", socket(AF_UNIX, SOCK_DGRAM, 0));
	TE("release the thread", write(gate[1], "g", 1));
	void *tr;
	pthread_join(th, &tr);
	t_note("thread result %ld", (long)tr);
	ping("I/O at the end", sv[0], sv[1]);
	return 0;
}
