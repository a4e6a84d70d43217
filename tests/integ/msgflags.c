/* Message flags and ancillary data: MSG_PEEK, MSG_WAITALL, MSG_TRUNC,
 * MSG_OOB, MSG_MORE; source addresses from recvfrom/recvmsg/accept;
 * msg_namelen and msg_flags (MSG_TRUNC, MSG_CTRUNC); SCM_RIGHTS with the fd
 * numbers the kernel hands out, MSG_CMSG_CLOEXEC, SCM_CREDENTIALS. */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "check.h"

static const char *yesno(int b)
{
	return b ? "yes" : "no";
}

static void flags_of(const char *what, int fl)
{
	t_note("  %s msg_flags:%s%s%s%s%s (0x%x)", what, fl & MSG_TRUNC ? " MSG_TRUNC" : "",
	       fl & MSG_CTRUNC ? " MSG_CTRUNC" : "", fl & MSG_EOR ? " MSG_EOR" : "",
	       fl & MSG_OOB ? " MSG_OOB" : "", fl & MSG_CMSG_CLOEXEC ? " MSG_CMSG_CLOEXEC" : "",
	       (unsigned)fl);
}

static int lowest_free_fd(void)
{
	int fd = dup(0);
	close(fd);
	return fd;
}

static void wait_in(int fd, short ev)
{
	struct pollfd pf = { fd, ev, 0 };
	poll(&pf, 1, 5000);
}

static void tcp_pair(int *c, int *s, struct sockaddr_in *caddr)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		t_die("listener");
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*c, (struct sockaddr *)&a, sizeof(a)))
		t_die("connect");
	al = sizeof(*caddr);
	*s = accept(l, (struct sockaddr *)caddr, &al);
	if (*s < 0)
		t_die("accept");
	close(l);
}

/* Send fds over a unix socket with SCM_RIGHTS. */
static long send_fds(int s, const int *fds, int n, const char *data)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec v = { (void *)data, strlen(data) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	return sendmsg(s, &m, 0);
}

/* Receive with room for `room` fds; prints what came and returns the
 * first fd or -1. */
static int recv_fds(int s, int room, int flags)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	char data[64];
	struct iovec v = { data, sizeof(data) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = room ? CMSG_LEN(sizeof(int) * (size_t)room) : 0,
			    .msg_flags = 0x7fff };
	long n = TE("  recvmsg", recvmsg(s, &m, flags));
	if (n < 0)
		return -1;
	t_bytes("  data", data, n);
	flags_of("recvmsg", m.msg_flags);
	int first = -1, count = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			t_note("  received fd %d, FD_CLOEXEC=%s", fd, yesno(fcntl(fd, F_GETFD) & FD_CLOEXEC));
			if (first < 0)
				first = fd;
			else
				close(fd);
			count++;
		}
	}
	t_note("  fds received: %d, msg_controllen=%zu", count, (size_t)m.msg_controllen);
	return first;
}

