/* epoll registrations and duplicated descriptors of one TCP socket: the
 * kernel keys a registration on (file, fd number), so a dup can be added
 * beside the original and both report; MOD/DEL through the other number is
 * ENOENT; closing the registered number while a dup keeps the socket open
 * leaves the registration reporting (with its old data) until the socket
 * itself goes. Batch mode watches these sockets itself and must keep the
 * same rules. */
#include <sys/epoll.h>

#include "tcp_peer.h"

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	t_expect("served_ring>0");
	int port;
	int l = tp_listen(&port, 0, 16);
	struct tp_peer p = tp_peer_start(port);
	int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	int ep = epoll_create1(0);
	if (a < 0 || ep < 0)
		t_die("setup");
	int d = dup(a);
	char buf[64];

	t_note("== original and dup registered side by side");
	TE("ADD a IN data=1", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 1));
	TE("MOD dup (not registered)", tp_ctl(ep, EPOLL_CTL_MOD, d, EPOLLIN, 2));
	TE("DEL dup (not registered)", epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
	TE("ADD dup IN data=2", tp_ctl(ep, EPOLL_CTL_ADD, d, EPOLLIN, 2));
	TE("ADD dup again", tp_ctl(ep, EPOLL_CTL_ADD, d, EPOLLIN, 2));
	T("peer sends 3", tp_sends(&p, "one"));
	tp_wait("wait", ep, 8, 5000);
	TE("MOD dup IN|OUT data=3", tp_ctl(ep, EPOLL_CTL_MOD, d, EPOLLIN | EPOLLOUT, 3));
	tp_wait("wait", ep, 8, 0);
	TE("DEL dup", epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
	tp_wait("wait", ep, 8, 0);
	long n = TE("read through the original", read(a, buf, sizeof(buf)));
	if (n > 0)
		t_bytes("  got", buf, n);
	n = TE("read through the dup", read(d, buf, sizeof(buf)));
	if (n > 0)
		t_bytes("  got", buf, n);
	tp_wait("wait", ep, 8, 0);

	t_note("== the registered number is closed, a dup keeps the socket open");
	TE("close a", close(a));
	TE("DEL a (closed)", epoll_ctl(ep, EPOLL_CTL_DEL, a, NULL));
	TE("DEL dup (never registered under that number)", epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
	T("peer sends 3", tp_sends(&p, "two"));
	tp_wait("wait: the registration of the closed number still reports", ep, 8, 5000);
	n = TE("read through the dup", read(d, buf, sizeof(buf)));
	if (n > 0)
		t_bytes("  got", buf, n);
	tp_wait("wait", ep, 8, 0);
	TE("ADD dup IN data=4", tp_ctl(ep, EPOLL_CTL_ADD, d, EPOLLIN, 4));
	T("peer sends 5", tp_sends(&p, "three"));
	tp_wait("wait: both registrations", ep, 8, 5000);
	n = TE("read through the dup", read(d, buf, sizeof(buf)));
	if (n > 0)
		t_bytes("  got", buf, n);

	t_note("== a dup made after the socket was registered");
	struct tp_peer q = tp_peer_start(port);
	int b = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	TE("ADD b IN data=5", tp_ctl(ep, EPOLL_CTL_ADD, b, EPOLLIN, 5));
	tp_wait("wait", ep, 8, 0);
	int bd = dup(b);
	TE("MOD b's dup (not registered)", tp_ctl(ep, EPOLL_CTL_MOD, bd, EPOLLIN, 6));
	TE("DEL b's dup (not registered)", epoll_ctl(ep, EPOLL_CTL_DEL, bd, NULL));
	TE("ADD b's dup IN data=6", tp_ctl(ep, EPOLL_CTL_ADD, bd, EPOLLIN, 6));
	T("peer sends 4", tp_sends(&q, "four"));
	tp_wait("wait", ep, 8, 5000);
	TE("DEL b", epoll_ctl(ep, EPOLL_CTL_DEL, b, NULL));
	tp_wait("wait", ep, 8, 0);
	n = TE("read through b", read(b, buf, sizeof(buf)));
	if (n > 0)
		t_bytes("  got", buf, n);
	tp_wait("wait", ep, 8, 0);
	TE("close b", close(b));
	TE("close b's dup", close(bd));
	tp_peer_end(&q);

	t_note("== the last number is closed");
	int e = dup(d); /* the epoll set keeps no reference: this one goes too */
	TE("close dup", close(d));
	TE("close second dup", close(e));
	tp_wait("wait: nothing left", ep, 8, 0);
	tp_read_eof_show(&p, "peer reads");
	close(ep);
	close(l);
	t_note("peer: %s", t_status(tp_peer_end(&p)));
	return 0;
}
