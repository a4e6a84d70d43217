/* Resource limits and many threads:
 *  - RLIMIT_NOFILE nearly used up while threads (each wanting a ring, whose
 *    fd counts against the limit) do I/O: the program gets exactly the fd
 *    numbers, EMFILE, accept() EMFILE and dup2/F_DUPFD answers it gets
 *    natively; once with room above the soft limit (hard limit higher),
 *    once with soft == hard (in a child);
 *  - a tiny RLIMIT_MEMLOCK without CAP_IPC_LOCK (in a child): sockets,
 *    epoll and threads still work;
 *  - 2000 threads alive at once, each doing one socket write (more threads
 *    than RINGSHIM_MAX_RINGS), then 2000 short-lived threads each writing
 *    to a nonblocking TCP socket and exiting at once. */
#include <linux/capability.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "tcp_peer.h"

static int listener, port;

static void tcp_pair(int out[2])
{
	tp_pair(listener, port, out);
}

/* ---- threads that do I/O and stay alive ----------------------------------- */
#define IO_THREADS 4
static int io_pair[IO_THREADS][2];
static pthread_barrier_t io_bar;

static void *io_thread(void *p)
{
	int i = (int)(long)p;
	char buf[16];
	long ok = write(io_pair[i][0], "ping", 4) == 4 && read(io_pair[i][1], buf, sizeof(buf)) == 4;
	pthread_barrier_wait(&io_bar); /* everyone has done I/O */
	pthread_barrier_wait(&io_bar); /* main has finished its part */
	ok &= write(io_pair[i][1], "pong", 4) == 4 && read(io_pair[i][0], buf, sizeof(buf)) == 4;
	return (void *)ok;
}

static void fill_until_emfile(const char *how)
{
	int got[64], n = 0;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0) {
			t_note("%s: socket() #%d: ret=-1 errno=%s", how, n, t_errname(errno));
			break;
		}
		if (n < 64)
			got[n++] = fd;
		else
			break;
	}
	printf("%s: fd numbers", how);
	for (int i = 0; i < n; i++)
		printf(" %d", got[i]);
	printf("\n");
	fflush(stdout);
	int pfd[2];
	T("pipe() at the limit", pipe(pfd));
	T("epoll_create1() at the limit", epoll_create1(0));
	int sv[2];
	T("socketpair() at the limit", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	T("accept() at the limit (a connection is waiting)", accept(listener, NULL, NULL));
	for (int i = 0; i < n; i++)
		close(got[i]);
}

/* The lowest free fd number now. */
static int lowest_free(void)
{
	int fd = dup(0);
	close(fd);
	return fd;
}

static void nofile_section(const char *what, int soft_equals_hard)
{
	t_note("== RLIMIT_NOFILE nearly used up, %d threads doing I/O (%s)", IO_THREADS, what);
	struct rlimit old, rl;
	getrlimit(RLIMIT_NOFILE, &old);
	for (int i = 0; i < IO_THREADS; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, io_pair[i]))
			t_die("socketpair");
	int waiting = tp_connect(port); /* queued on the listener */
	int low = lowest_free();
	rl.rlim_cur = (rlim_t)low + 6;
	rl.rlim_max = soft_equals_hard ? rl.rlim_cur : old.rlim_max;
	t_note("soft limit = lowest free + 6");
	TE("setrlimit", setrlimit(RLIMIT_NOFILE, &rl));
	pthread_barrier_init(&io_bar, NULL, IO_THREADS + 1);
	pthread_t t[IO_THREADS];
	for (int i = 0; i < IO_THREADS; i++)
		pthread_create(&t[i], NULL, io_thread, (void *)(long)i);
	pthread_barrier_wait(&io_bar);
	char rel[64];
	fill_until_emfile("threads alive");
	int top = (int)rl.rlim_cur - 1;
	long r = T("dup2(0, soft-1)", dup2(0, top));
	if (r >= 0) {
		snprintf(rel, sizeof(rel), "= soft-1: %s", tp_yesno(r == top));
		t_note("  %s", rel);
		close(top);
	}
	T("dup2(0, soft)", dup2(0, top + 1));
	r = T("fcntl(0, F_DUPFD, soft-1)", fcntl(0, F_DUPFD, top));
	if (r >= 0) {
		t_note("  = soft-1: %s", tp_yesno(r == top));
		close((int)r);
	}
	T("fcntl(0, F_DUPFD, soft)", fcntl(0, F_DUPFD, top + 1));
	pthread_barrier_wait(&io_bar);
	long ok = 0;
	for (int i = 0; i < IO_THREADS; i++) {
		void *v;
		pthread_join(t[i], &v);
		ok += (long)v;
	}
	t_note("threads' I/O ok: %ld of %d", ok, IO_THREADS);
	pthread_barrier_destroy(&io_bar);
	fill_until_emfile("threads gone");
	/* New threads after the limit was reached. */
	pthread_barrier_init(&io_bar, NULL, IO_THREADS + 1);
	for (int i = 0; i < IO_THREADS; i++)
		pthread_create(&t[i], NULL, io_thread, (void *)(long)i);
	pthread_barrier_wait(&io_bar);
	fill_until_emfile("new threads alive");
	pthread_barrier_wait(&io_bar);
	ok = 0;
	for (int i = 0; i < IO_THREADS; i++) {
		void *v;
		pthread_join(t[i], &v);
		ok += (long)v;
	}
	t_note("new threads' I/O ok: %ld of %d", ok, IO_THREADS);
	pthread_barrier_destroy(&io_bar);
	if (!soft_equals_hard)
		TE("restore the limit", setrlimit(RLIMIT_NOFILE, &old));
	int c = accept(listener, NULL, NULL);
	t_note("accept() once there is room: %s", tp_yesno(c >= 0));
	close(c);
	close(waiting);
	for (int i = 0; i < IO_THREADS; i++) {
		close(io_pair[i][0]);
		close(io_pair[i][1]);
	}
}

