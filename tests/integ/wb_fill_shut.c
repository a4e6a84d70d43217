/* Every byte a write reported as written arrives, in order, before the
 * EOF: a client fills its socket (nonblocking sends until EAGAIN) before
 * the server has even accepted the connection, the process forks (which
 * makes the socket shared: no more write-behind for it, but what is queued
 * still goes out), the client shuts its write side down or closes, and
 * only then does the server accept and read everything. Fuzz seed
 * 2330007875: the shutdown went to the kernel ahead of the queue, and the
 * reader saw EOF some 75 KB early; seed 2634624874: the same with the
 * shutdown made by the forked child. How much the sends take differs under
 * write-behind by design ("~" lines); that all of it arrives does not. */
#include <sys/socket.h>
#include <sys/wait.h>

#include "tcp_peer.h"

static char wbuf[65536], rbuf[65536];

static unsigned char content(long pos)
{
	return (unsigned char)(pos * 7 + pos / 251);
}

static void round_trip(int listener, int port, int shut)
{
	int c = tp_connect(port);
	if (c < 0 || tp_set_nonblock(c, 1))
		t_die("connect");
	long total = 0;
	for (int i = 0; i < 400; i++) {
		for (size_t k = 0; k < sizeof(wbuf); k++)
			wbuf[k] = (char)content(total + (long)k);
		ssize_t n = send(c, wbuf, sizeof(wbuf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			printf("fill ends with %s\n", t_errname(errno));
			break;
		}
		total += n;
	}
	printf("~ the sends took %ld bytes\n", total);
	T("one more write", write(c, "x", 1));
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		/* The child's FIN must come after the parent's bytes too. */
		if (shut == 2)
			shutdown(c, SHUT_WR);
		_exit(0);
	}
	if (child < 0 || waitpid(child, NULL, 0) != child)
		t_die("fork");
	if (shut == 1)
		TE("shutdown SHUT_WR", shutdown(c, SHUT_WR));
	else if (shut == 0)
		TE("close", close(c));
	int a = accept(listener, NULL, NULL);
	if (a < 0)
		t_die("accept");
	long got = 0;
	int in_order = 1;
	const char *end = "EOF";
	for (;;) {
		ssize_t n = recv(a, rbuf, sizeof(rbuf), 0);
		if (n < 0) {
			end = t_errname(errno);
			break;
		}
		if (n == 0)
			break;
		for (ssize_t k = 0; k < n; k++)
			if ((unsigned char)rbuf[k] != content(got + k))
				in_order = 0;
		got += n;
	}
	printf("~ the reader got %ld bytes\n", got);
	printf("reader got every byte written: %s, in order: %s, then %s\n",
	       tp_yesno(got == total), tp_yesno(in_order), end);
	close(a);
	if (shut)
		close(c);
}

int main(void)
{
	alarm(60);
	t_expect("batch,sqpoll:served_writebehind>0");
	int port, listener = tp_listen(&port, SOCK_NONBLOCK, 16);
	t_note("== fill, fork, shutdown(SHUT_WR), then accept and read");
	round_trip(listener, port, 1);
	t_note("== fill, fork, close, then accept and read");
	round_trip(listener, port, 0);
	t_note("== fill, fork, the child shuts the write side, then accept and read");
	round_trip(listener, port, 2);
	return 0;
}
