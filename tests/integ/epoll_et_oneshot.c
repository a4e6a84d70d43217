/* Edge-triggered and one-shot epoll over an accepted TCP connection:
 * EPOLLET reports each arrival once (again only after new bytes), the
 * read-until-EAGAIN loop, EPOLLONESHOT until EPOLL_CTL_MOD re-arms it, MOD
 * changing events and data, DEL then ADD; then epoll_pwait's signal mask
 * and epoll_pwait2's timespec timeouts. */
#include <sys/epoll.h>
#include <time.h>

#include "tcp_peer.h"

static volatile sig_atomic_t usr1;
static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void rd(const char *label, int fd, size_t n)
{
	char buf[256];
	long r = TE(label, read(fd, buf, n < sizeof(buf) ? n : sizeof(buf)));
	if (r > 0)
		t_bytes("  got", buf, r);
}

/* Read in 1000-byte steps until EAGAIN (or EOF); print how it ended. */
static void drain(const char *label, int fd)
{
	static char all[1 << 20];
	long total = 0, r;
	for (;;) {
		r = read(fd, all + total, 1000);
		if (r <= 0)
			break;
		total += r;
	}
	int e = errno;
	printf("%s: read %ld bytes until ret=%ld%s%s\n", label, total, r, r < 0 ? " errno=" : "",
	       r < 0 ? t_errname(e) : "");
	t_bytes("  got", all, total);
}

