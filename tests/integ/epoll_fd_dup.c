/* An epoll instance reached through a dup of its fd after the original
 * number was closed, or had a socket dup2()ed onto it: epoll_ctl and
 * epoll_wait through the remaining number keep working on the same
 * instance (batch mode used to name it by the original number, which then
 * was another file: EINVAL, EBADF). Both kinds of registration: a TCP
 * socket (watched by the shim in batch mode) and a pipe (kernel epoll). */
#include <sys/epoll.h>

#include "tcp_peer.h"

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	int port;
	int l = tp_listen(&port, 0, 16);
	struct tp_peer p = tp_peer_start(port);
	int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	int pp[2];
	if (a < 0 || pipe(pp))
		t_die("setup");
	for (int how = 0; how < 2; how++) {
		t_note("== the original number %s", how ? "gets a socket (dup2)" : "is closed");
		int ep = epoll_create1(0);
		TE("ADD tcp IN through the original", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 1));
		int ep2 = dup(ep);
		if (how) {
			int s = socket(AF_INET, SOCK_STREAM, 0);
			TE("dup2 a socket onto the original", dup2(s, ep) == ep);
			close(s);
		} else {
			TE("close the original", close(ep));
		}
		TE("ADD pipe IN through the dup", tp_ctl(ep2, EPOLL_CTL_ADD, pp[0], EPOLLIN, 2));
		TE("MOD tcp IN|RDHUP through the dup",
		   tp_ctl(ep2, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLRDHUP, 3));
		TE("DEL a number never added", epoll_ctl(ep2, EPOLL_CTL_DEL, l, NULL));
		tp_wait("wait, nothing yet", ep2, 8, 0);
		T("peer sends 3", tp_sends(&p, "abc"));
		TE("write 1 to the pipe", write(pp[1], "x", 1));
		tp_wait("wait", ep2, 8, 5000);
		char buf[8];
		TE("read tcp", read(a, buf, sizeof(buf)));
		TE("read pipe", read(pp[0], buf, sizeof(buf)));
		tp_wait("wait, drained", ep2, 8, 0);
		TE("DEL tcp", epoll_ctl(ep2, EPOLL_CTL_DEL, a, NULL));
		TE("DEL pipe", epoll_ctl(ep2, EPOLL_CTL_DEL, pp[0], NULL));
		if (how)
			TE("ADD through the socket number", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 4));
		TE("close the dup", close(ep2));
		if (how)
			close(ep);
	}
	TE("close", close(a));
	t_note("peer: %s", t_status(tp_peer_end(&p)));
	return 0;
}
