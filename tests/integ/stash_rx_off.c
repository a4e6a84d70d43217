/* Bytes, EOF and errors the shim already received ahead for a TCP socket
 * (batch mode: an epoll watch arms a receive into a per-fd stash) must
 * still be read after receiving ahead is turned off for the socket:
 * SO_RCVLOWAT set on it, or its epoll instance added to another epoll (the
 * watch goes to the kernel). The kernel no longer holds those bytes, so a
 * read that skipped the stash would report EAGAIN or EOF instead of them
 * (fuzz seed 18: recv returned 0 where 6 bytes were due). */
#include <sys/epoll.h>

#include "tcp_peer.h"

static void pair(int l, int port, int *a, int *c)
{
	*c = tp_connect(port);
	*a = accept(l, NULL, NULL);
	if (*a < 0 || *c < 0)
		t_die("pair");
}

/* Watch a for input and wait until it is reported (the bytes arrived). */
static int watch_and_wait(int a)
{
	int ep = epoll_create1(0);
	if (ep < 0 || tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 1))
		t_die("epoll");
	struct epoll_event ev;
	T("epoll_wait", epoll_wait(ep, &ev, 1, 5000));
	return ep;
}

static void read_all(const char *label, int a)
{
	char buf[64];
	for (int i = 0; i < 3; i++) {
		long n = TE(label, recv(a, buf, sizeof(buf), MSG_DONTWAIT));
		if (n > 0)
			t_bytes("  got", buf, n);
		if (n <= 0)
			break;
	}
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	int port, a, c;
	int l = tp_listen(&port, 0, 16);

	t_note("== SO_RCVLOWAT after bytes arrived");
	pair(l, port, &a, &c);
	T("send 6", send(c, "abcdef", 6, 0));
	int ep = watch_and_wait(a);
	int one = 1;
	T("SO_RCVLOWAT 1", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)));
	read_all("recv", a);
	close(ep);
	close(a);
	close(c);

	t_note("== SO_RCVLOWAT after bytes and FIN arrived");
	pair(l, port, &a, &c);
	T("send 5", send(c, "ghijk", 5, 0));
	T("close peer", close(c));
	ep = watch_and_wait(a);
	t_sleep_ms(50);
	T("SO_RCVLOWAT 1", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)));
	read_all("recv", a);
	close(ep);
	close(a);

	t_note("== epoll added to another epoll after bytes arrived");
	pair(l, port, &a, &c);
	T("send 4", send(c, "lmno", 4, 0));
	ep = watch_and_wait(a);
	int outer = epoll_create1(0);
	T("epoll_ctl outer ADD inner", tp_ctl(outer, EPOLL_CTL_ADD, ep, EPOLLIN, 2));
	read_all("recv", a);
	close(outer);
	close(ep);
	close(a);
	close(c);
	return 0;
}
