/* fd numbers reused while the old connection still has bytes in flight.
 * First step by step, once per way of closing: the old connection has
 * unread bytes received and echoed bytes queued when it is closed, the next
 * connection gets the same number and must see only its own bytes and
 * events, and both peers must see only their own. Then a stress run: the
 * server (an epoll loop) closes every connection in the middle of its
 * stream: with bytes still arriving, unread bytes received, echoed bytes
 * just written, in four ways (close; shutdown then close; SO_LINGER 0; DEL
 * then close). The next accepted connections get the same numbers. Every
 * connection's bytes are its own pattern: the server checks what it reads,
 * the client checks what comes back (a prefix of what it sent, never another
 * connection's bytes), and the server counts events that name a connection
 * it already closed (epoll data carries a generation). 8 clients x 40
 * connections, a few at a time, so numbers come round again and again. */
#include <pthread.h>
#include <sys/epoll.h>

#include "tcp_peer.h"

#define CLIENTS 8
#define ROUNDS 40
#define HDR 16
#define LISTENER UINT64_MAX

static unsigned char pat(unsigned id, size_t k)
{
	if (k < HDR) {
		char h[HDR + 1];
		snprintf(h, sizeof(h), "ID:%011u\n", id);
		return (unsigned char)h[k];
	}
	uint32_t x = id * 2654435761u + (uint32_t)k * 40503u;
	return (unsigned char)(x >> 13 ^ x >> 24);
}

static size_t stream_len(unsigned id)
{
	return HDR + 20000 + (id % 5) * 10000;
}

/* Where the server closes: somewhere in the first half of the stream. */
static size_t close_at(unsigned id)
{
	return HDR + 1 + (id * 7919u) % (stream_len(id) / 2);
}

/* ---- step by step -------------------------------------------------------- */

static const char *const hows[] = { "close", "shutdown(SHUT_WR) then close",
				    "SO_LINGER 0 then close", "DEL then close" };

static void rd(const char *label, int fd)
{
	char buf[256];
	long r = TE(label, read(fd, buf, sizeof(buf)));
	if (r > 0)
		t_bytes("  got", buf, r);
}

static void step_by_step(int l, int port, int how)
{
	t_note("== old connection ended by %s", hows[how]);
	int ep = epoll_create1(0);
	struct tp_peer p0 = tp_peer_start(port);
	int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	TE("ADD old IN|RDHUP data=1", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN | EPOLLRDHUP, 1));
	T("old peer sends 12", tp_sends(&p0, "old-bytes-12"));
	tp_wait("wait", ep, 4, 5000);
	char buf[8];
	long n = TE("read 4 of them", read(a, buf, 4));
	t_bytes("  got", buf, n);
	T("old peer sends 5 more", tp_sends(&p0, "more!"));
	struct tp_peer p1 = tp_peer_start(port); /* waits in the backlog */
	TE("write 4 (echo), then at once:", write(a, buf, 4));
	switch (how) {
	case 1:
		TE("shutdown SHUT_WR", shutdown(a, SHUT_WR));
		break;
	case 2: {
		struct linger lg = { 1, 0 };
		TE("SO_LINGER 0", setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
		break;
	}
	case 3:
		TE("DEL", epoll_ctl(ep, EPOLL_CTL_DEL, a, NULL));
		break;
	}
	TE("close old", close(a));
	int b = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	t_note("new connection got the old number: %s", tp_yesno(b == a));
	tp_wait("wait, nothing registered", ep, 4, 0);
	TE("ADD new IN|RDHUP data=2", tp_ctl(ep, EPOLL_CTL_ADD, b, EPOLLIN | EPOLLRDHUP, 2));
	tp_wait("wait, new connection idle", ep, 4, 0);
	TE("read new, nothing yet", read(b, buf, sizeof(buf)));
	T("new peer sends 3", tp_sends(&p1, "new"));
	tp_wait("wait", ep, 4, 5000);
	rd("read new", b);
	TE("write 5 to new", write(b, "hello", 5));
	tp_read_show(&p1, "new peer reads 5", 5);
	tp_read_eof_show(&p0, "old peer reads to the end");
	tp_wait("wait, new connection idle", ep, 4, 0);
	T("new peer sends 3", tp_sends(&p1, "end"));
	T("new peer closes", tp_op(&p1, TP_CLOSE));
	tp_wait("wait", ep, 4, 5000);
	rd("read new", b);
	rd("read new", b);
	TE("close new", close(b));
	close(ep);
	t_note("old peer: %s", t_status(tp_peer_end(&p0)));
	t_note("new peer: %s", t_status(tp_peer_end(&p1)));
}

