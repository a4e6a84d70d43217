/* Threads sharing fds (threads.c covers threads on fds of their own):
 *  - an acceptor thread handing connections to a pool of worker threads
 *    through a pipe, while client threads connect, send and read replies;
 *  - two threads writing to one blocking unix stream socket: every write
 *    arrives whole and each writer's order is kept;
 *  - close() in one thread while another is blocked in read() on that fd,
 *    and while another sleeps in epoll_wait() on it (the kernel keeps the
 *    read going on the still-referenced file, and drops the fd from the
 *    epoll set);
 *  - a thread that writes to a nonblocking TCP socket (write-behind in
 *    batch mode) and exits without another call: the peer gets every byte;
 *  - epoll_ctl ADD/MOD from another thread while a thread sleeps in
 *    epoll_wait(): it wakes exactly when the kernel would wake it.
 * Threads record results; the main thread prints them in a fixed order. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "tcp_peer.h"

/* ---- a connected TCP pair ------------------------------------------------ */
static int listener, port;

static void tcp_pair(int out[2])
{
	tp_pair(listener, port, out);
}

/* ---- acceptor + worker pool ------------------------------------------------ */
#define POOL 3
#define CLIENTS 4
#define PER_CLIENT 10
static int pool_listener, pool_port;
static int handoff[2]; /* acceptor -> workers: fd numbers */
static int served[POOL];

static void *acceptor(void *arg)
{
	(void)arg;
	for (int i = 0; i < CLIENTS * PER_CLIENT; i++) {
		int c = accept(pool_listener, NULL, NULL);
		if (c < 0 || write(handoff[1], &c, sizeof(c)) != sizeof(c))
			return (void *)1L;
	}
	for (int i = 0; i < POOL; i++) {
		int stop = -1;
		if (write(handoff[1], &stop, sizeof(stop)) != sizeof(stop))
			return (void *)2L;
	}
	return NULL;
}

static void *pool_worker(void *arg)
{
	int me = (int)(long)arg;
	for (;;) {
		int c;
		if (read(handoff[0], &c, sizeof(c)) != sizeof(c) || c < 0)
			break;
		char req[64], rep[80];
		ssize_t n = recv(c, req, sizeof(req) - 1, 0);
		if (n > 0) {
			req[n] = 0;
			int len = snprintf(rep, sizeof(rep), "reply to [%s]", req);
			if (send(c, rep, (size_t)len, 0) == len)
				served[me]++;
		}
		close(c);
	}
	return NULL;
}

static void *pool_client(void *arg)
{
	int me = (int)(long)arg;
	long good = 0;
	for (int i = 0; i < PER_CLIENT; i++) {
		int s = tp_connect(pool_port);
		if (s < 0)
			continue;
		char req[32], want[80], got[80];
		int len = snprintf(req, sizeof(req), "client %d req %d", me, i);
		int wl = snprintf(want, sizeof(want), "reply to [%s]", req);
		if (write(s, req, (size_t)len) == len) {
			size_t have = 0;
			ssize_t n;
			while (have < sizeof(got) && (n = read(s, got + have, sizeof(got) - have)) > 0)
				have += (size_t)n;
			if ((int)have == wl && !memcmp(got, want, have))
				good++;
		}
		close(s);
	}
	return (void *)good;
}

/* ---- two writers on one socket -------------------------------------------- */
#define FRAME 100
#define FRAMES 3000
static int shared_w;

static void *frame_writer(void *arg)
{
	char tag = (char)(long)arg;
	char f[FRAME];
	long bad = 0;
	for (int i = 0; i < FRAMES; i++) {
		memset(f, tag, sizeof(f));
		snprintf(f + 1, 12, "%010d", i);
		f[11] = tag;
		if (write(shared_w, f, sizeof(f)) != (ssize_t)sizeof(f))
			bad++;
	}
	return (void *)bad;
}

/* ---- blocked calls ----------------------------------------------------------- */
struct blocked {
	int fd;
	pid_t tid;
	int done;
	long ret;
	int err;
	char buf[64];
	struct epoll_event ev[4];
	int timeout;
};

