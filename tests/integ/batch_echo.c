/* A complete epoll echo server, as event-loop servers are written: a
 * nonblocking listener in epoll, accept4(SOCK_NONBLOCK) until EAGAIN,
 * level-triggered reads, writes that may be partial or EAGAIN (the rest is
 * kept and sent on EPOLLOUT, reading paused meanwhile), close after the
 * client's EOF once everything went back. 20 forked clients each pipeline
 * 200 messages of 1..20000 bytes (a writer thread and a reader, blocking
 * sockets) and check every echoed byte by length and FNV hash; their exit
 * status says whether it all matched. Only deterministic totals are
 * printed. */
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "tcp_peer.h"

#define CLIENTS 20
#define MESSAGES 200
#define MAXMSG 20000
#define LISTENER UINT64_MAX

static uint32_t rnd(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

/* The stream client `id` sends: message sizes and bytes from its seed. */
static size_t client_stream(int id, char *buf)
{
	uint32_t x = 0x9e3779b9u * (uint32_t)(id + 1);
	size_t n = 0;
	for (int m = 0; m < MESSAGES; m++) {
		size_t len = 1 + rnd(&x) % MAXMSG;
		for (size_t i = 0; i < len; i++)
			buf[n + i] = (char)rnd(&x);
		n += len;
	}
	return n;
}

/* ---- client ------------------------------------------------------------- */

struct writer {
	int fd, id;
	const char *buf;
};

static void *client_writer(void *p)
{
	struct writer *w = p;
	uint32_t x = 0x9e3779b9u * (uint32_t)(w->id + 1);
	size_t off = 0;
	for (int m = 0; m < MESSAGES; m++) {
		size_t len = 1 + rnd(&x) % MAXMSG;
		for (size_t i = 0; i < len; i++)
			rnd(&x);
		size_t done = 0;
		while (done < len) {
			ssize_t k = write(w->fd, w->buf + off + done, len - done);
			if (k <= 0)
				_exit(4);
			done += (size_t)k;
		}
		off += len;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

static void client(int id, int port)
{
	static char out[MESSAGES * MAXMSG], in[65536];
	size_t total = client_stream(id, out);
	uint64_t want = t_fnv(T_FNV_INIT, out, total), got = T_FNV_INIT;
	int s = tp_connect(port);
	if (s < 0)
		_exit(3);
	struct writer w = { s, id, out };
	pthread_t t;
	if (pthread_create(&t, NULL, client_writer, &w))
		_exit(5);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(s, in, sizeof(in));
		if (r <= 0)
			break;
		got = t_fnv(got, in, (size_t)r);
		n += (size_t)r;
	}
	pthread_join(t, NULL);
	_exit(n != total ? 2 : got != want ? 1 : 0);
}

/* ---- server ------------------------------------------------------------- */

struct conn {
	int fd;
	int id; /* accept order: picks the read/write calls used */
	char *out;
	size_t off, len, cap;
	int eof;
};

static struct conn *conns[4096];
static long echoed, errors, accepted, closed_n;

static ssize_t srv_read(struct conn *c, char *buf, size_t n)
{
	switch (c->id % 3) {
	case 0:
		return read(c->fd, buf, n);
	case 1:
		return recv(c->fd, buf, n, 0);
	default: {
		struct iovec v[2] = { { buf, n / 3 }, { buf + n / 3, n - n / 3 } };
		return readv(c->fd, v, 2);
	}
	}
}

static ssize_t srv_write(struct conn *c, const char *buf, size_t n)
{
	switch (c->id % 3) {
	case 0:
		return write(c->fd, buf, n);
	case 1:
		return send(c->fd, buf, n, MSG_NOSIGNAL);
	default: {
		struct iovec v[2] = { { (void *)buf, n / 2 }, { (void *)(buf + n / 2), n - n / 2 } };
		return writev(c->fd, v, 2);
	}
	}
}

static void set_interest(int ep, struct conn *c, uint32_t ev)
{
	if (tp_ctl(ep, EPOLL_CTL_MOD, c->fd, ev, (uint64_t)c->fd))
		errors++;
}

static void conn_close(int ep, struct conn *c)
{
	if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) || close(c->fd))
		errors++;
	conns[c->fd] = NULL;
	free(c->out);
	free(c);
	closed_n++;
}

