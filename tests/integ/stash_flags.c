/* Reads on a blocking TCP socket that sits in an epoll set (batch mode
 * serves them from the bytes it already received): MSG_PEEK, MSG_WAITALL
 * across two arrivals, MSG_TRUNC (discard; with MSG_PEEK nothing is
 * copied), MSG_DONTWAIT, readv/recvmsg scatter, recvfrom/recvmsg addresses
 * and flags on TCP, FIONREAD/SIOCINQ, reads of 0 bytes, EOF read twice, a
 * blocking read that waits for bytes sent later, SO_RCVTIMEO, SO_RCVLOWAT,
 * MSG_OOB with no urgent data, and a read into an invalid buffer. */
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/uio.h>

#include "tcp_peer.h"

static int ep;

static void show(const char *label, const char *buf, long n)
{
	if (n > 0)
		t_bytes(label, buf, n);
}

static void fionread(const char *label, int fd)
{
	int q = -1, q2 = -1;
	int r = ioctl(fd, FIONREAD, &q);
	int r2 = ioctl(fd, SIOCINQ, &q2);
	t_note("%s: FIONREAD ret=%d value=%d, SIOCINQ ret=%d value=%d", label, r, q, r2, q2);
}

/* Wait until the socket reports readable (the bytes have arrived). */
static void arrived(int fd)
{
	(void)fd;
	struct epoll_event ev;
	epoll_wait(ep, &ev, 1, 5000);
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	t_expect("served_ring>0");
	int port;
	int l = tp_listen(&port, 0, 16);
	struct tp_peer p = tp_peer_start(port);
	int a = accept(l, NULL, NULL);
	ep = epoll_create1(0);
	if (a < 0 || ep < 0 || tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 1))
		t_die("setup");
	char buf[256];
	long n;

	t_note("== MSG_PEEK");
	T("peer sends 8", tp_sends(&p, "peekaboo"));
	arrived(a);
	n = TE("recv MSG_PEEK 4", recv(a, buf, 4, MSG_PEEK));
	show("  got", buf, n);
	n = TE("recv MSG_PEEK 64", recv(a, buf, 64, MSG_PEEK));
	show("  got", buf, n);
	fionread("after peeks", a);
	n = TE("read 64", read(a, buf, 64));
	show("  got", buf, n);
	TE("recv MSG_PEEK|MSG_DONTWAIT, nothing", recv(a, buf, 64, MSG_PEEK | MSG_DONTWAIT));

	t_note("== MSG_WAITALL across two arrivals");
	T("peer sends 3", tp_sends(&p, "abc"));
	arrived(a);
	tp_start(&p, TP_SEND_LATE, "defgh", 5, 0);
	n = TE("recv 6 MSG_WAITALL", recv(a, buf, 6, MSG_WAITALL));
	show("  got", buf, n);
	T("peer sent", tp_finish(&p, NULL, NULL, 0));
	n = TE("recv the rest", recv(a, buf, 64, 0));
	show("  got", buf, n);

	t_note("== MSG_TRUNC");
	T("peer sends 10", tp_sends(&p, "0123456789"));
	arrived(a);
	memset(buf, '.', 8);
	TE("recv 3 MSG_TRUNC", recv(a, buf, 3, MSG_TRUNC));
	t_bytes("  buffer", buf, 8);
	TE("recv 2 MSG_TRUNC, NULL buffer", recv(a, NULL, 2, MSG_TRUNC));
	memset(buf, '.', 8);
	TE("recv 4 MSG_TRUNC|MSG_PEEK", recv(a, buf, 4, MSG_TRUNC | MSG_PEEK));
	t_bytes("  buffer", buf, 8);
	n = TE("read 64", read(a, buf, 64));
	show("  got", buf, n);

	t_note("== MSG_DONTWAIT on a blocking socket");
	TE("recv MSG_DONTWAIT, nothing", recv(a, buf, 64, MSG_DONTWAIT));
	TE("recvfrom MSG_DONTWAIT, nothing", recvfrom(a, buf, 64, MSG_DONTWAIT, NULL, NULL));
	struct iovec one = { buf, 64 };
	struct msghdr mh = { .msg_iov = &one, .msg_iovlen = 1 };
	TE("recvmsg MSG_DONTWAIT, nothing", recvmsg(a, &mh, MSG_DONTWAIT));
	T("peer sends 2", tp_sends(&p, "dw"));
	arrived(a);
	n = TE("recv MSG_DONTWAIT", recv(a, buf, 64, MSG_DONTWAIT));
	show("  got", buf, n);

	t_note("== scatter reads");
	T("peer sends 15", tp_sends(&p, "scatter-gather!"));
	arrived(a);
	char x[3], y[5], z[20];
	struct iovec v[3] = { { x, 3 }, { y, 5 }, { z, 20 } };
	n = TE("readv 3+5+20", readv(a, v, 3));
	t_bytes("  x", x, n < 3 ? n : 3);
	t_bytes("  y", y, n < 3 ? 0 : n < 8 ? n - 3 : 5);
	t_bytes("  z", z, n < 8 ? 0 : n - 8);
	T("peer sends 15", tp_sends(&p, "recvmsg-scatter"));
	arrived(a);
	struct sockaddr_in from;
	memset(&from, 0xab, sizeof(from));
	char ctl[64];
	struct iovec w[3] = { { x, 2 }, { y, 0 }, { z, 20 } };
	mh = (struct msghdr){ .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = w,
			      .msg_iovlen = 3, .msg_control = ctl, .msg_controllen = sizeof(ctl),
			      .msg_flags = 0x7fff };
	n = TE("recvmsg 2+0+20 with name and control buffers", recvmsg(a, &mh, 0));
	t_bytes("  x", x, n < 2 ? n : 2);
	t_bytes("  z", z, n < 2 ? 0 : n - 2);
	t_note("  msg_namelen=%u msg_controllen=%zu msg_flags=0x%x name untouched=%s",
	       (unsigned)mh.msg_namelen, (size_t)mh.msg_controllen, mh.msg_flags,
	       tp_yesno(((unsigned char *)&from)[0] == 0xab));
	T("peer sends 4", tp_sends(&p, "from"));
	arrived(a);
	socklen_t fl = sizeof(from);
	memset(&from, 0xab, sizeof(from));
	n = TE("recvfrom with an address", recvfrom(a, buf, 64, 0, (struct sockaddr *)&from, &fl));
	show("  got", buf, n);
	t_note("  addrlen=%u name untouched=%s", (unsigned)fl,
	       tp_yesno(((unsigned char *)&from)[0] == 0xab));

	t_note("== FIONREAD");
	fionread("nothing", a);
	static char hundred[100];
	memset(hundred, 'h', sizeof(hundred));
	T("peer sends 100", tp_send(&p, hundred, 100));
	arrived(a);
	fionread("100 arrived", a);
	n = TE("read 30", read(a, buf, 30));
	fionread("after reading 30", a);
	TE("recv 10 MSG_PEEK", recv(a, buf, 10, MSG_PEEK));
	fionread("after a peek", a);
	TE("read 0", read(a, buf, 0));
	TE("recv 0", recv(a, buf, 0, 0));
	fionread("after reading 0", a);
	n = TE("read the rest", read(a, buf, sizeof(buf)));
	TE("read 0, nothing there", read(a, buf, 0));
	TE("recv 0 MSG_DONTWAIT, nothing there", recv(a, buf, 0, MSG_DONTWAIT));

	t_note("== a blocking read waits for bytes sent later");
	tp_start(&p, TP_SEND_LATE, "later", 5, 0);
	n = TE("read blocks", read(a, buf, sizeof(buf)));
	show("  got", buf, n);
	T("peer sent", tp_finish(&p, NULL, NULL, 0));
	tp_start(&p, TP_SEND_LATE, "readv later", 11, 0);
	struct iovec lv[2] = { { x, 3 }, { z, 20 } };
	n = TE("readv blocks", readv(a, lv, 2));
	t_bytes("  x", x, n < 3 ? n : 3);
	t_bytes("  z", z, n < 3 ? 0 : n - 3);
	T("peer sent", tp_finish(&p, NULL, NULL, 0));

	t_note("== SO_RCVTIMEO");
	struct timeval tv = { 0, 100000 };
	TE("SO_RCVTIMEO 100 ms", setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	TE("read times out", read(a, buf, sizeof(buf)));
	TE("recv MSG_WAITALL times out", recv(a, buf, 10, MSG_WAITALL));
	T("peer sends 3", tp_sends(&p, "abc"));
	arrived(a);
	n = TE("recv 10 MSG_WAITALL, 3 there, times out with them", recv(a, buf, 10, MSG_WAITALL));
	show("  got", buf, n);
	tv.tv_usec = 0;
	TE("SO_RCVTIMEO 0", setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));

	t_note("== SO_RCVLOWAT");
	int lowat = 10;
	TE("SO_RCVLOWAT 10", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)));
	T("peer sends 4", tp_sends(&p, "four"));
	tp_wait("epoll, 4 of 10", ep, 4, 0);
	T("peer sends 6", tp_sends(&p, "sixsix"));
	tp_wait("epoll, 10 of 10", ep, 4, 5000);
	n = TE("recv MSG_DONTWAIT", recv(a, buf, sizeof(buf), MSG_DONTWAIT));
	show("  got", buf, n);
	T("peer sends 4", tp_sends(&p, "more"));
	tp_wait("epoll, 4 of 10", ep, 4, 0);
	n = TE("recv MSG_DONTWAIT, 4 of 10", recv(a, buf, sizeof(buf), MSG_DONTWAIT));
	show("  got", buf, n);
	lowat = 1;
	TE("SO_RCVLOWAT 1", setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)));

	t_note("== MSG_OOB");
	TE("recv MSG_OOB, no urgent data", recv(a, buf, 1, MSG_OOB));

	t_note("== EOF");
	T("peer sends 3", tp_sends(&p, "eof"));
	T("peer closes", tp_op(&p, TP_CLOSE));
	tp_wait("epoll", ep, 4, 5000);
	fionread("3 bytes and EOF", a);
	n = TE("recv MSG_PEEK", recv(a, buf, 64, MSG_PEEK));
	show("  got", buf, n);
	n = TE("read", read(a, buf, 64));
	show("  got", buf, n);
	TE("read at EOF", read(a, buf, 64));
	TE("read at EOF again", read(a, buf, 64));
	TE("recv MSG_PEEK at EOF", recv(a, buf, 64, MSG_PEEK));
	TE("recv MSG_WAITALL at EOF", recv(a, buf, 64, MSG_WAITALL));
	TE("read 0 at EOF", read(a, buf, 0));
	fionread("at EOF", a);
	tp_peer_end(&p);

	t_note("== a read into an invalid buffer");
	p = tp_peer_start(port);
	int b = accept(l, NULL, NULL);
	TE("ADD", tp_ctl(ep, EPOLL_CTL_ADD, b, EPOLLIN, 2));
	T("peer sends 6", tp_sends(&p, "intact"));
	tp_wait("epoll", ep, 4, 5000);
	void *volatile bad = (void *)1; /* volatile: hidden from the compiler's checks */
	TE("read into address 1", read(b, bad, 6));
	TE("recv into address 1", recv(b, bad, 6, 0));
	n = TE("read", read(b, buf, 64));
	show("  got", buf, n);
	close(b);
	close(a);
	close(ep);
	close(l);
	t_note("peer: %s", t_status(tp_peer_end(&p)));
	return 0;
}