static void *block_read(void *p)
{
	struct blocked *b = p;
	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	errno = 0;
	b->ret = read(b->fd, b->buf, sizeof(b->buf));
	b->err = errno;
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *block_epoll(void *p)
{
	struct blocked *b = p;
	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	errno = 0;
	b->ret = epoll_wait(b->fd, b->ev, 4, b->timeout);
	b->err = errno;
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void wait_blocked(struct blocked *b)
{
	while (!__atomic_load_n(&b->tid, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	t_wait_blocked_task(getpid(), b->tid);
}

static void show_read(const char *what, struct blocked *b)
{
	if (b->ret < 0)
		t_note("%s: ret=-1 errno=%s", what, t_errname(b->err));
	else
		t_bytes(what, b->buf, b->ret);
}

static void show_epoll(const char *what, struct blocked *b, const int *fds, int nfds)
{
	if (b->ret < 0) {
		t_note("%s: ret=-1 errno=%s", what, t_errname(b->err));
		return;
	}
	printf("%s: ret=%ld", what, b->ret);
	for (long i = 0; i < b->ret; i++) {
		int which = -1;
		for (int k = 0; k < nfds; k++)
			if (b->ev[i].data.fd == fds[k])
				which = k;
		printf(" [fd#%d events=0x%x]", which, b->ev[i].events);
	}
	printf("\n");
	fflush(stdout);
}

/* ---- a thread that exits with bytes queued ---------------------------------- */
struct exiter {
	int fd;
	int n, size;
	uint64_t hash;
	long short_writes;
};

static void exiter_writes(struct exiter *x)
{
	char buf[512];
	uint64_t h = T_FNV_INIT;
	for (int i = 0; i < x->n; i++) {
		for (int k = 0; k < x->size; k++)
			buf[k] = (char)('a' + (i + k) % 26);
		ssize_t w = write(x->fd, buf, (size_t)x->size);
		if (w != x->size)
			x->short_writes++;
		if (w > 0)
			h = t_fnv(h, buf, (size_t)w);
	}
	__atomic_store_n(&x->hash, h, __ATOMIC_RELEASE);
}

static void *exiter_return(void *p)
{
	exiter_writes(p);
	return NULL;
}

static void *exiter_pthread_exit(void *p)
{
	exiter_writes(p);
	pthread_exit(NULL);
}

static void read_all_check(const char *what, int fd, struct exiter *x)
{
	long want = (long)x->n * x->size, have = 0;
	uint64_t h = T_FNV_INIT;
	char buf[4096];
	while (have < want) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		h = t_fnv(h, buf, (size_t)n);
		have += n;
	}
	t_note("%s: writer short writes %ld, peer got %ld of %ld bytes, same bytes: %s", what,
	       x->short_writes, have, want, h == x->hash ? "yes" : "no");
}

static void epoll_ctl_section(const char *kind, int is_tcp)
{
	t_note("== epoll_ctl from another thread while one sleeps in epoll_wait (%s)", kind);
	int a[2], b[2];
	if (is_tcp) {
		tcp_pair(a);
		tcp_pair(b);
	} else if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) || socketpair(AF_UNIX, SOCK_STREAM, 0, b)) {
		t_die("socketpair");
	}
	int fds[2] = { a[1], b[1] };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	pthread_t t;

	/* ADD of an fd that is already readable wakes the sleeper. */
	TE("peer writes to fd#0", write(a[0], "ready before ADD", 16));
	if (is_tcp)
		tp_wait_acked(a[0]);
	struct blocked w = { .fd = ep, .timeout = 5000 };
	pthread_create(&t, NULL, block_epoll, &w);
	wait_blocked(&w);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = a[1] };
	TE("ADD fd#0 EPOLLIN (readable)", epoll_ctl(ep, EPOLL_CTL_ADD, a[1], &ev));
	pthread_join(t, NULL);
	show_epoll("sleeper woke", &w, fds, 2);
	char buf[64];
	long n = T("read fd#0", read(a[1], buf, sizeof(buf)));
	t_bytes("  got", buf, n > 0 ? n : 0);

	/* ADD of an idle fd: no wake-up until its peer writes. */
	w = (struct blocked){ .fd = ep, .timeout = 5000 };
	pthread_create(&t, NULL, block_epoll, &w);
	wait_blocked(&w);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = b[1] };
	TE("ADD fd#1 EPOLLIN (idle)", epoll_ctl(ep, EPOLL_CTL_ADD, b[1], &ev));
	t_sleep_ms(100);
	t_note("sleeper still asleep after the ADD: %s", tp_yesno(!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)));
	TE("peer writes to fd#1", write(b[0], "now", 3));
	pthread_join(t, NULL);
	show_epoll("sleeper woke", &w, fds, 2);
	n = T("read fd#1", read(b[1], buf, sizeof(buf)));
	t_bytes("  got", buf, n > 0 ? n : 0);

	/* MOD: fd#0 becomes readable while registered for EPOLLOUT only
	 * (already reported? EPOLLOUT is level-triggered: use EPOLLET so the
	 * sleeper sleeps), then MOD to EPOLLIN wakes it. */
	ev = (struct epoll_event){ .events = EPOLLOUT | EPOLLET, .data.fd = a[1] };
	TE("MOD fd#0 EPOLLOUT|EPOLLET", epoll_ctl(ep, EPOLL_CTL_MOD, a[1], &ev));
	struct epoll_event drain[4];
	T("epoll_wait(0) takes the edge", epoll_wait(ep, drain, 4, 0));
	TE("peer writes to fd#0", write(a[0], "for MOD", 7));
	if (is_tcp)
		tp_wait_acked(a[0]);
	w = (struct blocked){ .fd = ep, .timeout = 300 };
	pthread_create(&t, NULL, block_epoll, &w);
	pthread_join(t, NULL);
	show_epoll("wait with fd#0 readable but registered EPOLLOUT|EPOLLET", &w, fds, 2);
	w = (struct blocked){ .fd = ep, .timeout = 5000 };
	pthread_create(&t, NULL, block_epoll, &w);
	wait_blocked(&w);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = a[1] };
	TE("MOD fd#0 EPOLLIN", epoll_ctl(ep, EPOLL_CTL_MOD, a[1], &ev));
	pthread_join(t, NULL);
	show_epoll("sleeper woke", &w, fds, 2);
	n = T("read fd#0", read(a[1], buf, sizeof(buf)));
	t_bytes("  got", buf, n > 0 ? n : 0);

	/* DEL from another thread: the sleeper is not woken by the DEL, and
	 * not by data on the removed fd. */
	w = (struct blocked){ .fd = ep, .timeout = 400 };
	pthread_create(&t, NULL, block_epoll, &w);
	wait_blocked(&w);
	TE("DEL fd#0", epoll_ctl(ep, EPOLL_CTL_DEL, a[1], NULL));
	TE("peer writes to fd#0", write(a[0], "after DEL", 9));
	pthread_join(t, NULL);
	show_epoll("sleeper (timeout 400 ms)", &w, fds, 2);
	n = T("read fd#0", read(a[1], buf, sizeof(buf)));
	t_bytes("  got", buf, n > 0 ? n : 0);

	close(ep);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

