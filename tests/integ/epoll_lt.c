/* Level-triggered epoll over accepted TCP connections (batch mode watches
 * these itself): event masks and data, re-reporting while bytes are left
 * unread, EPOLLOUT on an idle connection, EOF with and without EPOLLRDHUP,
 * a reset peer, RDNORM/WRNORM-only interest, fairness with maxevents 1, two
 * epoll instances on one socket, a pipe and a socket in one set, and the
 * errors of epoll_ctl/epoll_wait. Peers are forked processes (tcp_peer.h). */
#include <sys/epoll.h>

#include "tcp_peer.h"

static void rd(const char *label, int fd, size_t n)
{
	char buf[256];
	long r = TE(label, read(fd, buf, n < sizeof(buf) ? n : sizeof(buf)));
	if (r > 0)
		t_bytes("  got", buf, r);
}

static int accept_nb(int l)
{
	int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	if (a < 0)
		t_die("accept4");
	return a;
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	t_expect("served_ring>0");
	int port;
	int l = tp_listen(&port, 0, 64);
	struct tp_peer p1 = tp_peer_start(port);
	int a = accept_nb(l);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		t_die("epoll_create1");

	t_note("== idle connection");
	TE("ADD a IN|OUT|RDHUP data=1", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1));
	tp_wait("wait", ep, 8, 0);
	tp_wait("wait again (level)", ep, 8, 0);
	TE("MOD a IN|RDHUP data=2", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLRDHUP, 2));
	tp_wait("wait, nothing to read", ep, 8, 0);
	TE("read empty", read(a, (char[8]){ 0 }, 8));

	t_note("== bytes arrive");
	T("peer sends 11", tp_sends(&p1, "hello world"));
	tp_wait("wait", ep, 8, 5000);
	tp_wait("wait again, unread", ep, 8, 0);
	rd("read 5", a, 5);
	tp_wait("wait, 6 left", ep, 8, 0);
	rd("read rest", a, 64);
	tp_wait("wait, all read", ep, 8, 0);
	TE("read empty", read(a, (char[8]){ 0 }, 8));

	t_note("== two arrivals, one read");
	T("peer sends 3", tp_sends(&p1, "abc"));
	T("peer sends 3", tp_sends(&p1, "def"));
	tp_wait("wait", ep, 8, 5000);
	rd("read 64", a, 64);
	tp_wait("wait, all read", ep, 8, 0);

	t_note("== 300000 bytes read in a level-triggered loop");
	{
		static char big[300000], in[300000];
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (char)(i * 131 + (i >> 9));
		tp_start(&p1, TP_SEND_NOACK, big, (int)sizeof(big), 0);
		size_t got = 0;
		int waits_ok = 1;
		while (got < sizeof(in)) {
			struct epoll_event ev[4];
			int n = epoll_wait(ep, ev, 4, 5000);
			if (n != 1 || ev[0].data.u64 != 2 || ev[0].events != EPOLLIN) {
				waits_ok = 0;
				break;
			}
			ssize_t r = read(a, in + got, 7000);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		long sent = tp_finish(&p1, NULL, NULL, 0);
		t_note("peer sent %ld, read %zu, every wait said IN for data 2: %s", sent, got,
		       tp_yesno(waits_ok));
		t_bytes("read", in, (long)got);
		tp_wait("wait, all read", ep, 8, 0);
	}

	t_note("== EPOLLOUT together with EPOLLIN");
	TE("MOD a IN|OUT data=3", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLOUT, 3));
	tp_wait("wait idle", ep, 8, 0);
	T("peer sends 1", tp_sends(&p1, "x"));
	tp_wait("wait", ep, 8, 5000);
	rd("read", a, 64);
	tp_wait("wait after read", ep, 8, 0);

	t_note("== interest in RDNORM|WRNORM only");
	TE("MOD a RDNORM|WRNORM data=4", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLRDNORM | EPOLLWRNORM, 4));
	tp_wait("wait idle", ep, 8, 0);
	T("peer sends 1", tp_sends(&p1, "y"));
	tp_wait("wait", ep, 8, 5000);
	rd("read", a, 64);
	TE("MOD a RDNORM data=5", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLRDNORM, 5));
	tp_wait("wait after read", ep, 8, 0);

	t_note("== three connections ready, maxevents 1");
	TE("MOD a IN data=6", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN, 6));
	struct tp_peer p[3];
	int b[3];
	int ep2 = epoll_create1(0);
	for (int i = 0; i < 3; i++) {
		p[i] = tp_peer_start(port);
		b[i] = accept_nb(l);
		char lab[64];
		snprintf(lab, sizeof(lab), "ADD b%d IN data=%d", i, 10 + i);
		TE(lab, tp_ctl(ep, EPOLL_CTL_ADD, b[i], EPOLLIN, 10 + (uint64_t)i));
	}
	TE("ADD b0 to a second epoll IN data=100", tp_ctl(ep2, EPOLL_CTL_ADD, b[0], EPOLLIN, 100));
	tp_wait("wait", ep, 8, 0);
	for (int i = 0; i < 3; i++) {
		char msg[8];
		snprintf(msg, sizeof(msg), "b%d", i);
		T("peer sends 2", tp_sends(&p[i], msg));
	}
	uint64_t seen = 0;
	int calls_ok = 1;
	for (int i = 0; i < 3; i++) {
		struct epoll_event ev[1];
		int n = epoll_wait(ep, ev, 1, 5000);
		if (n != 1 || ev[0].events != EPOLLIN || ev[0].data.u64 < 10 || ev[0].data.u64 > 12)
			calls_ok = 0;
		else
			seen |= 1u << (ev[0].data.u64 - 10);
	}
	t_note("three waits of one event each: ok=%s, distinct connections=%d", tp_yesno(calls_ok),
	       __builtin_popcountll(seen));
	tp_wait("wait 8", ep, 8, 0);
	tp_wait("second epoll", ep2, 8, 0);
	for (int i = 0; i < 3; i++)
		rd("read", b[i], 64);
	tp_wait("wait, all read", ep, 8, 0);
	tp_wait("second epoll, all read", ep2, 8, 0);

	t_note("== a pipe and a socket in the same set");
	int pp[2];
	if (pipe(pp))
		t_die("pipe");
	TE("ADD pipe IN data=20", tp_ctl(ep, EPOLL_CTL_ADD, pp[0], EPOLLIN, 20));
	tp_wait("wait, both idle", ep, 8, 0);
	TE("write pipe", write(pp[1], "P", 1));
	tp_wait("wait, pipe ready", ep, 8, 5000);
	T("peer 1 sends 1", tp_sends(&p[1], "Q"));
	tp_wait("wait, both ready", ep, 8, 5000);
	rd("read pipe", pp[0], 8);
	tp_wait("wait, socket ready", ep, 8, 0);
	rd("read b1", b[1], 8);
	tp_wait("wait, none ready", ep, 8, 0);
	TE("write pipe", write(pp[1], "R", 1));
	T("peer 2 sends 1", tp_sends(&p[2], "S"));
	tp_wait("wait, both ready again", ep, 8, 5000);
	rd("read pipe", pp[0], 8);
	rd("read b2", b[2], 8);

	t_note("== EOF with EPOLLRDHUP asked for");
	TE("MOD a IN|OUT|RDHUP data=7", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 7));
	T("peer sends 3", tp_sends(&p1, "bye"));
	T("peer closes", tp_op(&p1, TP_CLOSE));
	tp_wait("wait", ep, 8, 5000);
	rd("read", a, 64);
	rd("read at EOF", a, 64);
	rd("read at EOF again", a, 64);
	tp_wait("wait after EOF (level)", ep, 8, 0);
	TE("shutdown SHUT_WR", shutdown(a, SHUT_WR));
	tp_wait("wait after shutdown", ep, 8, 0);
	TE("MOD a IN data=8", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN, 8));
	tp_wait("wait, IN only asked", ep, 8, 0);
	TE("DEL a", epoll_ctl(ep, EPOLL_CTL_DEL, a, NULL));
	TE("close a", close(a));

	t_note("== EOF without EPOLLRDHUP");
	TE("MOD b0 IN|OUT data=12", tp_ctl(ep, EPOLL_CTL_MOD, b[0], EPOLLIN | EPOLLOUT, 12));
	T("peer 0 closes", tp_op(&p[0], TP_CLOSE));
	tp_wait("wait", ep, 8, 5000);
	tp_wait("second epoll (IN asked)", ep2, 8, 0);
	rd("read at EOF", b[0], 64);

	t_note("== peer resets the connection");
	TE("MOD b1 IN|OUT|RDHUP data=13", tp_ctl(ep, EPOLL_CTL_MOD, b[1], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 13));
	TE("DEL b0", epoll_ctl(ep, EPOLL_CTL_DEL, b[0], NULL));
	T("peer 1 resets", tp_op(&p[1], TP_RESET));
	tp_wait("wait", ep, 8, 5000);
	rd("recv after reset", b[1], 64);
	tp_wait("wait after the error was read", ep, 8, 0);
	rd("read again", b[1], 64);
	rd("read again", b[1], 64);
	int soerr = -1;
	socklen_t sl = sizeof(soerr);
	TE("getsockopt SO_ERROR", getsockopt(b[1], SOL_SOCKET, SO_ERROR, &soerr, &sl));
	t_note("  SO_ERROR=%s", soerr ? t_errname(soerr) : "0");
	TE("DEL b1", epoll_ctl(ep, EPOLL_CTL_DEL, b[1], NULL));

	t_note("== reset with unread bytes");
	TE("MOD b2 IN|OUT|RDHUP data=14", tp_ctl(ep, EPOLL_CTL_MOD, b[2], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 14));
	T("peer 2 sends 3", tp_sends(&p[2], "zzz"));
	tp_wait("wait", ep, 8, 5000);
	T("peer 2 resets", tp_op(&p[2], TP_RESET));
	tp_wait("wait", ep, 8, 5000);
	rd("read", b[2], 64);
	rd("read", b[2], 64);
	rd("read", b[2], 64);
	tp_wait("wait", ep, 8, 0);

	t_note("== epoll_ctl errors");
	int file = open("epoll_lt.tmp", O_RDWR | O_CREAT | O_TRUNC, 0600);
	unlink("epoll_lt.tmp");
	struct tp_peer p5 = tp_peer_start(port);
	int c = accept_nb(l);
	int closed = dup(c);
	close(closed);
	struct epoll_event ev = { EPOLLIN, { .u64 = 30 } };
	TE("ADD c", epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
	TE("ADD c again", epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
	TE("MOD c only in the second epoll", epoll_ctl(ep2, EPOLL_CTL_MOD, c, &ev));
	TE("DEL c only in the second epoll", epoll_ctl(ep2, EPOLL_CTL_DEL, c, NULL));
	TE("DEL b2 twice", epoll_ctl(ep, EPOLL_CTL_DEL, b[2], NULL));
	TE("DEL b2 twice", epoll_ctl(ep, EPOLL_CTL_DEL, b[2], NULL));
	TE("MOD b2 not registered", epoll_ctl(ep, EPOLL_CTL_MOD, b[2], &ev));
	TE("ADD closed fd", epoll_ctl(ep, EPOLL_CTL_ADD, closed, &ev));
	TE("ADD fd -1", epoll_ctl(ep, EPOLL_CTL_ADD, -1, &ev));
	TE("ADD to a closed epfd", epoll_ctl(closed, EPOLL_CTL_ADD, c, &ev));
	TE("ADD with a pipe as epfd", epoll_ctl(pp[0], EPOLL_CTL_ADD, c, &ev));
	TE("ADD epfd to itself", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
	TE("ADD a regular file", epoll_ctl(ep, EPOLL_CTL_ADD, file, &ev));
	TE("ADD NULL event", epoll_ctl(ep, EPOLL_CTL_ADD, b[2], NULL));
	TE("op 99", epoll_ctl(ep, 99, c, &ev));
	TE("op 99 on a closed fd", epoll_ctl(ep, 99, closed, &ev));
	TE("ADD EXCLUSIVE|ONESHOT", tp_ctl(ep, EPOLL_CTL_ADD, b[2], EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 31));
	TE("ADD EXCLUSIVE|RDHUP", tp_ctl(ep, EPOLL_CTL_ADD, b[2], EPOLLIN | EPOLLEXCLUSIVE | EPOLLRDHUP, 31));
	TE("ADD b0 EXCLUSIVE|RDNORM", tp_ctl(ep, EPOLL_CTL_ADD, b[0], EPOLLRDNORM | EPOLLEXCLUSIVE, 31));
	TE("DEL b0 (not registered)", epoll_ctl(ep, EPOLL_CTL_DEL, b[0], NULL));
	TE("MOD c with EXCLUSIVE", tp_ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLEXCLUSIVE, 31));
	TE("MOD not registered with EXCLUSIVE", tp_ctl(ep, EPOLL_CTL_MOD, b[2], EPOLLIN | EPOLLEXCLUSIVE, 31));
	TE("ADD b2 EXCLUSIVE", tp_ctl(ep, EPOLL_CTL_ADD, b[2], EPOLLIN | EPOLLOUT | EPOLLEXCLUSIVE, 32));
	tp_wait("wait (b2 reset, c idle)", ep, 8, 0);
	TE("MOD the EXCLUSIVE item", tp_ctl(ep, EPOLL_CTL_MOD, b[2], EPOLLIN, 33));
	TE("DEL the EXCLUSIVE item", epoll_ctl(ep, EPOLL_CTL_DEL, b[2], NULL));

	t_note("== epoll_wait errors and timeouts");
	struct epoll_event evs[4];
	volatile int zero = 0, minus1 = -1;
	TE("maxevents 0", epoll_wait(ep, evs, zero, 0));
	TE("maxevents -1", epoll_wait(ep, evs, minus1, 0));
	TE("maxevents 0 on a closed fd", epoll_wait(closed, evs, zero, 0));
	TE("closed epfd", epoll_wait(closed, evs, 4, 0));
	TE("pipe as epfd", epoll_wait(pp[0], evs, 4, 0));
	TE("timeout 0, nothing ready", epoll_wait(ep, evs, 4, 0));
	TE("timeout 30 ms, nothing ready", epoll_wait(ep, evs, 4, 30));
	T("peer 5 sends", tp_sends(&p5, "c!"));
	tp_wait("wait", ep, 4, 5000);
	rd("read c", c, 8);

	close(file);
	close(c);
	for (int i = 0; i < 3; i++)
		close(b[i]);
	close(pp[0]);
	close(pp[1]);
	close(ep2);
	close(ep);
	close(l);
	t_note("peer: %s", t_status(tp_peer_end(&p1)));
	for (int i = 0; i < 3; i++)
		t_note("peer: %s", t_status(tp_peer_end(&p[i])));
	t_note("peer: %s", t_status(tp_peer_end(&p5)));
	return 0;
}
