/* Writes after our own shutdown(SHUT_WR) on a stream socket that had not
 * written anything yet (batch mode had no write-behind state for it, and
 * queued the bytes): EPIPE with SIGPIPE, at once, for write, send, writev,
 * sendmsg and a write of nothing; also when the socket was blocking at the
 * shutdown and made nonblocking afterwards; also when a forked child did
 * the shutdown on the socket it shares with us. Unix stream and TCP. */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "tcp_peer.h"

static volatile sig_atomic_t sigpipes;
static void on_pipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static void writes(int fd)
{
	TE("  write", write(fd, "abc", 3));
	t_note("  SIGPIPE count %d", (int)sigpipes);
	TE("  send MSG_NOSIGNAL", send(fd, "abc", 3, MSG_NOSIGNAL));
	TE("  writev", writev(fd, &(struct iovec){ "abc", 3 }, 1));
	struct msghdr m = { .msg_iov = &(struct iovec){ "abc", 3 }, .msg_iovlen = 1 };
	TE("  sendmsg", sendmsg(fd, &m, 0));
	TE("  write of nothing", write(fd, "", 0));
	t_note("  SIGPIPE count %d", (int)sigpipes);
}

/* s: our end, p: the peer's. */
static void pair_case(const char *what, int s, int p, int nonblock_first)
{
	char buf[16];
	t_note("== %s, %s at the shutdown", what, nonblock_first ? "nonblocking" : "blocking");
	if (nonblock_first)
		tp_set_nonblock(s, 1);
	TE("shutdown SHUT_WR", shutdown(s, SHUT_WR));
	if (!nonblock_first)
		tp_set_nonblock(s, 1);
	writes(s);
	TE("peer reads EOF", read(p, buf, sizeof(buf)));
	TE("peer sends 2", write(p, "hi", 2));
	tp_set_nonblock(s, 0);
	TE("read them", recv(s, buf, 2, MSG_WAITALL));
	tp_set_nonblock(s, 1);
	TE("shutdown SHUT_WR again", shutdown(s, SHUT_WR));
	writes(s);
	TE("close", close(s));
	TE("close peer", close(p));
}

/* A forked child shuts the write side of the socket it shares with us:
 * nothing the shim could watch for tells it (no poll event comes of a
 * shutdown of the sending side), yet our writes must fail with EPIPE, as
 * the kernel's do. With and without writes (batch state) before the fork. */
static void child_shuts(const char *what, int s, int p, int wrote_first)
{
	char buf[16];
	t_note("== %s, a forked child shuts the write side, %s", what,
	       wrote_first ? "after we wrote" : "nothing written before");
	tp_set_nonblock(s, 1);
	if (wrote_first) {
		TE("write 6", write(s, "before", 6));
		TE("peer reads them", recv(p, buf, 6, MSG_WAITALL));
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		shutdown(s, SHUT_WR);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	t_note("child: %s", t_status(st));
	writes(s);
	TE("peer reads EOF", read(p, buf, sizeof(buf)));
	TE("close", close(s));
	TE("close peer", close(p));
}

int main(void)
{
	signal(SIGPIPE, on_pipe);
	for (int nb = 1; nb >= 0; nb--) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		pair_case("unix stream", sv[0], sv[1], nb);
	}
	for (int wrote = 1; wrote >= 0; wrote--) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		child_shuts("unix stream", sv[0], sv[1], wrote);
	}
	int port;
	int l = tp_listen(&port, 0, 8);
	if (l < 0)
		t_die("listen");
	for (int nb = 1; nb >= 0; nb--) {
		int c = tp_connect(port);
		int a = accept(l, NULL, NULL);
		if (c < 0 || a < 0)
			t_die("connect");
		pair_case("tcp", a, c, nb);
	}
	for (int wrote = 1; wrote >= 0; wrote--) {
		int c = tp_connect(port);
		int a = accept(l, NULL, NULL);
		if (c < 0 || a < 0)
			t_die("connect");
		child_shuts("tcp", a, c, wrote);
	}
	close(l);
	return 0;
}