static void close_while_blocked(const char *kind, int is_tcp)
{
	t_note("== close() in one thread while another is blocked in read() (%s)", kind);
	int sv[2];
	if (is_tcp)
		tcp_pair(sv);
	else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	struct blocked b = { .fd = sv[1] };
	pthread_t t;
	pthread_create(&t, NULL, block_read, &b);
	wait_blocked(&b);
	TE("close the reader's fd", close(sv[1]));
	t_sleep_ms(100);
	t_note("reader still blocked after the close: %s", tp_yesno(!__atomic_load_n(&b.done, __ATOMIC_ACQUIRE)));
	TE("peer writes", write(sv[0], "after the close", 15));
	pthread_join(t, NULL);
	show_read("reader", &b);
	/* Same, ended by the peer closing. */
	if (is_tcp)
		tcp_pair(sv);
	else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	b = (struct blocked){ .fd = sv[1] };
	pthread_create(&t, NULL, block_read, &b);
	wait_blocked(&b);
	TE("close the reader's fd", close(sv[1]));
	t_sleep_ms(50);
	TE("peer closes", close(sv[0]));
	pthread_join(t, NULL);
	show_read("reader", &b);

	t_note("== close() in one thread while another sleeps in epoll_wait() on it (%s)", kind);
	if (is_tcp)
		tcp_pair(sv);
	else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = sv[1] };
	TE("ADD", epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
	b = (struct blocked){ .fd = ep, .timeout = 400 };
	pthread_create(&t, NULL, block_epoll, &b);
	wait_blocked(&b);
	TE("close the watched fd", close(sv[1]));
	TE("peer writes", write(sv[0], "x", 1));
	pthread_join(t, NULL);
	show_epoll("epoll_wait (timeout 400 ms)", &b, sv + 1, 1);
	/* A dup keeps the file in the set: the closed number is still reported. */
	if (is_tcp)
		tcp_pair(sv);
	else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	int keep = dup(sv[1]);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = sv[1] };
	TE("ADD", epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
	b = (struct blocked){ .fd = ep, .timeout = 5000 };
	pthread_create(&t, NULL, block_epoll, &b);
	wait_blocked(&b);
	int closed = sv[1];
	TE("close the watched number (a dup remains)", close(sv[1]));
	TE("peer writes", write(sv[0], "y", 1));
	pthread_join(t, NULL);
	show_epoll("epoll_wait", &b, &closed, 1);
	char c;
	T("read through the dup", read(keep, &c, 1));
	close(keep);
	close(sv[0]);
	close(ep);
}

