/* Bytes, EOF and errors the shim already received ahead for a TCP socket
 * (batch mode: an epoll watch arms a receive into a per-fd stash) must
 * still be read after receiving ahead is turned off for the socket:
 * SO_RCVLOWAT set on it, or its epoll instance added to another epoll (the
 * watch goes to the kernel). The kernel no longer holds those bytes, so a
 * read that skipped the stash would report EAGAIN or EOF instead of them
 * (fuzz seed 18: recv returned 0 where 6 bytes were due). */
#include <sys/epoll.h>
#include <sys/wait.h>

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
	int two = 2;
	T("SO_RCVLOWAT 2", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &two, sizeof(two)));
	tp_recv_show_all("recv", a);
	close(ep);
	close(a);
	close(c);

	t_note("== SO_RCVLOWAT after bytes and FIN arrived");
	pair(l, port, &a, &c);
	T("send 5", send(c, "ghijk", 5, 0));
	T("close peer", close(c));
	ep = watch_and_wait(a);
	t_sleep_ms(50);
	T("SO_RCVLOWAT 2", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &two, sizeof(two)));
	tp_recv_show_all("recv", a);
	close(ep);
	close(a);

	t_note("== SO_RCVLOWAT, then more bytes: reads see the stash and the socket");
	pair(l, port, &a, &c);
	T("send 3", send(c, "pqr", 3, 0));
	ep = watch_and_wait(a);
	T("SO_RCVLOWAT 2", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &two, sizeof(two)));
	T("send 4 more", send(c, "stuv", 4, 0));
	t_sleep_ms(50);
	char buf[64];
	long n = TE("recv MSG_PEEK", recv(a, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT));
	if (n > 0)
		t_bytes("  got", buf, n);
	n = TE("recv MSG_PEEK again", recv(a, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT));
	if (n > 0)
		t_bytes("  got", buf, n);
	tp_recv_show_all("recv", a);
	T("send 2", send(c, "wx", 2, 0));
	t_sleep_ms(50);
	T("SO_RCVLOWAT 2", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &two, sizeof(two)));
	close(ep);
	close(a);
	close(c);

	t_note("== MSG_WAITALL and MSG_PEEK|MSG_WAITALL across the stash and the socket");
	pair(l, port, &a, &c);
	T("send 3", send(c, "ABC", 3, 0));
	ep = watch_and_wait(a);
	T("SO_RCVLOWAT 2", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &two, sizeof(two)));
	pid_t kid = fork();
	if (kid == 0) {
		usleep(100 * 1000);
		send(c, "DEFGHIJ", 7, 0);
		_exit(0);
	}
	n = TE("recv 6 MSG_PEEK|MSG_WAITALL", recv(a, buf, 6, MSG_PEEK | MSG_WAITALL));
	if (n > 0)
		t_bytes("  got", buf, n);
	n = TE("recv 8 MSG_WAITALL", recv(a, buf, 8, MSG_WAITALL));
	if (n > 0)
		t_bytes("  got", buf, n);
	tp_recv_show_all("recv", a);
	waitpid(kid, NULL, 0);
	close(ep);
	close(a);
	close(c);

	t_note("== epoll added to another epoll after bytes arrived");
	pair(l, port, &a, &c);
	T("send 4", send(c, "lmno", 4, 0));
	ep = watch_and_wait(a);
	int outer = epoll_create1(0);
	T("epoll_ctl outer ADD inner", tp_ctl(outer, EPOLL_CTL_ADD, ep, EPOLLIN, 2));
	tp_recv_show_all("recv", a);
	close(outer);
	close(ep);
	close(a);
	close(c);
	return 0;
}