/* ---- stress: client ---------------------------------------------------------- */

struct wr {
	int fd;
	unsigned id;
};

static void *writer(void *p)
{
	struct wr *w = p;
	char buf[1000];
	size_t n = stream_len(w->id);
	for (size_t off = 0; off < n;) {
		size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = (char)pat(w->id, off + i);
		ssize_t r = write(w->fd, buf, k);
		if (r <= 0)
			break; /* the server closed: EPIPE or ECONNRESET */
		off += (size_t)r;
	}
	return NULL;
}

/* One connection: true if everything that came back is a prefix of what
 * was sent. */
static int one_conn(int port, unsigned id)
{
	int s = tp_connect(port);
	if (s < 0)
		return 0;
	struct wr w = { s, id };
	pthread_t t;
	if (pthread_create(&t, NULL, writer, &w))
		_exit(90);
	char buf[4096];
	size_t off = 0;
	int ok = 1;
	for (;;) {
		ssize_t r = read(s, buf, sizeof(buf));
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if ((unsigned char)buf[i] != pat(id, off + (size_t)i))
				ok = 0;
		off += (size_t)r;
	}
	shutdown(s, SHUT_RDWR); /* unblocks the writer if it still waits */
	pthread_join(t, NULL);
	close(s);
	return ok && off <= stream_len(id);
}

static void client(int c, int port)
{
	signal(SIGPIPE, SIG_IGN);
	int bad = 0;
	for (int r = 0; r < ROUNDS; r++)
		bad += !one_conn(port, (unsigned)(c * 1000 + r));
	_exit(bad);
}

/* ---- stress: server ------------------------------------------------------------- */

struct conn {
	int fd;
	uint32_t gen;
	unsigned id;
	size_t got; /* stream bytes read */
	char hdr[HDR + 1];
	int bad;
};

static struct conn *conns[1024];
static uint32_t gens[1024];
static long accepted, closed_n, bad_bytes, early_end, stale_events;
static int max_fd;