static void pwait(const char *label, int ep, int timeout, const sigset_t *mask)
{
	struct epoll_event ev[8];
	errno = 0;
	int n = epoll_pwait(ep, ev, 8, timeout, mask);
	tp_show_events(label, n, errno, ev);
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void pwait2(const char *label, int ep, long sec, long nsec, long min_ms)
{
	struct epoll_event ev[8];
	struct timespec ts = { sec, nsec }, t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	int n = epoll_pwait2(ep, ev, 8, &ts, NULL);
	int e = errno;
	long ms = elapsed_ms(&t0);
	tp_show_events(label, n, e, ev);
	if (min_ms)
		t_note("  waited at least %ld ms: %s", min_ms, tp_yesno(ms >= min_ms));
}

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

	t_note("== EPOLLET: one report per arrival");
	TE("ADD a IN|ET data=1", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN | EPOLLET, 1));
	tp_wait("wait, nothing yet", ep, 8, 0);
	T("peer sends 3", tp_sends(&p, "one"));
	tp_wait("wait", ep, 8, 5000);
	tp_wait("wait again, unread but no new bytes", ep, 8, 0);
	T("peer sends 3", tp_sends(&p, "two"));
	tp_wait("wait, new bytes", ep, 8, 5000);
	tp_wait("wait again", ep, 8, 0);
	rd("read", a, 64);
	rd("read", a, 64);
	tp_wait("wait after EAGAIN", ep, 8, 0);

	t_note("== EPOLLET: read until EAGAIN");
	static char chunk[5000];
	for (int i = 0; i < 3; i++) {
		memset(chunk, 'a' + i, sizeof(chunk));
		T("peer sends 5000", tp_send(&p, chunk, sizeof(chunk)));
	}
	tp_wait("wait", ep, 8, 5000);
	drain("drain", a);
	tp_wait("wait after drain", ep, 8, 0);
	T("peer sends 5000", tp_send(&p, chunk, sizeof(chunk)));
	tp_wait("wait", ep, 8, 5000);
	rd("read 10 only", a, 10);
	tp_wait("wait, 4990 left, no new bytes", ep, 8, 0);
	T("peer sends 3", tp_sends(&p, "end"));
	tp_wait("wait, new bytes", ep, 8, 5000);
	drain("drain", a);

	t_note("== EPOLLET with IN|OUT");
	TE("MOD a IN|OUT|ET data=2", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLOUT | EPOLLET, 2));
	tp_wait("wait, writable", ep, 8, 0);
	tp_wait("wait again", ep, 8, 0);
	T("peer sends 1", tp_sends(&p, "z"));
	tp_wait("wait, bytes", ep, 8, 5000);
	tp_wait("wait again", ep, 8, 0);
	rd("read", a, 64);

	t_note("== EPOLLONESHOT");
	TE("MOD a IN|ONESHOT data=4", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLONESHOT, 4));
	tp_wait("wait, nothing yet", ep, 8, 0);
	T("peer sends 1", tp_sends(&p, "A"));
	tp_wait("wait", ep, 8, 5000);
	tp_wait("wait again, disabled", ep, 8, 0);
	T("peer sends 1", tp_sends(&p, "B"));
	tp_wait("wait, more bytes, still disabled", ep, 8, 0);
	TE("MOD a IN|ONESHOT data=5 (re-arm)", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLONESHOT, 5));
	tp_wait("wait after re-arm", ep, 8, 0);
	tp_wait("wait again", ep, 8, 0);
	rd("read", a, 64);
	TE("MOD a IN|ONESHOT data=6 (re-arm)", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLONESHOT, 6));
	tp_wait("wait, nothing", ep, 8, 0);
	T("peer sends 1", tp_sends(&p, "C"));
	tp_wait("wait", ep, 8, 5000);
	tp_wait("wait again", ep, 8, 0);
	rd("read", a, 64);

	t_note("== EPOLLONESHOT|EPOLLET");
	TE("MOD a IN|ET|ONESHOT data=7", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLET | EPOLLONESHOT, 7));
	T("peer sends 1", tp_sends(&p, "D"));
	tp_wait("wait", ep, 8, 5000);
	tp_wait("wait again", ep, 8, 0);
	TE("MOD a IN|ET|ONESHOT data=8", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLET | EPOLLONESHOT, 8));
	tp_wait("wait after MOD, bytes unread", ep, 8, 0);
	tp_wait("wait again", ep, 8, 0);
	rd("read", a, 64);

	t_note("== a disabled one-shot item is still registered");
	TE("MOD a IN|ONESHOT data=9", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLONESHOT, 9));
	T("peer sends 1", tp_sends(&p, "E"));
	tp_wait("wait", ep, 8, 5000);
	TE("ADD a while disabled", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 10));
	TE("DEL a", epoll_ctl(ep, EPOLL_CTL_DEL, a, NULL));
	TE("ADD a IN data=10", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 10));
	tp_wait("wait (level)", ep, 8, 0);
	tp_wait("wait again", ep, 8, 0);
	rd("read", a, 64);

	t_note("== MOD changes events and data");
	TE("MOD a OUT data=11", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLOUT, 11));
	tp_wait("wait", ep, 8, 0);
	TE("MOD a IN data=12", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN, 12));
	tp_wait("wait, nothing to read", ep, 8, 0);
	T("peer sends 1", tp_sends(&p, "F"));
	tp_wait("wait", ep, 8, 5000);
	TE("MOD a IN|OUT data=13", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLOUT, 13));
	tp_wait("wait", ep, 8, 0);
	TE("MOD a 0 data=14", tp_ctl(ep, EPOLL_CTL_MOD, a, 0, 14));
	tp_wait("wait, no interest", ep, 8, 0);
	rd("read", a, 64);

	t_note("== DEL, bytes arrive, ADD again");
	TE("DEL a", epoll_ctl(ep, EPOLL_CTL_DEL, a, NULL));
	T("peer sends 1", tp_sends(&p, "G"));
	tp_wait("wait, not registered", ep, 8, 0);
	TE("ADD a IN|ET data=15", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN | EPOLLET, 15));
	tp_wait("wait, ready at ADD", ep, 8, 0);
	tp_wait("wait again", ep, 8, 0);
	rd("read", a, 64);

	t_note("== EOF under EPOLLET");
	TE("MOD a IN|RDHUP|ET data=16", tp_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN | EPOLLRDHUP | EPOLLET, 16));
	tp_wait("wait, nothing", ep, 8, 0);
	T("peer sends 3", tp_sends(&p, "bye"));
	T("peer shuts down its writing side", tp_op(&p, TP_SHUT_WR));
	tp_wait("wait", ep, 8, 5000);
	tp_wait("wait again", ep, 8, 0);
	drain("drain", a);
	tp_wait("wait after EOF was read", ep, 8, 0);
	TE("DEL a", epoll_ctl(ep, EPOLL_CTL_DEL, a, NULL));

	t_note("== epoll_pwait and signal masks");
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t usr1set, none, pending;
	sigemptyset(&usr1set);
	sigaddset(&usr1set, SIGUSR1);
	sigemptyset(&none);
	sigprocmask(SIG_BLOCK, &usr1set, NULL);
	int ep2 = epoll_create1(0);
	int pp[2];
	if (pipe(pp))
		t_die("pipe");
	TE("ADD pipe IN data=20", tp_ctl(ep2, EPOLL_CTL_ADD, pp[0], EPOLLIN, 20));
	struct tp_peer q = tp_peer_start(port);
	int b = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	TE("ADD b IN data=21", tp_ctl(ep2, EPOLL_CTL_ADD, b, EPOLLIN, 21));

	tp_start(&q, TP_KILL, NULL, 0, SIGUSR1);
	pwait("pwait, mask unblocks SIGUSR1, signal while blocked", ep2, 5000, &none);
	T("peer kill", tp_finish(&q, NULL, NULL, 0));
	t_note("  handler ran %d times", (int)usr1);

	tp_start(&q, TP_KILL, NULL, 0, SIGUSR1);
	pwait("pwait 300 ms, mask blocks SIGUSR1", ep2, 300, &usr1set);
	T("peer kill", tp_finish(&q, NULL, NULL, 0));
	sigpending(&pending);
	t_note("  handler ran %d times, SIGUSR1 pending: %s", (int)usr1,
	       tp_yesno(sigismember(&pending, SIGUSR1)));
	pwait("pwait, signal pending, mask unblocks it", ep2, 5000, &none);
	t_note("  handler ran %d times", (int)usr1);

	T("peer sends 1", tp_sends(&q, "s"));
	kill(getpid(), SIGUSR1);
	pwait("pwait, bytes ready and a signal pending, mask unblocks it", ep2, 5000, &none);
	sigpending(&pending);
	t_note("  handler ran %d times, SIGUSR1 pending: %s", (int)usr1,
	       tp_yesno(sigismember(&pending, SIGUSR1)));
	sigprocmask(SIG_UNBLOCK, &usr1set, NULL);
	t_note("  after unblocking: handler ran %d times", (int)usr1);
	rd("read b", b, 8);

	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	tp_start(&q, TP_KILL, NULL, 0, SIGUSR1);
	tp_wait("epoll_wait, SA_RESTART handler runs while blocked", ep2, 8, 5000);
	T("peer kill", tp_finish(&q, NULL, NULL, 0));
	t_note("  handler ran %d times", (int)usr1);

	t_note("== epoll_pwait2 timeouts");
	pwait2("pwait2 {0,0}", ep2, 0, 0, 0);
	pwait2("pwait2 {0,50ms}", ep2, 0, 50000000, 50);
	pwait2("pwait2 {-1,0}", ep2, -1, 0, 0);
	pwait2("pwait2 {0,1000000000}", ep2, 0, 1000000000, 0);
	pwait2("pwait2 {0,-1}", ep2, 0, -1, 0);
	tp_start(&q, TP_SEND_LATE, "late", 4, 0);
	pwait2("pwait2 {10,0}, bytes arrive while blocked", ep2, 10, 0, 0);
	T("peer sent", tp_finish(&q, NULL, NULL, 0));
	TE("write pipe", write(pp[1], "p", 1));
	struct epoll_event ev[8];
	errno = 0;
	int n = epoll_pwait2(ep2, ev, 8, NULL, NULL);
	tp_show_events("pwait2 NULL timeout, both ready", n, errno, ev);
	rd("read b", b, 8);
	rd("read pipe", pp[0], 8);
	pwait2("pwait2 {0,20ms}, all read", ep2, 0, 20000000, 20);

	close(a);
	close(b);
	close(pp[0]);
	close(pp[1]);
	close(ep);
	close(ep2);
	close(l);
	t_note("peer: %s", t_status(tp_peer_end(&p)));
	t_note("peer: %s", t_status(tp_peer_end(&q)));
	return 0;
}