int main(void)
{
	char buf[256];
	int sv[2];
	long n;
	t_expect("served_ring>0");

	t_note("== MSG_PEEK");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	TE("write", write(sv[0], "hello", 5));
	n = TE("recv 3 MSG_PEEK", recv(sv[1], buf, 3, MSG_PEEK));
	t_bytes("  peek", buf, n);
	n = TE("recv MSG_PEEK again", recv(sv[1], buf, sizeof(buf), MSG_PEEK));
	t_bytes("  peek", buf, n);
	n = TE("recv", recv(sv[1], buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	TE("recv MSG_PEEK|MSG_DONTWAIT empty", recv(sv[1], buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT));

	t_note("== MSG_WAITALL (the data comes in ten pieces)");
	for (int tcp = 0; tcp < 2; tcp++) {
		int a, b;
		struct sockaddr_in ca;
		if (tcp)
			tcp_pair(&a, &b, &ca);
		else
			a = sv[0], b = sv[1];
		pid_t pid = fork();
		if (pid == 0) {
			for (int i = 0; i < 10; i++) {
				char piece[10];
				memset(piece, '0' + i, sizeof(piece));
				if (send(a, piece, sizeof(piece), 0) != 10)
					_exit(1);
				t_sleep_ms(10);
			}
			_exit(0);
		}
		n = TE(tcp ? "TCP recv 100 MSG_WAITALL" : "unix recv 100 MSG_WAITALL",
		       recv(b, buf, 100, MSG_WAITALL));
		t_bytes("  got", buf, n);
		int st;
		waitpid(pid, &st, 0);
		if (tcp) {
			TE("peer shuts down after 3 bytes", write(a, "end", 3));
			shutdown(a, SHUT_WR);
			n = TE("TCP recv 100 MSG_WAITALL hits EOF", recv(b, buf, 100, MSG_WAITALL));
			t_bytes("  got", buf, n);
			close(a);
			close(b);
		}
	}
	close(sv[0]);
	close(sv[1]);

	t_note("== MSG_TRUNC on datagrams");
	int types[] = { SOCK_DGRAM, SOCK_SEQPACKET };
	for (int t = 0; t < 2; t++) {
		if (socketpair(AF_UNIX, types[t], 0, sv))
			t_die("socketpair");
		t_note("-- unix %s", t ? "seqpacket" : "dgram");
		TE("send 10", send(sv[0], "0123456789", 10, 0));
		TE("send 10", send(sv[0], "abcdefghij", 10, 0));
		TE("send 10", send(sv[0], "ABCDEFGHIJ", 10, 0));
		n = TE("recv 4 MSG_TRUNC", recv(sv[1], buf, 4, MSG_TRUNC));
		t_bytes("  got", buf, 4);
		n = TE("recv 4 MSG_PEEK|MSG_TRUNC", recv(sv[1], buf, 4, MSG_PEEK | MSG_TRUNC));
		char small[4];
		struct iovec v = { small, sizeof(small) };
		struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_flags = 0x7fff };
		n = TE("recvmsg 4", recvmsg(sv[1], &m, 0));
		t_bytes("  got", small, n);
		flags_of("recvmsg", m.msg_flags);
		m.msg_flags = 0x7fff;
		n = TE("recvmsg 4 MSG_TRUNC", recvmsg(sv[1], &m, MSG_TRUNC));
		flags_of("recvmsg", m.msg_flags);
		close(sv[0]);
		close(sv[1]);
	}
	int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in ua = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t ual = sizeof(ua);
	if (bind(u2, (struct sockaddr *)&ua, sizeof(ua)) || getsockname(u2, (struct sockaddr *)&ua, &ual) ||
	    connect(u1, (struct sockaddr *)&ua, sizeof(ua)))
		t_die("udp setup");
	t_note("-- UDP");
	TE("send 10", send(u1, "0123456789", 10, 0));
	TE("send 10", send(u1, "abcdefghij", 10, 0));
	n = TE("recv 4 MSG_TRUNC", recv(u2, buf, 4, MSG_TRUNC));
	t_bytes("  got", buf, 4);
	n = TE("recv 4 MSG_PEEK", recv(u2, buf, 4, MSG_PEEK));
	n = TE("recv 4 MSG_PEEK|MSG_TRUNC", recv(u2, buf, 4, MSG_PEEK | MSG_TRUNC));
	{
		char small[4];
		struct iovec v = { small, sizeof(small) };
		struct sockaddr_in from;
		struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &v,
				    .msg_iovlen = 1, .msg_flags = 0x7fff };
		n = TE("recvmsg 4", recvmsg(u2, &m, 0));
		t_bytes("  got", small, n);
		flags_of("recvmsg", m.msg_flags);
		struct sockaddr_in me;
		socklen_t ml = sizeof(me);
		getsockname(u1, (struct sockaddr *)&me, &ml);
		t_note("  msg_namelen=%u, source matches sender's getsockname: %s", (unsigned)m.msg_namelen,
		       yesno(m.msg_namelen == ml && !memcmp(&from, &me, ml)));
	}

	t_note("== MSG_MORE");
	TE("UDP send \"ab\" MSG_MORE", send(u1, "ab", 2, MSG_MORE));
	TE("UDP send \"cd\" MSG_MORE", send(u1, "cd", 2, MSG_MORE));
	TE("UDP recv MSG_DONTWAIT (nothing sent yet)", recv(u2, buf, sizeof(buf), MSG_DONTWAIT));
	TE("UDP send \"ef\"", send(u1, "ef", 2, 0));
	n = TE("UDP recv: one datagram", recv(u2, buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	{
		int a, b;
		struct sockaddr_in ca;
		tcp_pair(&a, &b, &ca);
		TE("TCP send \"ab\" MSG_MORE", send(a, "ab", 2, MSG_MORE));
		TE("TCP send \"cd\"", send(a, "cd", 2, 0));
		TE("TCP send \"\" ", send(a, "", 0, 0));
		shutdown(a, SHUT_WR);
		n = TE("TCP recv 4 MSG_WAITALL", recv(b, buf, 4, MSG_WAITALL));
		t_bytes("  got", buf, n);
		close(a);
		close(b);
	}

	t_note("== MSG_OOB on TCP");
	{
		int a, b;
		struct sockaddr_in ca;
		tcp_pair(&a, &b, &ca);
		TE("send \"ab\"", send(a, "ab", 2, 0));
		TE("send \"c\" MSG_OOB", send(a, "c", 1, MSG_OOB));
		wait_in(b, POLLPRI);
		n = TE("recv (stops at the mark)", recv(b, buf, sizeof(buf), 0));
		t_bytes("  got", buf, n);
		n = TE("recv MSG_OOB", recv(b, buf, sizeof(buf), MSG_OOB));
		t_bytes("  oob", buf, n);
		TE("recv MSG_OOB again", recv(b, buf, sizeof(buf), MSG_OOB));
		TE("recv MSG_DONTWAIT (the urgent byte is not inline)", recv(b, buf, sizeof(buf), MSG_DONTWAIT));
		TE("send \"xyz\" MSG_OOB", send(a, "xyz", 3, MSG_OOB));
		wait_in(b, POLLPRI);
		n = TE("recv MSG_OOB|MSG_PEEK", recv(b, buf, 1, MSG_OOB | MSG_PEEK));
		t_bytes("  oob", buf, n);
		n = TE("recv", recv(b, buf, sizeof(buf), 0));
		t_bytes("  got", buf, n);
		int on = 1;
		setsockopt(b, SOL_SOCKET, SO_OOBINLINE, &on, sizeof(on));
		TE("send \"q\" MSG_OOB (SO_OOBINLINE at peer)", send(a, "q", 1, MSG_OOB));
		wait_in(b, POLLPRI);
		TE("recv MSG_OOB with SO_OOBINLINE", recv(b, buf, 1, MSG_OOB));
		n = TE("recv inline", recv(b, buf, sizeof(buf), 0));
		t_bytes("  got", buf, n);
		close(a);
		close(b);
	}

	t_note("== source addresses");
	{
		int u3 = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in from, me;
		socklen_t fl, ml = sizeof(me);
		TE("sendto UDP", sendto(u3, "to", 2, 0, (struct sockaddr *)&ua, sizeof(ua)));
		getsockname(u3, (struct sockaddr *)&me, &ml);
		me.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* bound to any, sent from loopback */
		fl = sizeof(from);
		memset(&from, 0, sizeof(from));
		n = TE("recvfrom UDP", recvfrom(u2, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
		t_note("  addrlen=%u, matches sender: %s", (unsigned)fl, yesno(fl == ml && !memcmp(&from, &me, ml)));
		TE("sendto UDP", sendto(u3, "to", 2, 0, (struct sockaddr *)&ua, sizeof(ua)));
		fl = 4;
		memset(&from, 0xee, sizeof(from));
		n = TE("recvfrom UDP addrlen 4", recvfrom(u2, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
		t_note("  addrlen=%u, first 4 bytes match: %s, rest untouched: %s", (unsigned)fl,
		       yesno(!memcmp(&from, &me, 4)), yesno(((unsigned char *)&from)[4] == 0xee));
		TE("sendto UDP", sendto(u3, "to", 2, 0, (struct sockaddr *)&ua, sizeof(ua)));
		fl = 0;
		n = TE("recvfrom UDP addrlen 0", recvfrom(u2, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
		t_note("  addrlen=%u", (unsigned)fl);
		TE("sendto UDP", sendto(u3, "to", 2, 0, (struct sockaddr *)&ua, sizeof(ua)));
		fl = sizeof(from);
		n = TE("recvfrom UDP NULL addr", recvfrom(u2, buf, sizeof(buf), 0, NULL, &fl));
		t_note("  addrlen=%u (untouched)", (unsigned)fl);
		close(u3);
	}
	{
		const char *spath = "msgflags.srv", *cpath = "msgflags.cli";
		unlink(spath);
		unlink(cpath);
		int srv = socket(AF_UNIX, SOCK_DGRAM, 0), cli = socket(AF_UNIX, SOCK_DGRAM, 0),
		    anon = socket(AF_UNIX, SOCK_DGRAM, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX }, ca = { .sun_family = AF_UNIX }, from;
		strcpy(sa.sun_path, spath);
		strcpy(ca.sun_path, cpath);
		socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(spath) + 1);
		if (bind(srv, (struct sockaddr *)&sa, salen) || bind(cli, (struct sockaddr *)&ca, sizeof(ca)))
			t_die("unix bind");
		TE("unix sendto from bound client", sendto(cli, "hi", 2, 0, (struct sockaddr *)&sa, salen));
		socklen_t fl = sizeof(from);
		memset(&from, 0, sizeof(from));
		n = TE("unix recvfrom", recvfrom(srv, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
		t_note("  addrlen=%u family=%d path=\"%s\"", (unsigned)fl, from.sun_family, from.sun_path);
		TE("unix sendto from unbound socket", sendto(anon, "hi", 2, 0, (struct sockaddr *)&sa, salen));
		fl = sizeof(from);
		memset(&from, 0x55, sizeof(from));
		n = TE("unix recvfrom", recvfrom(srv, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
		t_note("  addrlen=%u, family bytes untouched: %s", (unsigned)fl, yesno(from.sun_family == 0x5555));
		TE("unix sendto back to the client", sendto(srv, "back", 4, 0, (struct sockaddr *)&ca,
							    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(cpath) + 1)));
		struct iovec v = { buf, sizeof(buf) };
		struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &v, .msg_iovlen = 1 };
		n = TE("unix recvmsg", recvmsg(cli, &m, 0));
		t_note("  msg_namelen=%u path=\"%s\"", (unsigned)m.msg_namelen, from.sun_path);
		TE("sendto an unbound path", sendto(cli, "x", 1, 0, (struct sockaddr *)&(struct sockaddr_un){ AF_UNIX, "msgflags.none" }, sizeof(struct sockaddr_un)));
		int on = 1;
		setsockopt(srv, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
		TE("send with SO_PASSCRED at the receiver", sendto(cli, "cred", 4, 0, (struct sockaddr *)&sa, salen));
		char cbuf[CMSG_SPACE(sizeof(struct ucred))];
		struct msghdr cm = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		n = TE("recvmsg", recvmsg(srv, &cm, 0));
		struct cmsghdr *c = CMSG_FIRSTHDR(&cm);
		struct ucred uc = { 0, 0, 0 };
		if (c && c->cmsg_type == SCM_CREDENTIALS)
			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
		t_note("  SCM_CREDENTIALS present: %s, pid is ours: %s, uid is ours: %s",
		       yesno(c && c->cmsg_type == SCM_CREDENTIALS), yesno(uc.pid == getpid()), yesno(uc.uid == getuid()));
		close(srv);
		close(cli);
		close(anon);
		unlink(spath);
		unlink(cpath);
	}
	{
		int a, b;
		struct sockaddr_in ca, me;
		socklen_t ml = sizeof(me);
		tcp_pair(&a, &b, &ca);
		getsockname(a, (struct sockaddr *)&me, &ml);
		t_note("accept peer address matches the client's getsockname: %s", yesno(!memcmp(&ca, &me, ml)));
		TE("sendto with an address on connected TCP", sendto(a, "x", 1, 0, (struct sockaddr *)&ua, sizeof(ua)));
		wait_in(b, POLLIN);
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		memset(&from, 0x55, sizeof(from));
		n = TE("recvfrom on TCP", recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
		t_note("  addrlen=%u", (unsigned)fl);
		close(a);
		close(b);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		struct sockaddr_un sa = { AF_UNIX, "x" };
		TE("sendto with an address on a unix stream pair", sendto(sv[0], "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)));
		TE("write", write(sv[0], "y", 1));
		struct iovec v = { buf, sizeof(buf) };
		struct sockaddr_un f2;
		struct msghdr m = { .msg_name = &f2, .msg_namelen = sizeof(f2), .msg_iov = &v, .msg_iovlen = 1 };
		n = TE("recvmsg on a unix stream pair", recvmsg(sv[1], &m, 0));
		t_note("  msg_namelen=%u", (unsigned)m.msg_namelen);
		close(sv[0]);
		close(sv[1]);
	}

	t_note("== accept/accept4 addresses and flags");
	{
		int l = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in la = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t lal = sizeof(la);
		if (bind(l, (struct sockaddr *)&la, sizeof(la)) || listen(l, 8) ||
		    getsockname(l, (struct sockaddr *)&la, &lal))
			t_die("listener");
		int c[3];
		for (int i = 0; i < 3; i++) {
			c[i] = socket(AF_INET, SOCK_STREAM, 0);
			if (connect(c[i], (struct sockaddr *)&la, sizeof(la)))
				t_die("connect");
		}
		struct sockaddr_in pa, me;
		socklen_t pl = sizeof(pa), ml = sizeof(me);
		int a = TE("accept4 SOCK_CLOEXEC|SOCK_NONBLOCK", accept4(l, (struct sockaddr *)&pa, &pl, SOCK_CLOEXEC | SOCK_NONBLOCK));
		getsockname(c[0], (struct sockaddr *)&me, &ml);
		t_note("  addrlen=%u matches client 0: %s; O_NONBLOCK=%s FD_CLOEXEC=%s", (unsigned)pl,
		       yesno(pl == ml && !memcmp(&pa, &me, ml)), yesno(fcntl(a, F_GETFL) & O_NONBLOCK),
		       yesno(fcntl(a, F_GETFD) & FD_CLOEXEC));
		TE("  recv on it", recv(a, buf, 1, 0));
		close(a);
		pl = 6;
		memset(&pa, 0x55, sizeof(pa));
		a = TE("accept addrlen 6", accept(l, (struct sockaddr *)&pa, &pl));
		getsockname(c[1], (struct sockaddr *)&me, &ml);
		t_note("  addrlen=%u, 6 bytes match client 1: %s, rest untouched: %s; O_NONBLOCK=%s FD_CLOEXEC=%s",
		       (unsigned)pl, yesno(!memcmp(&pa, &me, 6)), yesno(((unsigned char *)&pa)[6] == 0x55),
		       yesno(fcntl(a, F_GETFL) & O_NONBLOCK), yesno(fcntl(a, F_GETFD) & FD_CLOEXEC));
		close(a);
		a = TE("accept4 SOCK_CLOEXEC, NULL address", accept4(l, NULL, NULL, SOCK_CLOEXEC));
		t_note("  O_NONBLOCK=%s FD_CLOEXEC=%s", yesno(fcntl(a, F_GETFL) & O_NONBLOCK),
		       yesno(fcntl(a, F_GETFD) & FD_CLOEXEC));
		close(a);
		for (int i = 0; i < 3; i++)
			close(c[i]);
		close(l);

		const char *path = "msgflags.lsn";
		unlink(path);
		int ul = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un usa = { .sun_family = AF_UNIX };
		strcpy(usa.sun_path, path);
		if (bind(ul, (struct sockaddr *)&usa, sizeof(usa)) || listen(ul, 4))
			t_die("unix listener");
		int uc = socket(AF_UNIX, SOCK_STREAM, 0);
		connect(uc, (struct sockaddr *)&usa, sizeof(usa));
		struct sockaddr_un upa;
		socklen_t upl = sizeof(upa);
		a = TE("unix accept from an unbound client", accept(ul, (struct sockaddr *)&upa, &upl));
		t_note("  addrlen=%u family=%d", (unsigned)upl, upa.sun_family);
		close(a);
		close(uc);
		close(ul);
		unlink(path);
	}

	t_note("== SCM_RIGHTS");
	{
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		int p[2];
		if (pipe(p))
			t_die("pipe");
		TE("write into the pipe", write(p[1], "through the passed fd", 21));
		TE("sendmsg pipe read end", send_fds(sv[0], &p[0], 1, "F"));
		close(p[0]);
		int expect = lowest_free_fd();
		int got = recv_fds(sv[1], 1, 0);
		t_note("  received fd is the lowest free number: %s", yesno(got == expect));
		n = TE("  read through it", read(got, buf, sizeof(buf)));
		t_bytes("  got", buf, n);
		TE("  write more into the pipe", write(p[1], "again", 5));
		n = TE("  read through it", read(got, buf, sizeof(buf)));
		t_bytes("  got", buf, n);
		close(got);

		int two[2] = { p[1], sv[0] };
		TE("sendmsg two fds", send_fds(sv[0], two, 2, "2"));
		expect = lowest_free_fd();
		got = recv_fds(sv[1], 1, 0);
		t_note("  received fd is the lowest free number: %s", yesno(got == expect));
		t_note("  it is the pipe's write end: %s", yesno((fcntl(got, F_GETFL) & O_ACCMODE) == O_WRONLY));
		close(got);

		TE("sendmsg one fd", send_fds(sv[0], &p[1], 1, "0"));
		got = recv_fds(sv[1], 0, 0);
		t_note("  got %d", got);

		TE("sendmsg one fd", send_fds(sv[0], &p[1], 1, "C"));
		expect = lowest_free_fd();
		got = recv_fds(sv[1], 1, MSG_CMSG_CLOEXEC);
		t_note("  received fd is the lowest free number: %s", yesno(got == expect));
		close(got);

		/* A received socket works with the ring too. */
		int sv2[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv2))
			t_die("socketpair");
		TE("sendmsg a socket", send_fds(sv[0], &sv2[0], 1, "S"));
		close(sv2[0]);
		got = recv_fds(sv[1], 1, 0);
		TE("  send through the received socket", send(got, "sock", 4, 0));
		n = TE("  recv at the other end", recv(sv2[1], buf, sizeof(buf), 0));
		t_bytes("  got", buf, n);
		close(got);
		close(sv2[1]);

		/* Several messages with fds queued: each recvmsg takes only its own. */
		TE("sendmsg fd 1", send_fds(sv[0], &p[1], 1, "a"));
		TE("sendmsg fd 2", send_fds(sv[0], &p[1], 1, "b"));
		expect = lowest_free_fd();
		got = recv_fds(sv[1], 2, 0);
		t_note("  received fd is the lowest free number: %s", yesno(got == expect));
		close(got);
		got = recv_fds(sv[1], 2, 0);
		close(got);
		close(p[1]);
		close(sv[0]);
		close(sv[1]);
	}
	close(u1);
	close(u2);
	return 0;
}