static void conn_close(int ep, struct conn *c, int how)
{
	switch (how) {
	case 1:
		shutdown(c->fd, SHUT_WR);
		break;
	case 2: {
		struct linger lg = { 1, 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		break;
	}
	case 3:
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		break;
	}
	close(c->fd);
	bad_bytes += c->bad;
	conns[c->fd] = NULL;
	free(c);
	closed_n++;
}

static void on_event(int ep, struct conn *c, uint32_t events)
{
	char buf[1000];
	ssize_t r = read(c->fd, buf, sizeof(buf)); /* at most 1000: leave some */
	if (r <= 0) {
		if (r < 0 && errno == EAGAIN && !(events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
			return;
		early_end++; /* the client never ends first */
		fprintf(stderr, "fd %d id %u gen %u: read ret=%zd errno=%s events=%s after %zu of %zu bytes\n",
			c->fd, c->id, c->gen, r, r < 0 ? t_errname(errno) : "-", tp_evstr(events), c->got,
			close_at(c->id));
		conn_close(ep, c, 0);
		return;
	}
	for (ssize_t i = 0; i < r; i++) {
		size_t k = c->got + (size_t)i;
		if (k < HDR) {
			c->hdr[k] = buf[i];
			if (k == HDR - 1)
				c->id = (unsigned)strtoul(c->hdr + 3, NULL, 10);
			continue;
		}
		if ((unsigned char)buf[i] != pat(c->id, k))
			c->bad = 1;
	}
	if (c->got < HDR && c->got + (size_t)r >= HDR && memcmp(c->hdr, "ID:", 3))
		c->bad = 1;
	c->got += (size_t)r;
	ssize_t w = write(c->fd, buf, (size_t)r);
	if (c->got >= HDR && c->got >= close_at(c->id))
		conn_close(ep, c, (int)(c->id % 4)); /* echoed bytes may still be queued */
	else if (w < r)
		conn_close(ep, c, 0); /* no room: end here, the client got a prefix */
}

static void stress(int l, int port)
{
	accepted = closed_n = bad_bytes = early_end = stale_events = 0;
	max_fd = 0;
	pid_t pids[CLIENTS];
	fflush(stdout);
	for (int i = 0; i < CLIENTS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			t_die("fork");
		if (pids[i] == 0) {
			close(l);
			client(i, port);
		}
	}
	int ep = epoll_create1(0);
	if (ep < 0 || tp_ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN, LISTENER))
		t_die("epoll");
	int timeouts = 0;
	while (closed_n < CLIENTS * ROUNDS) {
		struct epoll_event ev[32];
		int n = epoll_wait(ep, ev, 32, 20000);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			timeouts++;
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t d = ev[i].data.u64;
			if (d == LISTENER) {
				int fd;
				while ((fd = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct conn *c = calloc(1, sizeof(*c));
					if (!c || fd >= 1024)
						t_die("conn");
					c->fd = fd;
					c->gen = ++gens[fd];
					conns[fd] = c;
					accepted++;
					if (fd > max_fd)
						max_fd = fd;
					uint32_t want = EPOLLIN | EPOLLRDHUP;
					if (tp_ctl(ep, EPOLL_CTL_ADD, fd, want, (uint64_t)c->gen << 32 | (uint32_t)fd))
						t_die("epoll_ctl ADD");
				}
				continue;
			}
			int fd = (int)(uint32_t)d;
			struct conn *c = fd >= 0 && fd < 1024 ? conns[fd] : NULL;
			if (!c || c->gen != (uint32_t)(d >> 32)) {
				stale_events++;
				continue;
			}
			on_event(ep, c, ev[i].events);
		}
	}
	t_note("%d clients x %d connections, each closed by the server mid-stream", CLIENTS, ROUNDS);
	t_note("server: accepted %ld, closed %ld, wait timeouts %d", accepted, closed_n, timeouts);
	t_note("server: connections with bytes that were not their own: %ld", bad_bytes);
	t_note("server: connections that ended before the server closed them: %ld", early_end);
	t_note("server: events naming a closed connection: %ld", stale_events);
	t_note("server: fd numbers were reused: %s", tp_yesno(max_fd < 3 + 64 && accepted > 64));
	int bad = 0, failed = 0;
	for (int i = 0; i < CLIENTS; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) != pids[i])
			t_die("waitpid");
		if (WIFEXITED(st))
			bad += WEXITSTATUS(st);
		else
			failed++;
	}
	t_note("clients: connections that got back bytes not their own: %d, clients killed: %d", bad,
	       failed);
	close(ep);
}

int main(void)
{
	alarm(100);
	signal(SIGPIPE, SIG_IGN);
	t_expect("served_ring>0");
	int port;
	int l = tp_listen(&port, 0, 64);
	for (int how = 0; how < 4; how++)
		step_by_step(l, port, how);
	tp_set_nonblock(l, 1);
	t_note("== stress, listener made with socket() and listen()");
	stress(l, port);
	close(l);
	/* A listener the shim did not see being made (as one inherited from a
	 * supervisor): batch mode accepts ahead on it. */
	l = tp_listen_raw(&port, SOCK_NONBLOCK, 64);
	t_note("== stress, listener made with raw system calls");
	stress(l, port);
	close(l);
	return 0;
}