/* Send what is kept; true if everything went. */
static int flush_out(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t w = srv_write(c, c->out + c->off, c->len - c->off);
		if (w < 0) {
			if (errno != EAGAIN)
				errors++;
			return 0;
		}
		c->off += (size_t)w;
		echoed += w;
	}
	c->off = c->len = 0;
	return 1;
}

static void keep(struct conn *c, const char *p, size_t n)
{
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2;
		c->out = realloc(c->out, c->cap);
		if (!c->out)
			t_die("realloc");
	}
	memcpy(c->out + c->len, p, n);
	c->len += n;
}

static void on_readable(int ep, struct conn *c)
{
	static char buf[65536];
	for (int i = 0; i < 4; i++) {
		ssize_t r = srv_read(c, buf, sizeof(buf));
		if (r < 0) {
			if (errno != EAGAIN)
				errors++;
			return;
		}
		if (r == 0) {
			c->eof = 1;
			conn_close(ep, c);
			return;
		}
		ssize_t w = srv_write(c, buf, (size_t)r);
		if (w < 0) {
			if (errno != EAGAIN) {
				errors++;
				return;
			}
			w = 0;
		}
		echoed += w;
		if (w < r) {
			/* The socket is full: keep the rest, stop reading until
			 * it has gone. */
			keep(c, buf + w, (size_t)(r - w));
			set_interest(ep, c, EPOLLOUT);
			return;
		}
	}
}

static void on_writable(int ep, struct conn *c)
{
	if (flush_out(c))
		set_interest(ep, c, EPOLLIN | EPOLLRDHUP);
}

int main(void)
{
	alarm(100);
	signal(SIGPIPE, SIG_IGN);
	t_expect("served_ring>0");
	int port;
	int l = tp_listen(&port, SOCK_NONBLOCK, 128);
	static char scratch[MESSAGES * MAXMSG];
	long expect_total = 0;
	for (int i = 0; i < CLIENTS; i++)
		expect_total += (long)client_stream(i, scratch);
	t_note("%d clients, %d pipelined messages of 1..%d bytes each, %ld bytes in all", CLIENTS,
	       MESSAGES, MAXMSG, expect_total);

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

	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || tp_ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN, LISTENER))
		t_die("epoll");
	int timeouts = 0;
	while (closed_n < CLIENTS) {
		struct epoll_event ev[64];
		int n = epoll_wait(ep, ev, 64, 20000);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			timeouts++;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == LISTENER) {
				int fd;
				while ((fd = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct conn *c = calloc(1, sizeof(*c));
					if (!c || fd >= 4096)
						t_die("conn");
					c->fd = fd;
					c->id = (int)accepted++;
					conns[fd] = c;
					if (tp_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP, (uint64_t)fd))
						errors++;
				}
				if (errno != EAGAIN)
					errors++;
				continue;
			}
			struct conn *c = conns[ev[i].data.u64];
			if (!c)
				continue; /* closed earlier in this batch */
			if (c->len)
				on_writable(ep, c);
			else if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
				on_readable(ep, c);
		}
	}
	t_note("server: accepted %ld, closed %ld, errors %ld, wait timeouts %d", accepted, closed_n,
	       errors, timeouts);
	t_note("server echoed %ld bytes: %s", echoed, echoed == expect_total ? "all" : "NOT all");
	int ok = 0;
	for (int i = 0; i < CLIENTS; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) != pids[i])
			t_die("waitpid");
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
		else
			t_note("client %d: %s", i, t_status(st));
	}
	t_note("clients that got every byte back in order: %d of %d", ok, CLIENTS);
	close(ep);
	close(l);
	return 0;
}
