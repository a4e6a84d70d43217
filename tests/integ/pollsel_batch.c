/* poll() and select() over TCP sockets that are also in an epoll set
 * (batch mode holds their received bytes and queued writes): bytes already
 * received make poll say POLLIN and select say readable; a poll that has to
 * wait returns when bytes arrive; epoll keeps working after poll was used on
 * the same socket; pipes and sockets mixed; EOF; writing a request and then
 * polling or selecting for the reply; an epoll fd watched by poll and by
 * another epoll. */
#include <sys/epoll.h>
#include <sys/select.h>

#include "tcp_peer.h"

static const char *revstr(short r)
{
	static char s[128];
	static const struct {
		short bit;
		const char *name;
	} names[] = { { POLLIN, "IN" },	    { POLLPRI, "PRI" },	    { POLLOUT, "OUT" },
		      { POLLRDNORM, "RDNORM" }, { POLLWRNORM, "WRNORM" }, { POLLERR, "ERR" },
		      { POLLHUP, "HUP" },	    { POLLNVAL, "NVAL" },	    { POLLRDHUP, "RDHUP" } };
	s[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (r & names[i].bit) {
			if (s[0])
				strcat(s, "|");
			strcat(s, names[i].name);
			r = (short)(r & ~names[i].bit);
		}
	}
	if (r)
		sprintf(s + strlen(s), "%s0x%x", s[0] ? "|" : "", (unsigned)(unsigned short)r);
	return s[0] ? s : "0";
}

/* poll() over up to 4 fds; prints the count and each revents. */
static int pl(const char *label, int timeout, int n, const int *fds, const short *events)
{
	struct pollfd p[4];
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){ fds[i], events[i], 0x5a5a };
	errno = 0;
	int r = poll(p, (nfds_t)n, timeout);
	int e = errno;
	if (r < 0) {
		printf("%s: ret=-1 errno=%s\n", label, t_errname(e));
	} else {
		printf("%s: ret=%d", label, r);
		for (int i = 0; i < n; i++)
			printf(" [%d]=%s", i, revstr(p[i].revents));
		printf("\n");
	}
	fflush(stdout);
	return r;
}

static int pl1(const char *label, int timeout, int fd, short events)
{
	return pl(label, timeout, 1, &fd, &events);
}

/* select() for reading on rfds and writing on wfds (-1 ends a list). */
static int sel(const char *label, long timeout_ms, const int *rfds, const int *wfds)
{
	fd_set r, w;
	FD_ZERO(&r);
	FD_ZERO(&w);
	int maxfd = -1;
	for (const int *p = rfds; p && *p >= 0; p++) {
		FD_SET(*p, &r);
		maxfd = *p > maxfd ? *p : maxfd;
	}
	for (const int *p = wfds; p && *p >= 0; p++) {
		FD_SET(*p, &w);
		maxfd = *p > maxfd ? *p : maxfd;
	}
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	errno = 0;
	int n = select(maxfd + 1, &r, &w, NULL, &tv);
	int e = errno;
	if (n < 0) {
		printf("%s: ret=-1 errno=%s\n", label, t_errname(e));
	} else {
		printf("%s: ret=%d", label, n);
		for (const int *p = rfds; p && *p >= 0; p++)
			printf(" r[%d]=%s", (int)(p - rfds), tp_yesno(FD_ISSET(*p, &r)));
		for (const int *p = wfds; p && *p >= 0; p++)
			printf(" w[%d]=%s", (int)(p - wfds), tp_yesno(FD_ISSET(*p, &w)));
		printf("\n");
	}
	fflush(stdout);
	return n;
}

static int listener, port;

static int conn(struct tp_peer *p)
{
	*p = tp_peer_start(port);
	int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
	if (fd < 0)
		t_die("accept4");
	return fd;
}