/* ---- tiny RLIMIT_MEMLOCK ------------------------------------------------- */
static void *echo_once(void *p)
{
	int fd = (int)(long)p;
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));
	return (void *)(long)(n > 0 && write(fd, buf, (size_t)n) == n);
}

static int memlock_child(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) == 0) {
		d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
		d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
		d[CAP_IPC_LOCK / 32].inheritable &= ~(1u << (CAP_IPC_LOCK % 32));
		syscall(SYS_capset, &h, d);
	}
	struct rlimit rl = { 0, 0 };
	TE("setrlimit(RLIMIT_MEMLOCK, 0)", setrlimit(RLIMIT_MEMLOCK, &rl));
	int a[2];
	tcp_pair(a);
	tp_set_nonblock(a[1], 1);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = a[1] };
	TE("epoll ADD", epoll_ctl(ep, EPOLL_CTL_ADD, a[1], &ev));
	TE("write", write(a[0], "locked out", 10));
	T("epoll_wait", epoll_wait(ep, &ev, 1, 2000));
	char buf[64];
	long n = T("read", read(a[1], buf, sizeof(buf)));
	t_bytes("  got", buf, n > 0 ? n : 0);
	TE("nonblocking write back", write(a[1], "reply", 5));
	n = T("read the reply", recv(a[0], buf, 5, MSG_WAITALL));
	t_bytes("  got", buf, n > 0 ? n : 0);
	int sv[2][2];
	pthread_t t[2];
	long ok = 0;
	for (int i = 0; i < 2; i++) {
		socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]);
		pthread_create(&t[i], NULL, echo_once, (void *)(long)sv[i][1]);
	}
	for (int i = 0; i < 2; i++) {
		if (write(sv[i][0], "thread", 6) == 6 && read(sv[i][0], buf, sizeof(buf)) == 6)
			ok++;
		void *v;
		pthread_join(t[i], &v);
		ok += (long)v;
	}
	t_note("threads echoed: %ld of 4", ok);
	return 0;
}

/* ---- 2000 threads ------------------------------------------------------------- */
#define MANY 2000
static int many_fd;
static pthread_barrier_t many_bar;

static void *one_write_wait(void *p)
{
	char msg[8];
	snprintf(msg, sizeof(msg), "%05d", (int)(long)p);
	long ok = write(many_fd, msg, 5) == 5;
	pthread_barrier_wait(&many_bar);
	return (void *)ok;
}

static void *one_write_exit(void *p)
{
	char msg[8];
	snprintf(msg, sizeof(msg), "%05d", (int)(long)p);
	return (void *)(long)(write(many_fd, msg, 5) == 5);
}

static void check_numbers(const char *what, int fd, long writes_ok)
{
	static char all[MANY * 5];
	static unsigned char seen[MANY];
	size_t have = 0;
	while (have < sizeof(all)) {
		ssize_t n = read(fd, all + have, sizeof(all) - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	memset(seen, 0, sizeof(seen));
	int once = 1;
	for (size_t off = 0; off + 5 <= have; off += 5) {
		char num[6];
		memcpy(num, all + off, 5);
		num[5] = 0;
		int v = atoi(num);
		if (v < 0 || v >= MANY || seen[v]++)
			once = 0;
	}
	for (int i = 0; i < MANY; i++)
		once &= seen[i] == 1;
	t_note("%s: writes ok %ld, read %zu bytes, each number exactly once: %s", what, writes_ok, have,
	       tp_yesno(once));
}

static void many_threads(void)
{
	t_note("== %d threads alive at once, one write each to a blocking unix stream socket", MANY);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	many_fd = sv[0];
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_barrier_init(&many_bar, NULL, MANY + 1);
	static pthread_t t[MANY];
	int created = 0;
	for (int i = 0; i < MANY; i++)
		if (pthread_create(&t[i], &attr, one_write_wait, (void *)(long)i) == 0)
			created++;
	if (created != MANY)
		t_die("pthread_create");
	pthread_barrier_wait(&many_bar);
	long ok = 0;
	for (int i = 0; i < MANY; i++) {
		void *v;
		pthread_join(t[i], &v);
		ok += (long)v;
	}
	pthread_barrier_destroy(&many_bar);
	shutdown(sv[0], SHUT_WR);
	check_numbers("all alive", sv[1], ok);
	close(sv[0]);
	close(sv[1]);

	t_note("== %d short-lived threads, one write each to a nonblocking TCP socket, then exit", MANY);
	int p[2];
	tcp_pair(p);
	tp_set_nonblock(p[0], 1);
	many_fd = p[0];
	ok = 0;
	for (int b = 0; b < MANY; b += 100) {
		for (int i = b; i < b + 100; i++)
			pthread_create(&t[i], &attr, one_write_exit, (void *)(long)i);
		for (int i = b; i < b + 100; i++) {
			void *v;
			pthread_join(t[i], &v);
			ok += (long)v;
		}
	}
	shutdown(p[0], SHUT_WR);
	check_numbers("short-lived", p[1], ok);
	close(p[0]);
	close(p[1]);
	pthread_attr_destroy(&attr);
}

int main(void)
{
	t_expect("served_ring>0");
	signal(SIGPIPE, SIG_IGN);
	listener = tp_listen(&port, 0, 64);

	nofile_section("hard limit higher", 0);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		nofile_section("soft == hard, in a child", 1);
		exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	t_note("child: %s", t_status(st));

	t_note("== RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK (in a child)");
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		exit(memlock_child());
	waitpid(pid, &st, 0);
	t_note("child: %s", t_status(st));

	many_threads();
	return 0;
}
