/* Numbers duplicated before the socket had any batch state (no write yet):
 * they are one socket, so what is done through one is seen through the
 * others. Batch mode gave each number its own state on first use, so a
 * shutdown(SHUT_WR) through one number was not seen by a write through
 * another (queued, no EPIPE: fuzz seeds 62, 94), and bytes queued through
 * two numbers left out of order. Unix stream and TCP. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "tcp_peer.h"

static volatile sig_atomic_t sigpipes;
static void on_pipe(int sig)
{
	(void)sig;
	sigpipes++;
}

/* s: our end (nonblocking), p: the peer's (blocking). */
static void shut_case(const char *what, int s, int p)
{
	char buf[16];
	t_note("== %s: shutdown through a dup, write through the original", what);
	int d = dup(s);
	int d2 = dup(s);
	if (d < 0 || d2 < 0)
		t_die("dup");
	TE("write through the dup", write(d, "ab", 2));
	TE("shutdown SHUT_WR through the dup", shutdown(d, SHUT_WR));
	TE("write through the original", write(s, "abc", 3));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("send MSG_NOSIGNAL through the second dup", send(d2, "abc", 3, MSG_NOSIGNAL));
	TE("close the dup", close(d));
	TE("sendmsg through the original",
	   sendmsg(s, &(struct msghdr){ .msg_iov = &(struct iovec){ "abc", 3 }, .msg_iovlen = 1 },
		   MSG_NOSIGNAL));
	TE("peer reads", recv(p, buf, sizeof(buf), MSG_WAITALL));
	t_bytes("  bytes", buf, 2);
	TE("peer reads EOF", read(p, buf, sizeof(buf)));
	close(d2);
	close(s);
	close(p);
}

/* The dup shuts the socket for writing and is closed before the original
 * ever writes. */
static void shut_closed_case(const char *what, int s, int p)
{
	char buf[16];
	t_note("== %s: shutdown through a dup that is closed, then the first write", what);
	int d = dup(s);
	if (d < 0)
		t_die("dup");
	TE("shutdown SHUT_WR through the dup", shutdown(d, SHUT_WR));
	TE("close the dup", close(d));
	TE("write through the original", write(s, "abc", 3));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("peer reads EOF", read(p, buf, sizeof(buf)));
	close(s);
	close(p);
}

/* Alternate writes through two numbers made before the first write; the
 * peer must read them in the order written. */
static void order_case(const char *what, int s, int p)
{
	t_note("== %s: writes alternating between two numbers", what);
	int d = dup(s);
	if (d < 0)
		t_die("dup");
	static char chunk[4096];
	long sent = 0;
	unsigned seq = 0;
	for (int i = 0; i < 200; i++) {
		int fd = (i & 1) ? d : s;
		for (size_t k = 0; k < sizeof(chunk); k++)
			chunk[k] = (char)(seq + k);
		ssize_t n = write(fd, chunk, sizeof(chunk));
		if (n < 0)
			continue;
		/* A short write is fine: the next chunk goes on from there. */
		seq += (unsigned)n;
		sent += n;
	}
	t_note("some writes went through: %s", tp_yesno(sent > 0));
	TE("shutdown SHUT_WR through the dup", shutdown(d, SHUT_WR));
	close(d);
	long got = 0, bad = 0;
	for (;;) {
		char buf[8192];
		ssize_t n = read(p, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t k = 0; k < n; k++)
			if (buf[k] != (char)(got + k))
				bad++;
		got += n;
	}
	t_note("peer read every byte written: %s, in order: %s", tp_yesno(got == sent),
	       tp_yesno(bad == 0));
	close(s);
	close(p);
}

/* A case on a fresh pair: our end nonblocking, the peer's blocking. */
static void on_unix(void (*fn)(const char *, int, int))
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		t_die("socketpair");
	tp_set_nonblock(sv[1], 0);
	fn("unix stream", sv[0], sv[1]);
}

static void on_tcp(int l, int port, void (*fn)(const char *, int, int))
{
	int c = tp_connect(port);
	int a = accept(l, NULL, NULL);
	if (c < 0 || a < 0)
		t_die("connect");
	tp_set_nonblock(a, 1);
	fn("tcp", a, c);
}

int main(void)
{
	signal(SIGPIPE, on_pipe);
	int port;
	int l = tp_listen(&port, 0, 8);
	void (*cases[])(const char *, int, int) = { shut_case, shut_closed_case, order_case };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		on_unix(cases[i]);
		on_tcp(l, port, cases[i]);
	}
	close(l);
	return 0;
}
