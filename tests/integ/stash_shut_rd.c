/* A TCP socket shut for reading by its own shutdown(SHUT_RD) returns 0
 * only while its receive queue is empty: bytes the peer sends afterwards
 * are still queued, counted by FIONREAD and read. Batch mode receives
 * ahead for a socket in an epoll set; that receive took the 0 as the end
 * of the stream for good, and the later bytes were never read (fuzz seed
 * 183: a reader waiting for them hung). */
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "tcp_peer.h"

static void fionread(int a)
{
	int n = -1;
	T("FIONREAD", ioctl(a, FIONREAD, &n));
	t_note("  %d bytes", n);
}

/* bytes_first: the peer sends before the shutdown (the receive stashed
 * them), else the receive is armed with nothing taken yet. */
static void one_case(int l, int port, int bytes_first)
{
	t_note("== shutdown(SHUT_RD), bytes %s it", bytes_first ? "before and after" : "only after");
	struct tp_peer p = tp_peer_start(port);
	int a = accept(l, NULL, NULL);
	if (a < 0)
		t_die("accept");
	int ep = epoll_create1(0);
	if (ep < 0 || tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN | EPOLLRDHUP, 1))
		t_die("epoll");
	tp_wait("epoll_wait, nothing yet", ep, 8, 0);
	if (bytes_first) {
		tp_sends(&p, "abc");
		tp_wait("epoll_wait after 3 bytes", ep, 8, 5000);
	}
	TE("shutdown", shutdown(a, SHUT_RD));
	tp_wait("epoll_wait after the shutdown", ep, 8, 0);
	tp_recv_show_all("recv", a);
	tp_sends(&p, "defg");
	tp_wait("epoll_wait after 4 more bytes", ep, 8, 0);
	fionread(a);
	tp_recv_show_all("recv", a);
	tp_sends(&p, "hi");
	char buf[16];
	TE("blocking read", read(a, buf, sizeof(buf)));
	TE("blocking read at the end", read(a, buf, sizeof(buf)));
	tp_op(&p, TP_SHUT_WR);
	tp_wait("epoll_wait after the peer's FIN", ep, 8, 0);
	tp_recv_show_all("recv after the FIN", a);
	close(ep);
	close(a);
	t_note("peer exit status %d", tp_peer_end(&p));
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	int port;
	int l = tp_listen(&port, 0, 16);
	for (int bytes_first = 1; bytes_first >= 0; bytes_first--)
		one_case(l, port, bytes_first);
	close(l);
	return 0;
}
