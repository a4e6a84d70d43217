/* Bytes received ahead before a fork (batch: into the stash, then shared
 * with the child) are reported by an epoll registration made after the
 * fork, which the shim hands to the kernel (the socket is shared), as the
 * kernel's own epoll reports them (fuzz seed 217, full program). */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "tcp_peer.h"

int main(void)
{
	int port;
	int l = tp_listen(&port, 0, 8);
	if (l < 0)
		t_die("listen");
	int c = tp_connect(port);
	int a = accept(l, NULL, NULL);
	if (c < 0 || a < 0)
		t_die("connect");
	int ep1 = epoll_create1(0);
	struct epoll_event ev = { EPOLLIN, { .u64 = 1 } }, out[4];
	T("epoll_ctl ADD (before fork)", epoll_ctl(ep1, EPOLL_CTL_ADD, a, &ev));
	T("peer sends", send(c, "hello", 5, 0));
	T("epoll_wait before fork", epoll_wait(ep1, out, 4, 5000));
	fflush(stdout);
	pid_t p = fork();
	if (p < 0)
		t_die("fork");
	if (!p)
		_exit(0);
	int st;
	T("waitpid", waitpid(p, &st, 0) == p ? 0 : -1);
	int ep2 = epoll_create1(0);
	ev.data.u64 = 2;
	T("epoll_ctl ADD (after fork)", epoll_ctl(ep2, EPOLL_CTL_ADD, a, &ev));
	T("epoll_wait new epoll", epoll_wait(ep2, out, 4, 0));
	t_note("  data=%llu events=%#x", (unsigned long long)out[0].data.u64, out[0].events);
	char buf[8];
	TE("read", read(a, buf, sizeof(buf)));
	T("epoll_wait new epoll after read", epoll_wait(ep2, out, 4, 0));
	close(ep1);
	close(ep2);
	close(a);
	close(c);
	close(l);
	return 0;
}