int main(void)
{
	t_expect("served_ring>0");
	t_expect("rings_created>2");
	signal(SIGPIPE, SIG_IGN);
	listener = tp_listen(&port, 0, 64);

	t_note("== acceptor thread + %d pool workers, %d client threads x %d requests", POOL, CLIENTS,
	       PER_CLIENT);
	pool_listener = tp_listen(&pool_port, 0, 64);
	if (pipe(handoff))
		t_die("pipe");
	pthread_t ta, tw[POOL], tc[CLIENTS];
	pthread_create(&ta, NULL, acceptor, NULL);
	for (int i = 0; i < POOL; i++)
		pthread_create(&tw[i], NULL, pool_worker, (void *)(long)i);
	for (int i = 0; i < CLIENTS; i++)
		pthread_create(&tc[i], NULL, pool_client, (void *)(long)i);
	long good = 0;
	for (int i = 0; i < CLIENTS; i++) {
		void *r;
		pthread_join(tc[i], &r);
		good += (long)r;
	}
	void *ar;
	pthread_join(ta, &ar);
	int total = 0;
	for (int i = 0; i < POOL; i++) {
		pthread_join(tw[i], NULL);
		total += served[i];
	}
	t_note("acceptor: %s; replies correct %ld of %d; served by the pool %d", ar ? "failed" : "ok",
	       good, CLIENTS * PER_CLIENT, total);
	close(handoff[0]);
	close(handoff[1]);
	close(pool_listener);

	t_note("== two threads writing %d-byte frames to one blocking unix stream socket", FRAME);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	shared_w = sv[0];
	pthread_t w1, w2;
	pthread_create(&w1, NULL, frame_writer, (void *)(long)'A');
	pthread_create(&w2, NULL, frame_writer, (void *)(long)'B');
	{
		static char all[2 * FRAMES * FRAME];
		size_t have = 0;
		while (have < sizeof(all)) {
			ssize_t n = read(sv[1], all + have, sizeof(all) - have);
			if (n <= 0)
				break;
			have += (size_t)n;
		}
		void *b1, *b2;
		pthread_join(w1, &b1);
		pthread_join(w2, &b2);
		int whole = 0, torn = 0, next[2] = { 0, 0 }, order_ok = 1;
		for (size_t off = 0; off + FRAME <= have; off += FRAME) {
			char *f = all + off;
			char tag = f[0];
			int same = (tag == 'A' || tag == 'B') && f[11] == tag && f[FRAME - 1] == tag;
			for (int k = 12; k < FRAME && same; k++)
				same = f[k] == tag;
			if (!same) {
				torn++;
				continue;
			}
			whole++;
			int seq = atoi(f + 1);
			if (seq != next[tag - 'A']++)
				order_ok = 0;
		}
		t_note("read %zu bytes: whole frames %d, torn %d, each writer's order kept: %s (A %d, B %d); "
		       "short writes %ld",
		       have, whole, torn, tp_yesno(order_ok), next[0], next[1], (long)b1 + (long)b2);
	}
	close(sv[0]);
	close(sv[1]);

	close_while_blocked("unix stream", 0);
	close_while_blocked("TCP", 1);

	t_note("== threads that exit right after writing to a nonblocking TCP socket");
	{
		struct {
			const char *what;
			void *(*fn)(void *);
			int detach;
		} cases[] = {
			{ "return from the thread", exiter_return, 0 },
			{ "pthread_exit()", exiter_pthread_exit, 0 },
			{ "detached, never joined", exiter_return, 1 },
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			int p[2];
			tcp_pair(p);
			tp_set_nonblock(p[0], 1);
			struct exiter x = { .fd = p[0], .n = 40, .size = 100 };
			pthread_t t;
			pthread_create(&t, NULL, cases[i].fn, &x);
			if (cases[i].detach) {
				pthread_detach(t);
				/* The peer (this thread) just reads; the writer's
				 * last call was its last write. */
				long want = (long)x.n * x.size, have = 0;
				uint64_t h = T_FNV_INIT;
				char buf[4096];
				while (have < want) {
					ssize_t n = read(p[1], buf, sizeof(buf));
					if (n <= 0)
						break;
					h = t_fnv(h, buf, (size_t)n);
					have += n;
				}
				/* x.hash is final once every byte was read. */
				while (!__atomic_load_n(&x.hash, __ATOMIC_ACQUIRE))
					t_sleep_ms(1);
				t_note("%s: peer got %ld of %ld bytes, same bytes: %s", cases[i].what, have,
				       want, h == x.hash ? "yes" : "no");
			} else {
				pthread_join(t, NULL);
				read_all_check(cases[i].what, p[1], &x);
			}
			close(p[0]);
			close(p[1]);
		}
	}

	epoll_ctl_section("unix stream", 0);
	epoll_ctl_section("TCP", 1);
	return 0;
}
