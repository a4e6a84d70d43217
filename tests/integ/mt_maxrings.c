/* RINGSHIM_MAX_RINGS=2 (the program re-executes itself with it set; natively
 * the variable means nothing): the main thread and one long-lived thread
 * get the two rings, every further thread passes its calls through to libc
 * (pt_ring_cap). Results must not depend on which thread has a ring:
 *  - 8 threads ping-pong on TCP connections of their own, all at once;
 *  - bytes the main thread queued on a nonblocking TCP socket (write-behind
 *    in batch mode) come before those a ring-less thread writes next on
 *    the same socket;
 *  - bytes received ahead into the shim's stash for a socket in the main
 *    thread's epoll set are what a ring-less thread's read() returns;
 *  - a ring-less thread's epoll_wait on the main thread's epoll instance
 *    reports what the main thread's would. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "tcp_peer.h"

#define THREADS 8
#define ROUNDS 100

static int listener, port;

static void tcp_pair(int out[2])
{
	tp_pair(listener, port, out);
}

struct pp {
	int fd[2];
	long ok;
	uint64_t hash;
};

static void *echo_side(void *p)
{
	struct pp *x = p;
	char buf[64];
	ssize_t n;
	while ((n = read(x->fd[1], buf, sizeof(buf))) > 0)
		if (write(x->fd[1], buf, (size_t)n) != n)
			break;
	return NULL;
}

static void *ping_side(void *p)
{
	struct pp *x = p;
	uint64_t h = T_FNV_INIT;
	pthread_t echo;
	pthread_create(&echo, NULL, echo_side, x);
	for (int i = 0; i < ROUNDS; i++) {
		char msg[32], back[32];
		int len = snprintf(msg, sizeof(msg), "ping %d on %d", i, x->fd[0]);
		if (send(x->fd[0], msg, (size_t)len, 0) != len)
			break;
		if (recv(x->fd[0], back, (size_t)len, MSG_WAITALL) != len)
			break;
		if (!memcmp(msg, back, (size_t)len))
			x->ok++;
		h = t_fnv(h, back, (size_t)len);
	}
	shutdown(x->fd[0], SHUT_WR);
	pthread_join(echo, NULL);
	x->hash = h;
	return NULL;
}

/* The long-lived second ring holder: does one call, then waits. */
static int hold[2];
static void *holder(void *p)
{
	(void)p;
	char c;
	if (write(hold[1], "h", 1) != 1)
		return NULL;
	if (read(hold[1], &c, 1) != 1) /* until main writes "q" */
		return NULL;
	return NULL;
}

struct act {
	int fd;
	const char *msg;
	long ret;
	int err;
	char buf[64];
	struct epoll_event ev[4];
};

static void *write_it(void *p)
{
	struct act *a = p;
	errno = 0;
	a->ret = write(a->fd, a->msg, strlen(a->msg));
	a->err = errno;
	return NULL;
}

static void *read_it(void *p)
{
	struct act *a = p;
	errno = 0;
	a->ret = read(a->fd, a->buf, sizeof(a->buf));
	a->err = errno;
	return NULL;
}

static void *epoll_it(void *p)
{
	struct act *a = p;
	errno = 0;
	a->ret = epoll_wait(a->fd, a->ev, 4, 2000);
	a->err = errno;
	return NULL;
}

static void run_in_thread(void *(*fn)(void *), struct act *a)
{
	pthread_t t;
	pthread_create(&t, NULL, fn, a);
	pthread_join(t, NULL);
}

static void show(const char *what, struct act *a)
{
	if (a->ret < 0)
		t_note("%s: ret=-1 errno=%s", what, t_errname(a->err));
	else
		t_note("%s: ret=%ld", what, a->ret);
}

