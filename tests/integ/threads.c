/* Threads, each with its own ring: concurrent blocking I/O on separate
 * socketpairs, a thread blocked in read() woken by another thread's write,
 * two threads blocked on one socket, a signal aimed at one blocked thread,
 * and 200 short-lived threads each doing one write. Threads record their
 * results; the main thread prints them in a fixed order. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "check.h"

#define PAIRS 4
#define ROUNDS 200

struct pingpong {
	int fd;
	int ok, bad;
	uint64_t hash;
};

static void *pinger(void *p)
{
	struct pingpong *t = p;
	uint64_t h = T_FNV_INIT;
	for (int i = 0; i < ROUNDS; i++) {
		char msg[32], back[32];
		int len = snprintf(msg, sizeof(msg), "msg %d from %d", i, t->fd);
		if (write(t->fd, msg, (size_t)len) != len) {
			t->bad++;
			continue;
		}
		ssize_t n = recv(t->fd, back, (size_t)len, MSG_WAITALL);
		(void)n;
		h = t_fnv(h, back, (size_t)len);
		if (memcmp(back, msg, (size_t)len))
			t->bad++;
		else
			t->ok++;
	}
	t->hash = h;
	return NULL;
}

static void *echoer(void *p)
{
	struct pingpong *t = p;
	char buf[64];
	for (;;) {
		ssize_t n = read(t->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (write(t->fd, buf, (size_t)n) != n)
			t->bad++;
		t->ok++;
	}
	return NULL;
}

struct blocked {
	int fd;
	pid_t tid;
	long ret;
	int err;
	char buf[64];
};

static void *block_read(void *p)
{
	struct blocked *b = p;
	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	errno = 0;
	b->ret = read(b->fd, b->buf, sizeof(b->buf));
	b->err = errno;
	return NULL;
}

static void wait_blocked_thread(struct blocked *b)
{
	while (!__atomic_load_n(&b->tid, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	t_wait_blocked_task(getpid(), b->tid);
}

static void show_blocked(const char *what, struct blocked *b)
{
	if (b->ret < 0)
		t_note("%s: ret=-1 errno=%s", what, t_errname(b->err));
	else
		t_bytes(what, b->buf, b->ret);
}

struct writer_arg {
	int fd;
	const char *msg;
};

static void *write_once(void *p)
{
	struct writer_arg *w = p;
	return (void *)(long)write(w->fd, w->msg, strlen(w->msg));
}

static int dg_fd;
static void *short_lived(void *p)
{
	int i = (int)(long)p;
	char msg[16];
	int len = snprintf(msg, sizeof(msg), "%d", i);
	return (void *)(long)(send(dg_fd, msg, (size_t)len, 0) == len);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static void on_usr1(int sig)
{
	(void)sig;
}

int main(void)
{
	t_expect("served_ring>0");
	t_expect("rings_created>1");
	signal(SIGPIPE, SIG_IGN);

	t_note("== %d thread pairs ping-pong %d messages each, all at once", PAIRS, ROUNDS);
	struct pingpong a[PAIRS], b[PAIRS];
	pthread_t ta[PAIRS], tb[PAIRS];
	for (int i = 0; i < PAIRS; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		a[i] = (struct pingpong){ sv[0], 0, 0, 0 };
		b[i] = (struct pingpong){ sv[1], 0, 0, 0 };
	}
	for (int i = 0; i < PAIRS; i++) {
		pthread_create(&tb[i], NULL, echoer, &b[i]);
		pthread_create(&ta[i], NULL, pinger, &a[i]);
	}
	for (int i = 0; i < PAIRS; i++) {
		pthread_join(ta[i], NULL);
		shutdown(a[i].fd, SHUT_WR);
		pthread_join(tb[i], NULL);
		t_note("pair %d: pinger ok=%d bad=%d hash=%016llx, echoer echoed %d bad=%d", i, a[i].ok, a[i].bad,
		       (unsigned long long)a[i].hash, b[i].ok, b[i].bad);
		close(a[i].fd);
		close(b[i].fd);
	}

	t_note("== a thread blocked in read(), another thread writes");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	struct blocked r1 = { .fd = sv[0] };
	pthread_t tr, tw;
	pthread_create(&tr, NULL, block_read, &r1);
	wait_blocked_thread(&r1);
	struct writer_arg wa = { sv[1], "from the writer thread" };
	pthread_create(&tw, NULL, write_once, &wa);
	void *wret;
	pthread_join(tw, &wret);
	pthread_join(tr, NULL);
	t_note("writer thread: write=%ld", (long)wret);
	show_blocked("reader thread", &r1);
	int p[2];
	if (pipe(p))
		t_die("pipe");
	r1 = (struct blocked){ .fd = p[0] };
	pthread_create(&tr, NULL, block_read, &r1);
	wait_blocked_thread(&r1);
	TE("main writes the pipe", write(p[1], "pipe from main", 14));
	pthread_join(tr, NULL);
	show_blocked("pipe reader thread", &r1);

	t_note("== two threads blocked on one datagram socket");
	int dv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dv))
		t_die("socketpair dgram");
	struct blocked x = { .fd = dv[0] }, y = { .fd = dv[0] };
	pthread_t tx, ty;
	pthread_create(&tx, NULL, block_read, &x);
	pthread_create(&ty, NULL, block_read, &y);
	wait_blocked_thread(&x);
	wait_blocked_thread(&y);
	TE("send A", send(dv[1], "A", 1, 0));
	TE("send B", send(dv[1], "B", 1, 0));
	pthread_join(tx, NULL);
	pthread_join(ty, NULL);
	char got[3] = { x.ret == 1 ? x.buf[0] : '?', y.ret == 1 ? y.buf[0] : '?', 0 };
	if (got[0] > got[1]) {
		char c = got[0];
		got[0] = got[1];
		got[1] = c;
	}
	t_note("the two readers got (sorted): %s", got);

	t_note("== a signal aimed at one of two blocked threads");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART */
	int s2[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s2))
		t_die("socketpair");
	x = (struct blocked){ .fd = sv[0] };
	y = (struct blocked){ .fd = s2[0] };
	pthread_create(&tx, NULL, block_read, &x);
	pthread_create(&ty, NULL, block_read, &y);
	wait_blocked_thread(&x);
	wait_blocked_thread(&y);
	pthread_kill(tx, SIGUSR1);
	pthread_join(tx, NULL);
	show_blocked("signalled thread", &x);
	t_wait_blocked_task(getpid(), y.tid);
	TE("write to the other thread's socket", write(s2[1], "still waiting", 13));
	pthread_join(ty, NULL);
	show_blocked("other thread", &y);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	x = (struct blocked){ .fd = sv[0] };
	pthread_create(&tx, NULL, block_read, &x);
	wait_blocked_thread(&x);
	pthread_kill(tx, SIGUSR1);
	t_wait_blocked_task(getpid(), x.tid);
	TE("write after the SA_RESTART signal", write(sv[1], "restarted", 9));
	pthread_join(tx, NULL);
	show_blocked("signalled thread (SA_RESTART)", &x);

	t_note("== 200 short-lived threads, one write each");
	int dd[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dd))
		t_die("socketpair dgram");
	int rcv = 1 << 20;
	setsockopt(dd[1], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	dg_fd = dd[0];
	int sent = 0;
	for (int batch = 0; batch < 200; batch += 25) {
		pthread_t t[25];
		for (int i = 0; i < 25; i++)
			pthread_create(&t[i], NULL, short_lived, (void *)(long)(batch + i));
		for (int i = 0; i < 25; i++) {
			void *r;
			pthread_join(t[i], &r);
			sent += (int)(long)r;
		}
		/* Keep the receive queue short. */
		char buf[16];
		for (int i = 0; i < 25; i++) {
			static int seen[200];
			static int nseen;
			ssize_t n = recv(dd[1], buf, sizeof(buf) - 1, 0);
			if (n > 0) {
				buf[n] = 0;
				seen[nseen++] = atoi(buf);
			}
			if (batch + i == 199) {
				qsort(seen, (size_t)nseen, sizeof(int), cmp_int);
				int once = nseen == 200;
				for (int k = 0; k < nseen && once; k++)
					once = seen[k] == k;
				t_note("sent %d, received %d, each number exactly once: %s", sent, nseen,
				       once ? "yes" : "no");
			}
		}
	}
	TE("nothing left", recv(dd[1], (char[8]){ 0 }, 8, MSG_DONTWAIT));
	return 0;
}
