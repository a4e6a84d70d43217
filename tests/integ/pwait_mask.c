/* epoll_pwait's mask after the thread's own mask changed, by every path the
 * shim must notice (shim/sigmask.c): sigprocmask, pthread_sigmask,
 * siglongjmp to a sigsetjmp point, and a handler that blocks a signal
 * itself and returns (its return puts the old mask back).
 *
 * Each round leaves SIGUSR1 unblocked in the thread and waits 300 ms with a
 * mask that blocks it, while the peer sends SIGUSR1: the kernel holds it
 * for the whole wait, the call times out with 0 and the handler runs only
 * after it returned. A shim that believed SIGUSR1 was still blocked in the
 * thread would carry the mask in the wait alone, and the signal would end
 * the call with EINTR as soon as the wait did. Also checked: a mask that
 * only unblocks still ends the wait with EINTR. */
#include <pthread.h>
#include <setjmp.h>
#include <sys/epoll.h>

#include "tcp_peer.h"

static volatile sig_atomic_t usr1;
static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static sigset_t usr1set, none;
static int ep;

/* Blocks SIGUSR1 in the handler and waits once (the shim learns the
 * handler's mask), then returns. */
static void on_usr2(int sig)
{
	(void)sig;
	sigprocmask(SIG_BLOCK, &usr1set, NULL);
	struct epoll_event ev[8];
	int n = epoll_pwait(ep, ev, 8, 10, &usr1set);
	t_note("  in the SIGUSR2 handler: pwait 10 ms with SIGUSR1 blocked: %d", n);
}

static void pwait(const char *label, int timeout, const sigset_t *mask)
{
	struct epoll_event ev[8];
	int before = usr1;
	errno = 0;
	int n = epoll_pwait(ep, ev, 8, timeout, mask);
	tp_show_events(label, n, errno, ev);
	t_note("  handler ran %d time(s) during or right after the call", (int)(usr1 - before));
}

/* Peer sends SIGUSR1 while we sleep in a 300 ms wait that blocks it. */
static void round_blocked(struct tp_peer *q, const char *how)
{
	char label[128];
	snprintf(label, sizeof(label), "after %s: pwait 300 ms, mask blocks SIGUSR1, signal while blocked",
		 how);
	tp_start(q, TP_KILL, NULL, 0, SIGUSR1);
	pwait(label, 300, &usr1set);
	T("peer kill", tp_finish(q, NULL, NULL, 0));
}

/* A wait that sleeps and times out with no signal: the shim learns the
 * thread's mask and keeps it (no handler runs to make it ask again). */
static void round_learn(void)
{
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	t_note("SIGUSR1 blocked in the thread: %s", tp_yesno(sigismember(&cur, SIGUSR1)));
	pwait("pwait 30 ms, mask unblocks everything, nothing happens", 30, &none);
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	t_expect("served_ring>0");
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sigemptyset(&usr1set);
	sigaddset(&usr1set, SIGUSR1);
	sigemptyset(&none);

	int port;
	int l = tp_listen(&port, 0, 16);
	struct tp_peer q = tp_peer_start(port);
	int b = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	ep = epoll_create1(0);
	if (b < 0 || ep < 0)
		t_die("setup");
	TE("ADD b IN data=1", tp_ctl(ep, EPOLL_CTL_ADD, b, EPOLLIN, 1));
	T("peer sends 2", tp_sends(&q, "hi"));
	pwait("pwait, bytes ready", 5000, &usr1set);
	char buf[8];
	T("read b", read(b, buf, sizeof(buf)));

	t_note("== a mask that only unblocks, signal while blocked");
	sigprocmask(SIG_BLOCK, &usr1set, NULL);
	tp_start(&q, TP_KILL, NULL, 0, SIGUSR1);
	pwait("pwait 5 s, mask unblocks everything, signal while blocked", 5000, &none);
	T("peer kill", tp_finish(&q, NULL, NULL, 0));
	sigprocmask(SIG_UNBLOCK, &usr1set, NULL);

	t_note("== sigprocmask");
	sigprocmask(SIG_BLOCK, &usr1set, NULL);
	round_learn();
	sigprocmask(SIG_UNBLOCK, &usr1set, NULL);
	round_blocked(&q, "sigprocmask unblocked SIGUSR1");

	t_note("== pthread_sigmask");
	pthread_sigmask(SIG_BLOCK, &usr1set, NULL);
	round_learn();
	pthread_sigmask(SIG_UNBLOCK, &usr1set, NULL);
	round_blocked(&q, "pthread_sigmask unblocked SIGUSR1");

	t_note("== siglongjmp back to where SIGUSR1 was unblocked");
	static sigjmp_buf env;
	static volatile int jumped;
	jumped = 0;
	if (sigsetjmp(env, 1) == 0) {
		sigprocmask(SIG_BLOCK, &usr1set, NULL);
		round_learn();
		jumped = 1;
		siglongjmp(env, 1);
	}
	t_note("jumped back: %s", tp_yesno(jumped));
	round_blocked(&q, "siglongjmp");

	t_note("== a handler that blocks SIGUSR1 and returns");
	sigprocmask(SIG_BLOCK, &usr1set, NULL);
	round_learn();
	sigprocmask(SIG_UNBLOCK, &usr1set, NULL);
	round_learn(); /* learnt again: SIGUSR1 now unblocked */
	raise(SIGUSR2);
	round_blocked(&q, "a SIGUSR2 handler blocked SIGUSR1 and returned");

	t_note("== an epoll set of kernel fds only (a pipe), mask blocks what the thread lets in");
	int pp[2];
	if (pipe(pp))
		t_die("pipe");
	int kep = epoll_create1(0);
	TE("ADD pipe IN data=2", tp_ctl(kep, EPOLL_CTL_ADD, pp[0], EPOLLIN, 2));
	int saved_ep = ep;
	ep = kep;
	round_learn();
	round_blocked(&q, "nothing (a kernel-only set)");
	TE("write pipe", write(pp[1], "x", 1));
	pwait("pipe readable", 5000, &usr1set);
	ep = saved_ep;
	close(kep);
	close(pp[0]);
	close(pp[1]);

	t_note("== a mask that only unblocks, the signal pending before the call");
	sigprocmask(SIG_BLOCK, &usr1set, NULL);
	kill(getpid(), SIGUSR1);
	pwait("pwait 5 s, SIGUSR1 pending, mask unblocks it", 5000, &none);
	sigprocmask(SIG_UNBLOCK, &usr1set, NULL);

	close(b);
	close(ep);
	return tp_peer_end(&q);
}