static void rd(const char *label, int fd)
{
	char buf[256];
	long r = TE(label, read(fd, buf, sizeof(buf)));
	if (r > 0)
		t_bytes("  got", buf, r);
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	t_expect("served_ring>0");
	listener = tp_listen(&port, 0, 16);
	struct tp_peer p, q, r;
	int a = conn(&p);
	int b = conn(&q);
	int ep = epoll_create1(0);
	int pp[2];
	if (ep < 0 || pipe(pp))
		t_die("setup");
	TE("ADD a IN data=1", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 1));
	TE("ADD b IN data=2", tp_ctl(ep, EPOLL_CTL_ADD, b, EPOLLIN, 2));

	t_note("== bytes already received");
	T("peer a sends 3", tp_sends(&p, "abc"));
	tp_wait("epoll", ep, 4, 5000);
	pl1("poll a IN, 0", 0, a, POLLIN);
	pl1("poll a IN|OUT|RDHUP, 0", 0, a, POLLIN | POLLOUT | POLLRDHUP);
	pl1("poll a IN, 1000", 1000, a, POLLIN);
	pl1("poll a 0 events", 0, a, 0);
	sel("select a r, a w", 0, (int[]){ a, -1 }, (int[]){ a, -1 });
	sel("select a,b r", 1000, (int[]){ a, b, -1 }, NULL);
	int both[2] = { a, b };
	pl("poll a,b IN", 1000, 2, both, (short[]){ POLLIN, POLLIN });
	rd("read a", a);
	pl1("poll a IN after the read, 0", 0, a, POLLIN);
	sel("select a r after the read, 0", 0, (int[]){ a, -1 }, NULL);

	t_note("== poll has to wait");
	pl1("poll a IN, 50 ms, nothing comes", 50, a, POLLIN);
	tp_start(&p, TP_SEND_LATE, "late", 4, 0);
	pl1("poll a IN, bytes come while blocked", 5000, a, POLLIN);
	T("peer sent", tp_finish(&p, NULL, NULL, 0));
	rd("read a", a);
	TE("read a again", read(a, (char[8]){ 0 }, 8));
	t_note("== epoll after poll");
	T("peer a sends 5", tp_sends(&p, "again"));
	tp_wait("epoll", ep, 4, 5000);
	rd("read a", a);
	tp_start(&p, TP_SEND_LATE, "sel", 3, 0);
	sel("select a r, bytes come while blocked", 5000, (int[]){ a, -1 }, NULL);
	T("peer sent", tp_finish(&p, NULL, NULL, 0));
	rd("read a", a);
	T("peer a sends 4", tp_sends(&p, "more"));
	tp_wait("epoll", ep, 4, 5000);
	rd("read a", a);

	t_note("== pipes and sockets together");
	TE("write pipe", write(pp[1], "p", 1));
	T("peer b sends 1", tp_sends(&q, "b"));
	tp_wait("epoll", ep, 4, 5000);
	int three[3] = { pp[0], a, b };
	pl("poll pipe,a,b IN", 1000, 3, three, (short[]){ POLLIN, POLLIN, POLLIN });
	sel("select pipe,a,b r; pipe-w,b w", 1000, (int[]){ pp[0], a, b, -1 }, (int[]){ pp[1], b, -1 });
	rd("read pipe", pp[0]);
	pl("poll pipe,a,b IN", 0, 3, three, (short[]){ POLLIN, POLLIN, POLLIN });
	rd("read b", b);
	pl("poll pipe,a,b IN", 0, 3, three, (short[]){ POLLIN, POLLIN, POLLIN });
	tp_start(&q, TP_SEND_LATE, "B", 1, 0);
	pl("poll pipe,a,b IN, b's bytes come while blocked", 5000, 3, three,
	   (short[]){ POLLIN, POLLIN, POLLIN });
	T("peer sent", tp_finish(&q, NULL, NULL, 0));
	rd("read b", b);

	t_note("== write a request, then poll for the reply (sockets not in epoll)");
	int c = conn(&r);
	tp_start(&r, TP_ECHO, NULL, 0, 64);
	TE("write ping", write(c, "ping", 4));
	pl1("poll IN, 3000", 3000, c, POLLIN);
	rd("read", c);
	T("peer echoed", tp_finish(&r, NULL, NULL, 0));
	close(c);
	tp_peer_end(&r);
	c = conn(&r);
	tp_start(&r, TP_ECHO, NULL, 0, 64);
	TE("write pong", write(c, "pong", 4));
	sel("select r, 3000", 3000, (int[]){ c, -1 }, NULL);
	rd("read", c);
	T("peer echoed", tp_finish(&r, NULL, NULL, 0));
	close(c);
	tp_peer_end(&r);

	t_note("== EOF (a socket poll never waited for)");
	c = conn(&r);
	TE("ADD c IN data=3", tp_ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN, 3));
	T("peer c sends 3", tp_sends(&r, "eof"));
	T("peer c closes", tp_op(&r, TP_CLOSE));
	tp_wait("epoll", ep, 4, 5000);
	pl1("poll c IN|RDHUP", 1000, c, POLLIN | POLLRDHUP);
	pl1("poll c IN", 1000, c, POLLIN);
	sel("select c r", 1000, (int[]){ c, -1 }, NULL);
	rd("read c", c);
	rd("read c", c);
	pl1("poll c IN|RDHUP after EOF was read", 1000, c, POLLIN | POLLRDHUP);
	TE("DEL c", epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL));
	close(c);
	tp_peer_end(&r);

	t_note("== an epoll fd under poll and under another epoll (a socket poll never waited for)");
	int ep1 = epoll_create1(0);
	c = conn(&r);
	TE("ADD c to ep1 IN data=4", tp_ctl(ep1, EPOLL_CTL_ADD, c, EPOLLIN, 4));
	int ep2 = epoll_create1(0);
	TE("ADD ep1 to ep2 IN data=9", tp_ctl(ep2, EPOLL_CTL_ADD, ep1, EPOLLIN, 9));
	pl1("poll ep1 IN, c idle", 0, ep1, POLLIN);
	tp_wait("epoll ep2, c idle", ep2, 4, 0);
	T("peer c sends 1", tp_sends(&r, "n"));
	tp_wait("epoll ep2, c has bytes", ep2, 4, 5000);
	pl1("poll ep1 IN, c has bytes", 1000, ep1, POLLIN);
	tp_wait("epoll ep1", ep1, 4, 0);
	rd("read c", c);
	tp_wait("epoll ep2, all read", ep2, 4, 0);
	close(c);
	close(ep1);
	t_note("peer: %s", t_status(tp_peer_end(&r)));

	close(ep2);
	close(ep);
	close(a);
	close(b);
	close(pp[0]);
	close(pp[1]);
	close(listener);
	t_note("peer: %s", t_status(tp_peer_end(&p)));
	t_note("peer: %s", t_status(tp_peer_end(&q)));
	return 0;
}
