/* Threads that leave state on shared sockets behind them and exit while
 * other threads go on using those sockets. Under the shim the state names
 * the exited thread's ring (the armed or paused receive, the queued send,
 * the write-behind watch), so this is about ring lifetime: a ring must not
 * be freed while fd state or another thread still uses it.
 *  - paused: a thread's epoll_wait arms the receive of a socket whose peer
 *    sends more than the stash takes (the receive pauses), and the thread
 *    exits; the main thread then reads every byte (its reads resume the
 *    receive the exited thread had armed);
 *  - acceptor: a thread accepts on a listener (the shim accepts ahead on
 *    its ring) and exits; the main thread accepts the next connection;
 *  - loop: a thread's epoll_wait on an instance with a pipe and a TCP
 *    socket, then the thread exits; the main thread's epoll_wait on the
 *    same instance sees the pipe become readable;
 *  - churn: short-lived threads each arm receives (epoll_wait on every
 *    socket) and write to every connection with nonblocking writes
 *    (write-behind), then exit at once, while one long-lived reader per
 *    connection reads (nonblocking, polling in between): its reads lock
 *    the ring the receive was armed on. Every byte arrives, in order.
 * Results are printed by the main thread in a fixed order. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "tcp_peer.h"

static int listener, port;

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + i / 251);
}

/* ---- paused -------------------------------------------------------------- */
#define PAUSED_BYTES (1024 * 1024)
static int paused_pair[2];

static void *paused_writer(void *arg)
{
	(void)arg;
	static unsigned char buf[PAUSED_BYTES];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i);
	size_t off = 0;
	while (off < sizeof(buf)) {
		ssize_t n = write(paused_pair[0], buf + off, sizeof(buf) - off);
		if (n <= 0)
			return (void *)1L;
		off += (size_t)n;
	}
	return NULL;
}

static void *paused_armer(void *arg)
{
	(void)arg;
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = paused_pair[1] };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, paused_pair[1], &ev))
		return (void *)1L;
	/* Wake up a few times without reading: the receive armed here
	 * stashes what arrives until the stash is full. */
	long woke = 0;
	for (int i = 0; i < 20; i++) {
		struct epoll_event out;
		if (epoll_wait(ep, &out, 1, 10) == 1)
			woke = 1;
	}
	close(ep);
	return (void *)woke;
}

