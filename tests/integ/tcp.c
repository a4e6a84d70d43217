/* TCP over loopback: listen/connect/accept (also with a NULL address and a
 * full backlog), half-close both ways, connect errors, zero-length calls,
 * and a 16 MiB transfer in both directions at once, checked by hash. IPv6
 * parts are skipped quietly (same output) when ::1 is unavailable. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "check.h"

#define XFER (16 << 20)

static volatile sig_atomic_t pipes;
static void on_pipe(int sig)
{
	(void)sig;
	pipes++;
}

static const char *yesno(int b)
{
	return b ? "yes" : "no";
}

static int listener4(struct sockaddr_in *a, int backlog)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(*a);
	if (l < 0 || bind(l, (struct sockaddr *)a, sizeof(*a)) || listen(l, backlog) ||
	    getsockname(l, (struct sockaddr *)a, &al))
		t_die("listener");
	return l;
}

static int connect4(const struct sockaddr_in *a)
{
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (const struct sockaddr *)a, sizeof(*a)))
		t_die("connect");
	return c;
}

/* Wait until `n` bytes are queued for reading (or EOF/RST is there). */
static void wait_queued(int fd, int n)
{
	for (int i = 0; i < 1000; i++) {
		int q = 0;
		if (ioctl(fd, FIONREAD, &q) == 0 && q >= n)
			return;
		t_sleep_ms(2);
	}
}

static void fill_pattern(char *p, size_t n, unsigned seed)
{
	uint32_t x = seed;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (char)(x >> 16);
	}
}

struct sender {
	int fd;
	const char *data;
	long sent;
};

/* Write XFER bytes in chunks of varying size. */
static void *send_all(void *p)
{
	struct sender *s = p;
	size_t off = 0, chunk = 1;
	while (off < XFER) {
		size_t n = chunk < XFER - off ? chunk : XFER - off;
		ssize_t w = (chunk % 3) ? write(s->fd, s->data + off, n)
					: send(s->fd, s->data + off, n, 0);
		if (w <= 0)
			break;
		off += (size_t)w;
		chunk = chunk * 7 % 200003 + 1;
	}
	s->sent = (long)off;
	shutdown(s->fd, SHUT_WR); /* the peer's reader sees EOF */
	return NULL;
}

/* Read until EOF in chunks of varying size; returns the count, hash in *h. */
static long recv_all(int fd, uint64_t *h)
{
	static char buf[1 << 17];
	long total = 0;
	size_t chunk = 5;
	*h = T_FNV_INIT;
	for (;;) {
		struct iovec v[2] = { { buf, chunk / 2 + 1 }, { buf + chunk / 2 + 1, chunk / 2 } };
		ssize_t n = (chunk % 2) ? read(fd, buf, chunk) : readv(fd, v, 2);
		if (n <= 0)
			break;
		*h = t_fnv(*h, buf, (size_t)n);
		total += n;
		chunk = chunk * 13 % (sizeof(buf) - 1) + 1;
	}
	return total;
}

