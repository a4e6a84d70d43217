/* UDP over loopback, IPv4 and IPv6: connected and unconnected sockets,
 * sendto/recvfrom addresses, empty datagrams, truncation, size limits,
 * ECONNREFUSED reported on a connected socket by the call after the one
 * whose datagram hit a closed port, and disconnecting with AF_UNSPEC. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "check.h"

static const char *yesno(int b)
{
	return b ? "yes" : "no";
}

static void wait_event(int fd, short ev)
{
	struct pollfd pf = { fd, ev, 0 };
	poll(&pf, 1, 5000);
}

struct fam {
	const char *name;
	int af;
	struct sockaddr_storage lo; /* loopback, port 0 */
	socklen_t len;
};

static int bound(struct fam *f, struct sockaddr_storage *a, socklen_t *al)
{
	int s = socket(f->af, SOCK_DGRAM, 0);
	if (s < 0)
		return -1;
	*a = f->lo;
	*al = f->len;
	if (bind(s, (struct sockaddr *)a, f->len) || getsockname(s, (struct sockaddr *)a, al)) {
		close(s);
		return -1;
	}
	return s;
}

static void run(struct fam *f)
{
	char buf[70000];
	long n;
	struct sockaddr_storage aa, ba, from;
	socklen_t aal, bal, fl;
	int a = bound(f, &aa, &aal), b = bound(f, &ba, &bal);
	if (a < 0 || b < 0) {
		t_note("== %s: (unavailable; nothing to compare)", f->name);
		if (a >= 0)
			close(a);
		if (b >= 0)
			close(b);
		return;
	}
	t_note("== %s unconnected", f->name);
	TE("sendto b", sendto(a, "one", 3, 0, (struct sockaddr *)&ba, bal));
	fl = sizeof(from);
	n = TE("recvfrom", recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
	t_bytes("  got", buf, n);
	t_note("  addrlen=%u, source == a's address: %s", (unsigned)fl, yesno(fl == aal && !memcmp(&from, &aa, aal)));
	TE("sendto empty datagram", sendto(a, "", 0, 0, (struct sockaddr *)&ba, bal));
	TE("sendto after the empty one", sendto(a, "two", 3, 0, (struct sockaddr *)&ba, bal));
	fl = sizeof(from);
	TE("recvfrom empty datagram", recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
	t_note("  addrlen=%u, source == a's address: %s", (unsigned)fl, yesno(fl == aal && !memcmp(&from, &aa, aal)));
	n = TE("recv next", recv(b, buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	TE("send without a destination", send(a, "x", 1, 0));
	TE("recv MSG_DONTWAIT nothing", recv(b, buf, sizeof(buf), MSG_DONTWAIT));
	TE("sendto truncation test", sendto(a, "0123456789", 10, 0, (struct sockaddr *)&ba, bal));
	n = TE("recv 4 (rest discarded)", recv(b, buf, 4, 0));
	t_bytes("  got", buf, n);
	TE("recv MSG_DONTWAIT (nothing left)", recv(b, buf, sizeof(buf), MSG_DONTWAIT));
	TE("sendto for recv 0", sendto(a, "zero", 4, 0, (struct sockaddr *)&ba, bal));
	TE("sendto next", sendto(a, "next", 4, 0, (struct sockaddr *)&ba, bal));
	TE("recv 0 bytes", recv(b, buf, 0, 0));
	TE("read 0 bytes", read(b, buf, 0));
	n = TE("recv", recv(b, buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	struct iovec wv[3] = { { "ab", 2 }, { "", 0 }, { "cd", 2 } };
	struct msghdr wm = { .msg_name = &ba, .msg_namelen = bal, .msg_iov = wv, .msg_iovlen = 3 };
	TE("sendmsg 3 iovecs = 1 datagram", sendmsg(a, &wm, 0));
	char x[3], y[8];
	struct iovec rv[2] = { { x, 3 }, { y, 8 } };
	struct msghdr rm = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = rv, .msg_iovlen = 2 };
	n = TE("recvmsg into 2 iovecs", recvmsg(b, &rm, 0));
	t_bytes("  x", x, n < 3 ? n : 3);
	t_bytes("  y", y, n > 3 ? n - 3 : 0);
	t_note("  msg_namelen=%u msg_flags=0x%x", (unsigned)rm.msg_namelen, (unsigned)rm.msg_flags);
	static char big[65536];
	size_t maxdg = f->af == AF_INET ? 65507 : 65527;
	TE("sendto largest datagram", sendto(a, big, maxdg, 0, (struct sockaddr *)&ba, bal));
	TE("sendto one byte more", sendto(a, big, maxdg + 1, 0, (struct sockaddr *)&ba, bal));
	TE("recv largest", recv(b, buf, sizeof(buf), 0));

	t_note("== %s connected", f->name);
	TE("connect a -> b", connect(a, (struct sockaddr *)&ba, bal));
	TE("send", send(a, "conn", 4, 0));
	TE("write", write(a, "w", 1));
	fl = sizeof(from);
	n = TE("recvfrom", recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
	t_note("  source == a: %s", yesno(fl == aal && !memcmp(&from, &aa, aal)));
	n = TE("read", read(b, buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	/* A connected socket only receives from its peer. */
	struct sockaddr_storage ca;
	socklen_t cal;
	int c = bound(f, &ca, &cal);
	TE("c sends to a (a is connected to b)", sendto(c, "from c", 6, 0, (struct sockaddr *)&aa, aal));
	TE("b sends to a", sendto(b, "from b", 6, 0, (struct sockaddr *)&aa, aal));
	n = TE("a recv", recv(a, buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	TE("a recv MSG_DONTWAIT (c's was dropped)", recv(a, buf, sizeof(buf), MSG_DONTWAIT));
	TE("a sendto c despite being connected", sendto(a, "to c", 4, 0, (struct sockaddr *)&ca, cal));
	n = TE("c recv", recv(c, buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);

	t_note("== %s ECONNREFUSED on a connected socket", f->name);
	/* A port that was bound and closed: nobody listens there. */
	struct sockaddr_storage dead;
	socklen_t deadl;
	int d = bound(f, &dead, &deadl);
	close(d);
	TE("connect c -> closed port", connect(c, (struct sockaddr *)&dead, deadl));
	TE("send (this one succeeds)", send(c, "knock", 5, 0));
	wait_event(c, POLLERR);
	TE("recv (reports the ICMP error)", recv(c, buf, sizeof(buf), 0));
	TE("recv MSG_DONTWAIT (error consumed)", recv(c, buf, sizeof(buf), MSG_DONTWAIT));
	TE("send again", send(c, "knock", 5, 0));
	wait_event(c, POLLERR);
	TE("send (reports the error)", send(c, "knock", 5, 0));
	TE("send once more", send(c, "knock", 5, 0));
	wait_event(c, POLLERR);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(c, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	t_note("  SO_ERROR: %s", soerr ? t_errname(soerr) : "0");
	TE("unconnected b sends to the closed port", sendto(b, "knock", 5, 0, (struct sockaddr *)&dead, deadl));
	TE("  next recv MSG_DONTWAIT (no error reported)", recv(b, buf, sizeof(buf), MSG_DONTWAIT));

	t_note("== %s disconnect with AF_UNSPEC", f->name);
	struct sockaddr_storage un;
	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNSPEC;
	TE("connect AF_UNSPEC", connect(a, (struct sockaddr *)&un, sizeof(un)));
	TE("send without destination", send(a, "x", 1, 0));
	/* a was bound to port 0, so disconnecting also gives its port back. */
	struct sockaddr_storage now;
	socklen_t nowl = sizeof(now);
	getsockname(a, (struct sockaddr *)&now, &nowl);
	t_note("  a's address unchanged after disconnect: %s", yesno(nowl == aal && !memcmp(&now, &aa, aal)));
	TE("a sendto b", sendto(a, "again", 5, 0, (struct sockaddr *)&ba, bal));
	fl = sizeof(from);
	n = TE("b recvfrom", recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
	getsockname(a, (struct sockaddr *)&now, &nowl);
	t_note("  source == a's new address: %s", yesno(fl == nowl && !memcmp(&from, &now, nowl)));
	close(a);
	close(b);
	close(c);
}

int main(void)
{
	t_expect("served_ring>0");
	struct fam v4 = { "IPv4", AF_INET, { 0 }, sizeof(struct sockaddr_in) };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&v4.lo;
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct fam v6 = { "IPv6", AF_INET6, { 0 }, sizeof(struct sockaddr_in6) };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&v6.lo;
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_loopback;
	run(&v4);
	run(&v6);
	return 0;
}