int main(int argc, char **argv)
{
	(void)argc;
	const char *mr = getenv("RINGSHIM_MAX_RINGS");
	if (!mr || strcmp(mr, "2")) {
		setenv("RINGSHIM_MAX_RINGS", "2", 1);
		execv("/proc/self/exe", argv);
		t_die("re-exec");
	}
	t_expect("served_ring>0");
	t_expect("rings_created<=2");
	t_expect("pt_ring_cap>0");
	signal(SIGPIPE, SIG_IGN);
	listener = tp_listen(&port, 0, 64);
	t_note("RINGSHIM_MAX_RINGS=%s", mr);

	/* Ring 1: this thread (its first socket call). Ring 2: the holder. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, hold))
		t_die("socketpair");
	pthread_t th;
	pthread_create(&th, NULL, holder, NULL);
	char c;
	T("holder has made its call", read(hold[0], &c, 1));

	t_note("== %d threads ping-pong %d messages each over TCP, all at once", THREADS, ROUNDS);
	struct pp x[THREADS];
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		x[i] = (struct pp){ .ok = 0 };
		tcp_pair(x[i].fd);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, ping_side, &x[i]);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		t_note("thread %d: %ld of %d echoed, hash %016llx", i, x[i].ok, ROUNDS,
		       (unsigned long long)x[i].hash);
		close(x[i].fd[0]);
		close(x[i].fd[1]);
	}

	t_note("== main queues on a nonblocking socket, a ring-less thread writes next");
	int s[2];
	tcp_pair(s);
	tp_set_nonblock(s[0], 1);
	TE("main writes 'first '", write(s[0], "first ", 6));
	struct act a = { .fd = s[0], .msg = "second" };
	run_in_thread(write_it, &a);
	show("thread writes 'second'", &a);
	char buf[64];
	long n = T("peer reads 12", recv(s[1], buf, 12, MSG_WAITALL));
	t_bytes("  got", buf, n > 0 ? n : 0);
	close(s[0]);
	close(s[1]);

	t_note("== received ahead for main's epoll set, read by a ring-less thread");
	tcp_pair(s);
	tp_set_nonblock(s[1], 1);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = s[1] };
	TE("ADD", epoll_ctl(ep, EPOLL_CTL_ADD, s[1], &ev));
	struct epoll_event out[4];
	T("epoll_wait (nothing yet)", epoll_wait(ep, out, 4, 0));
	TE("peer writes 'stashed?'", write(s[0], "stashed?", 8));
	tp_wait_acked(s[0]);
	T("main's epoll_wait", epoll_wait(ep, out, 4, 2000));
	a = (struct act){ .fd = s[1] };
	run_in_thread(read_it, &a);
	show("ring-less thread reads", &a);
	t_bytes("  got", a.buf, a.ret > 0 ? a.ret : 0);
	a = (struct act){ .fd = s[1] };
	run_in_thread(read_it, &a);
	show("and again", &a);

	t_note("== a ring-less thread waits on main's epoll instance");
	TE("peer writes 'more'", write(s[0], "more", 4));
	tp_wait_acked(s[0]);
	a = (struct act){ .fd = ep };
	run_in_thread(epoll_it, &a);
	show("thread's epoll_wait", &a);
	if (a.ret > 0)
		t_note("  events=0x%x on the socket: %s", a.ev[0].events, tp_yesno(a.ev[0].data.fd == s[1]));
	a = (struct act){ .fd = s[1] };
	run_in_thread(read_it, &a);
	show("ring-less thread reads", &a);
	t_bytes("  got", a.buf, a.ret > 0 ? a.ret : 0);
	TE("peer closes", close(s[0]));
	a = (struct act){ .fd = ep };
	run_in_thread(epoll_it, &a);
	show("thread's epoll_wait after the peer closed", &a);
	if (a.ret > 0)
		t_note("  events=0x%x", a.ev[0].events);
	n = T("main reads", read(s[1], buf, sizeof(buf)));
	close(s[1]);
	close(ep);

	TE("let the holder go", write(hold[0], "q", 1));
	pthread_join(th, NULL);
	return 0;
}