int main(void)
{
	char buf[256];
	long n;
	t_expect("served_ring>0");
	signal(SIGPIPE, on_pipe);

	t_note("== listen, connect, accept");
	struct sockaddr_in la;
	int l = listener4(&la, 16);
	int c = connect4(&la);
	struct sockaddr_in pa, ca, pn;
	socklen_t pl = sizeof(pa), cl = sizeof(ca), nl = sizeof(pn);
	/* (Accepted fd numbers are fdnums.c's business.) */
	int s = accept(l, (struct sockaddr *)&pa, &pl);
	t_note("accept with address: %s, addrlen %u", s >= 0 ? "fd" : t_errname(errno), (unsigned)pl);
	close(s);
	getsockname(c, (struct sockaddr *)&ca, &cl);
	t_note("accept peer address == client's getsockname: %s", yesno(pl == cl && !memcmp(&pa, &ca, cl)));
	close(c);
	c = connect4(&la);
	s = accept(l, NULL, NULL);
	t_note("accept with NULL address: %s", s >= 0 ? "fd" : t_errname(errno));
	getpeername(c, (struct sockaddr *)&pn, &nl);
	t_note("client's peer is the listener's address: %s", yesno(!memcmp(&pn, &la, sizeof(la))));
	TE("connect again", connect(c, (struct sockaddr *)&la, sizeof(la)));
	TE("connect on the listener", connect(l, (struct sockaddr *)&la, sizeof(la)));

	t_note("== data, zero-length calls");
	TE("send", send(c, "hello", 5, 0));
	wait_queued(s, 5);
	n = TE("recv MSG_PEEK", recv(s, buf, sizeof(buf), MSG_PEEK));
	t_bytes("  peek", buf, n);
	TE("recv 0 bytes with data queued", recv(s, buf, 0, 0));
	TE("read 0 bytes with data queued", read(s, buf, 0));
	n = TE("read", read(s, buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	TE("send 0 bytes", send(c, "", 0, 0));
	TE("write 0 bytes", write(c, "", 0));
	struct iovec wv[3] = { { "ab", 2 }, { "", 0 }, { "cde", 3 } };
	TE("writev", writev(c, wv, 3));
	wait_queued(s, 5);
	char x[2], y[10];
	struct iovec rv[2] = { { x, 2 }, { y, 10 } };
	n = TE("readv", readv(s, rv, 2));
	t_bytes("  x", x, 2);
	t_bytes("  y", y, n - 2);
	TE("recv MSG_DONTWAIT empty", recv(s, buf, sizeof(buf), MSG_DONTWAIT));
	/* A guard keeps a wrongly blocking zero-length recv from hanging. */
	pid_t guard = fork();
	if (guard == 0) {
		t_sleep_ms(2000);
		_exit(send(c, "guard", 5, MSG_NOSIGNAL) == 5 ? 0 : 1);
	}
	TE("recv 0 bytes, nothing queued", recv(s, buf, 0, 0));
	waitpid(guard, NULL, 0);
	wait_queued(s, 5);
	n = TE("recv", recv(s, buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);

	t_note("== shutdown(SHUT_WR): the peer reads EOF and can still answer");
	TE("client send", send(c, "last words", 10, 0));
	TE("client shutdown SHUT_WR", shutdown(c, SHUT_WR));
	n = TE("server recv", recv(s, buf, sizeof(buf), MSG_WAITALL));
	t_bytes("  got", buf, n);
	TE("server recv EOF", recv(s, buf, sizeof(buf), 0));
	TE("server read EOF again", read(s, buf, sizeof(buf)));
	TE("server answers", send(s, "reply", 5, 0));
	n = TE("client recv", recv(c, buf, 5, MSG_WAITALL));
	t_bytes("  got", buf, n);
	TE("client send after SHUT_WR", send(c, "x", 1, 0));
	t_note("  SIGPIPE: %d", (int)pipes);
	pipes = 0;
	TE("server shutdown SHUT_WR", shutdown(s, SHUT_WR));
	TE("client recv EOF", recv(c, buf, sizeof(buf), 0));
	TE("shutdown SHUT_WR twice", shutdown(s, SHUT_WR));
	close(c);
	close(s);

	t_note("== shutdown(SHUT_RD)");
	c = connect4(&la);
	s = accept(l, NULL, NULL);
	TE("server shutdown SHUT_RD", shutdown(s, SHUT_RD));
	TE("server recv after SHUT_RD", recv(s, buf, sizeof(buf), 0));
	TE("client send", send(c, "after", 5, 0));
	wait_queued(s, 5);
	n = TE("server recv with data queued after SHUT_RD", recv(s, buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	TE("server can still send", send(s, "ok", 2, 0));
	n = TE("client recv", recv(c, buf, 2, MSG_WAITALL));
	t_bytes("  got", buf, n);
	TE("server shutdown SHUT_RDWR", shutdown(s, SHUT_RDWR));
	TE("client recv EOF", recv(c, buf, sizeof(buf), 0));
	TE("server send after SHUT_RDWR", send(s, "x", 1, 0));
	t_note("  SIGPIPE: %d", (int)pipes);
	pipes = 0;
	close(c);
	close(s);

	t_note("== connect errors");
	int closed = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in cla = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t clal = sizeof(cla);
	bind(closed, (struct sockaddr *)&cla, sizeof(cla)); /* bound, never listening */
	getsockname(closed, (struct sockaddr *)&cla, &clal);
	c = socket(AF_INET, SOCK_STREAM, 0);
	TE("connect to a closed port", connect(c, (struct sockaddr *)&cla, sizeof(cla)));
	TE("recv after ECONNREFUSED", recv(c, buf, sizeof(buf), 0));
	struct pollfd pf = { c, POLLIN | POLLOUT | POLLRDHUP, 0 };
	poll(&pf, 1, 0);
	t_note("  poll revents:%s%s%s%s%s", pf.revents & POLLIN ? " IN" : "", pf.revents & POLLOUT ? " OUT" : "",
	       pf.revents & POLLRDHUP ? " RDHUP" : "", pf.revents & POLLHUP ? " HUP" : "",
	       pf.revents & POLLERR ? " ERR" : "");
	TE("connect again after ECONNREFUSED", connect(c, (struct sockaddr *)&cla, sizeof(cla)));
	TE("recv on it", recv(c, buf, sizeof(buf), 0));
	close(c);
	c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in bad = cla;
	bad.sin_family = AF_UNIX;
	TE("connect with a wrong family", connect(c, (struct sockaddr *)&bad, sizeof(bad)));
	TE("connect with a short address", connect(c, (struct sockaddr *)&cla, 4));
	close(c);
	close(closed);

	t_note("== backlog: connections queued before accept");
	int conns[5];
	for (int i = 0; i < 5; i++) {
		conns[i] = connect4(&la);
		char m = (char)('0' + i);
		TE("connect + send", send(conns[i], &m, 1, 0));
	}
	for (int i = 0; i < 5; i++) {
		int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		n = recv(a, buf, 1, 0);
		t_note("accepted #%d: recv=%ld byte=%c", i, n, n == 1 ? buf[0] : '?');
		close(a);
		close(conns[i]);
	}
	c = connect4(&la);
	TE("client closes before accept", close(c));
	s = accept(l, NULL, NULL);
	t_note("accept of an already closed connection: %s", s >= 0 ? "fd" : t_errname(errno));
	TE("  recv", recv(s, buf, sizeof(buf), 0));
	close(s);

	t_note("== 16 MiB both ways at once");
	char *a2b = malloc(XFER), *b2a = malloc(XFER);
	fill_pattern(a2b, XFER, 1);
	fill_pattern(b2a, XFER, 2);
	uint64_t h_a2b = t_fnv(T_FNV_INIT, a2b, XFER), h_b2a = t_fnv(T_FNV_INIT, b2a, XFER);
	c = connect4(&la);
	s = accept(l, NULL, NULL);
	int rep[2];
	if (pipe(rep))
		t_die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		close(s);
		/* The child sends a2b and checks b2a, each in its own thread. */
		struct sender snd = { c, a2b, 0 };
		pthread_t t;
		pthread_create(&t, NULL, send_all, &snd);
		uint64_t h;
		long got = recv_all(c, &h);
		pthread_join(t, NULL);
		char msg[64];
		int k = snprintf(msg, sizeof(msg), "sent %ld, received %ld, hash matches: %s", snd.sent, got,
				 yesno(h == h_b2a));
		_exit(write(rep[1], msg, (size_t)k) == k ? 0 : 1);
	}
	close(c);
	struct sender snd = { s, b2a, 0 };
	pthread_t t;
	pthread_create(&t, NULL, send_all, &snd);
	uint64_t h;
	long got = recv_all(s, &h);
	pthread_join(t, NULL);
	t_note("parent: sent %ld, received %ld, hash matches: %s", snd.sent, got, yesno(h == h_a2b));
	int st;
	waitpid(pid, &st, 0);
	n = read(rep[0], buf, sizeof(buf) - 1);
	t_note("child (%s): %.*s", t_status(st), (int)(n > 0 ? n : 0), buf);
	close(s);

	t_note("== IPv6 loopback");
	int l6 = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t a6l = sizeof(a6);
	if (l6 < 0 || bind(l6, (struct sockaddr *)&a6, sizeof(a6)) || listen(l6, 4) ||
	    getsockname(l6, (struct sockaddr *)&a6, &a6l)) {
		t_note("(IPv6 loopback unavailable; nothing to compare)");
	} else {
		int c6 = socket(AF_INET6, SOCK_STREAM, 0);
		TE("connect ::1", connect(c6, (struct sockaddr *)&a6, sizeof(a6)));
		struct sockaddr_in6 p6, m6;
		socklen_t p6l = sizeof(p6), m6l = sizeof(m6);
		int s6 = accept(l6, (struct sockaddr *)&p6, &p6l);
		getsockname(c6, (struct sockaddr *)&m6, &m6l);
		t_note("accept peer == client's getsockname: %s (addrlen %u)", yesno(p6l == m6l && !memcmp(&p6, &m6, m6l)),
		       (unsigned)p6l);
		TE("send", send(c6, "six", 3, 0));
		n = TE("recv", recv(s6, buf, 3, MSG_WAITALL));
		t_bytes("  got", buf, n);
		close(c6);
		close(s6);
	}
	if (l6 >= 0)
		close(l6);
	close(l);
	return 0;
}