static void test_paused(void)
{
	tp_pair(listener, port, paused_pair);
	pthread_t w, a;
	void *woke;
	pthread_create(&w, NULL, paused_writer, NULL);
	pthread_create(&a, NULL, paused_armer, NULL);
	pthread_join(a, &woke);
	printf("paused: armer saw EPOLLIN: %s\n", tp_yesno(woke != NULL));
	static unsigned char got[PAUSED_BYTES];
	size_t off = 0;
	while (off < sizeof(got)) {
		ssize_t n = read(paused_pair[1], got + off, sizeof(got) - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	size_t bad = 0;
	for (size_t i = 0; i < off; i++)
		bad += got[i] != pattern(i);
	void *wr;
	pthread_join(w, &wr);
	printf("paused: read %zu bytes, %zu wrong, writer %s\n", off, bad,
	       wr ? "failed" : "ok");
	close(paused_pair[0]);
	close(paused_pair[1]);
}

/* ---- acceptor ------------------------------------------------------------ */
static int acc_listener, acc_port;

static void *acceptor_once(void *arg)
{
	(void)arg;
	int c = accept(acc_listener, NULL, NULL);
	if (c < 0)
		return (void *)1L;
	close(c);
	return NULL;
}

static void test_acceptor(void)
{
	acc_listener = tp_listen(&acc_port, 0, 16);
	int c1 = tp_connect(acc_port);
	pthread_t t;
	void *res;
	pthread_create(&t, NULL, acceptor_once, NULL);
	pthread_join(t, &res);
	printf("acceptor: thread accepted: %s\n", tp_yesno(res == NULL));
	/* The listener's accept-ahead lived on the exited thread's ring. */
	int c2 = tp_connect(acc_port);
	int a = accept(acc_listener, NULL, NULL);
	printf("acceptor: main accepted: %s\n", tp_yesno(a >= 0));
	char x = 'x';
	printf("acceptor: write/read: %s\n",
	       tp_yesno(write(c2, &x, 1) == 1 && read(a, &x, 1) == 1 && x == 'x'));
	close(a);
	close(c1);
	close(c2);
	close(acc_listener);
}

/* ---- an event loop thread that exits ------------------------------------- */
static int loop_ep;

static void *loop_once(void *arg)
{
	(void)arg;
	struct epoll_event out;
	return (void *)(long)epoll_wait(loop_ep, &out, 1, 10);
}

static void test_loop_exit(void)
{
	/* A pipe (the kernel watches it for the instance) next to a TCP
	 * socket (the shim does): the instance polls the real epoll on the
	 * waiting thread's ring. */
	int pp[2], tp[2];
	if (pipe(pp))
		t_die("pipe");
	tp_pair(listener, port, tp);
	loop_ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = pp[0] };
	epoll_ctl(loop_ep, EPOLL_CTL_ADD, pp[0], &ev);
	ev.data.fd = tp[1];
	epoll_ctl(loop_ep, EPOLL_CTL_ADD, tp[1], &ev);
	pthread_t t;
	void *res;
	pthread_create(&t, NULL, loop_once, NULL);
	pthread_join(t, &res);
	printf("loop: thread's epoll_wait: %ld\n", (long)res);
	if (write(pp[1], "x", 1) != 1)
		t_die("write");
	struct epoll_event out;
	int n = epoll_wait(loop_ep, &out, 1, 1000);
	printf("loop: main's epoll_wait after a pipe write: %d, fd is the pipe: %s\n", n,
	       tp_yesno(n == 1 && out.data.fd == pp[0]));
	close(loop_ep);
	close(pp[0]);
	close(pp[1]);
	close(tp[0]);
	close(tp[1]);
}

/* ---- churn --------------------------------------------------------------- */
#define PAIRS 4
#define ROUNDS 150
#define CHUNK 3000
static int churn[PAIRS][2]; /* [0] written by the short threads, [1] read */
static size_t churn_got[PAIRS], churn_bad[PAIRS];

static void *churn_reader(void *arg)
{
	int p = (int)(long)arg;
	size_t want = (size_t)ROUNDS * CHUNK, off = 0;
	unsigned char buf[8192];
	while (off < want) {
		ssize_t n = read(churn[p][1], buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN) {
			/* Polled with a short timeout: this is about the
			 * rings the reads lock, not about wake-ups. */
			struct pollfd pfd = { .fd = churn[p][1], .events = POLLIN };
			poll(&pfd, 1, 5);
			continue;
		}
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			churn_bad[p] += buf[i] != pattern(off + (size_t)i);
		off += (size_t)n;
	}
	churn_got[p] = off;
	return NULL;
}

static void *churn_thread(void *arg)
{
	int round = (int)(long)arg;
	int ep = epoll_create1(0);
	for (int p = 0; p < PAIRS; p++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = p };
		epoll_ctl(ep, EPOLL_CTL_ADD, churn[p][1], &ev);
	}
	struct epoll_event out[PAIRS];
	epoll_wait(ep, out, PAIRS, 0);
	close(ep);
	unsigned char buf[CHUNK];
	for (int p = 0; p < PAIRS; p++) {
		for (size_t i = 0; i < CHUNK; i++)
			buf[i] = pattern((size_t)round * CHUNK + i);
		size_t off = 0;
		while (off < CHUNK) {
			ssize_t n = write(churn[p][0], buf + off, CHUNK - off);
			if (n > 0) {
				off += (size_t)n;
			} else if (n < 0 && errno == EAGAIN) {
				struct pollfd pfd = { .fd = churn[p][0], .events = POLLOUT };
				poll(&pfd, 1, 1000);
			} else {
				return (void *)1L;
			}
		}
	}
	return NULL; /* exits right after the writes, with no other call */
}

static void test_churn(void)
{
	pthread_t readers[PAIRS];
	for (int p = 0; p < PAIRS; p++) {
		tp_pair(listener, port, churn[p]);
		tp_set_nonblock(churn[p][0], 1);
		tp_set_nonblock(churn[p][1], 1);
		pthread_create(&readers[p], NULL, churn_reader, (void *)(long)p);
	}
	long failed = 0;
	for (int round = 0; round < ROUNDS; round++) {
		pthread_t t;
		void *res;
		pthread_create(&t, NULL, churn_thread, (void *)(long)round);
		pthread_join(t, &res);
		failed += res != NULL;
	}
	for (int p = 0; p < PAIRS; p++) {
		pthread_join(readers[p], NULL);
		printf("churn pair %d: read %zu of %d bytes, %zu wrong\n", p, churn_got[p],
		       ROUNDS * CHUNK, churn_bad[p]);
		close(churn[p][0]);
		close(churn[p][1]);
	}
	printf("churn: %ld writer threads failed\n", failed);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	listener = tp_listen(&port, 0, 16);
	test_paused();
	test_acceptor();
	test_loop_exit();
	test_churn();
	close(listener);
	return 0;
}
