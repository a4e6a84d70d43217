/* Signals and threads (threads.c covers pthread_kill to a thread blocked in
 * read(), eintr.c and sighandler_io.c the single-threaded cases):
 *  - pthread_kill to a thread blocked in accept(), epoll_wait() and a
 *    blocking write to a full socket, without and with SA_RESTART;
 *  - a process-directed signal while two threads are blocked, one with the
 *    signal blocked by pthread_sigmask: only the other is interrupted;
 *  - epoll_pwait() and ppoll() whose mask unblocks a signal the thread
 *    blocks (interrupted), and whose mask blocks a signal the thread lets
 *    through (not interrupted; the handler runs after the call);
 *  - signalfd in an epoll set with TCP sockets, and in poll(). */
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "tcp_peer.h"

static int listener, port;
static volatile sig_atomic_t hits;

static void on_sig(int sig)
{
	(void)sig;
	hits++;
}

static void handler(int sig, int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = flags;
	sigaction(sig, &sa, NULL);
}

enum what { W_ACCEPT, W_EPOLL, W_WRITE, W_READ, W_EPOLL_PWAIT, W_PPOLL };

struct blocked {
	enum what what;
	int fd;
	int block_usr1; /* pthread_sigmask SIGUSR1 in the thread */
	int mask_usr1;	/* the pwait mask blocks SIGUSR1 (else: empty mask) */
	int timeout;
	pid_t tid;
	int done;
	long ret;
	int err;
	int hits_at_return;
	char buf[64];
};

static char big[1 << 20];

static void *blocker(void *p)
{
	struct blocked *b = p;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	if (b->block_usr1)
		pthread_sigmask(SIG_BLOCK, &s, NULL);
	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	struct epoll_event ev[2];
	sigset_t m;
	sigemptyset(&m);
	if (b->mask_usr1)
		sigaddset(&m, SIGUSR1);
	errno = 0;
	switch (b->what) {
	case W_ACCEPT:
		b->ret = accept(b->fd, NULL, NULL);
		break;
	case W_EPOLL:
		b->ret = epoll_wait(b->fd, ev, 2, b->timeout);
		break;
	case W_WRITE:
		b->ret = write(b->fd, big, sizeof(big));
		break;
	case W_READ:
		b->ret = read(b->fd, b->buf, sizeof(b->buf));
		break;
	case W_EPOLL_PWAIT:
		b->ret = epoll_pwait(b->fd, ev, 2, b->timeout, &m);
		break;
	case W_PPOLL: {
		struct pollfd pfd = { .fd = b->fd, .events = POLLIN };
		struct timespec ts = { b->timeout / 1000, (b->timeout % 1000) * 1000000L };
		b->ret = ppoll(&pfd, 1, b->timeout < 0 ? NULL : &ts, &m);
		break;
	}
	}
	b->err = errno;
	b->hits_at_return = hits;
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void start(struct blocked *b, pthread_t *t)
{
	pthread_create(t, NULL, blocker, b);
	while (!__atomic_load_n(&b->tid, __ATOMIC_ACQUIRE))
		t_sleep_ms(1);
	t_wait_blocked_task(getpid(), b->tid);
}

static void show(const char *what, struct blocked *b)
{
	if (b->ret < 0)
		t_note("%s: ret=-1 errno=%s", what, t_errname(b->err));
	else
		t_note("%s: ret=%ld", what, b->ret);
}

static void kill_blocked(const char *label, enum what w, int fd, int restart)
{
	handler(SIGUSR1, restart ? SA_RESTART : 0);
	hits = 0;
	struct blocked b = { .what = w, .fd = fd, .timeout = 5000 };
	pthread_t t;
	start(&b, &t);
	pthread_kill(t, SIGUSR1);
	/* With SA_RESTART the call goes on: give it something to finish on. */
	t_sleep_ms(100);
	int done_early = __atomic_load_n(&b.done, __ATOMIC_ACQUIRE);
	if (!done_early) {
		if (w == W_ACCEPT) {
			int c = tp_connect(port);
			pthread_join(t, NULL);
			close(c);
		} else {
			pthread_join(t, NULL);
		}
	} else {
		pthread_join(t, NULL);
	}
	char l[128];
	snprintf(l, sizeof(l), "%s, %s: ended by the signal %s", label, restart ? "SA_RESTART" : "no SA_RESTART",
		 tp_yesno(done_early));
	show(l, &b);
	if (w == W_ACCEPT && b.ret >= 0)
		close((int)b.ret);
}

int main(void)
{
	t_expect("served_ring>0");
	signal(SIGPIPE, SIG_IGN);
	listener = tp_listen(&port, 0, 64);

	t_note("== pthread_kill to a thread blocked in the shim");
	kill_blocked("accept()", W_ACCEPT, listener, 0);
	kill_blocked("accept()", W_ACCEPT, listener, 1);
	int a[2];
	tp_pair(listener, port, a);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = a[1] };
	epoll_ctl(ep, EPOLL_CTL_ADD, a[1], &ev);
	/* epoll_wait never restarts: after 5 s it times out if the signal
	 * did not end it. */
	kill_blocked("epoll_wait(5000)", W_EPOLL, ep, 0);
	kill_blocked("epoll_wait(5000)", W_EPOLL, ep, 1);
	/* A blocking 1 MiB write into a socket nobody reads yet. */
	{
		handler(SIGUSR1, 0);
		int small = 32768;
		setsockopt(a[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		setsockopt(a[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		struct blocked b = { .what = W_WRITE, .fd = a[0] };
		pthread_t t;
		start(&b, &t);
		pthread_kill(t, SIGUSR1);
		pthread_join(t, NULL);
		t_note("1 MiB write, no SA_RESTART: partial count returned: %s",
		       tp_yesno(b.ret > 0 && b.ret < (long)sizeof(big)));
		long drained = 0;
		tp_set_nonblock(a[1], 1);
		char buf[65536];
		for (;;) {
			ssize_t n = read(a[1], buf, sizeof(buf));
			if (n <= 0)
				break;
			drained += n;
		}
		t_note("  the reader got exactly the returned count: %s", tp_yesno(drained == b.ret));
		tp_set_nonblock(a[1], 0);
	}

	t_note("== a process-directed signal, two blocked threads, one blocking it");
	handler(SIGUSR1, 0);
	int s1[2], s2[2];
	tp_pair(listener, port, s1);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s2))
		t_die("socketpair");
	struct blocked m = { .what = W_READ, .fd = s1[1], .block_usr1 = 1 };
	struct blocked u = { .what = W_READ, .fd = s2[1] };
	pthread_t tm, tu;
	start(&m, &tm);
	start(&u, &tu);
	/* Block it here too, so only `u` can take it. */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	kill(getpid(), SIGUSR1);
	pthread_join(tu, NULL);
	show("unmasked thread", &u);
	t_sleep_ms(100);
	t_note("masked thread still blocked: %s", tp_yesno(!__atomic_load_n(&m.done, __ATOMIC_ACQUIRE)));
	TE("write to the masked thread's socket", write(s1[0], "masked", 6));
	pthread_join(tm, NULL);
	show("masked thread", &m);
	t_bytes("  got", m.buf, m.ret > 0 ? m.ret : 0);
	t_note("handler ran %d time(s)", (int)hits);

	t_note("== epoll_pwait/ppoll signal masks (SIGUSR1 blocked in this thread and the next ones)");
	struct {
		enum what w;
		int fd;
		const char *name;
	} pw[] = { { W_EPOLL_PWAIT, ep, "epoll_pwait" }, { W_PPOLL, a[1], "ppoll" } };
	for (int i = 0; i < 2; i++) {
		/* Thread blocks SIGUSR1 (inherited), mask unblocks it. */
		hits = 0;
		struct blocked b = { .what = pw[i].w, .fd = pw[i].fd, .timeout = 5000 };
		pthread_t t;
		start(&b, &t);
		pthread_kill(t, SIGUSR1);
		pthread_join(t, NULL);
		char l[96];
		snprintf(l, sizeof(l), "%s, mask lets SIGUSR1 in", pw[i].name);
		show(l, &b);
		t_note("  handler had run when it returned: %d", b.hits_at_return);
	}
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	for (int i = 0; i < 2; i++) {
		/* Thread lets SIGUSR1 through, the mask blocks it. */
		hits = 0;
		struct blocked b = { .what = pw[i].w, .fd = pw[i].fd, .timeout = 400, .mask_usr1 = 1 };
		pthread_t t;
		start(&b, &t);
		pthread_kill(t, SIGUSR1);
		pthread_join(t, NULL);
		char l[96];
		snprintf(l, sizeof(l), "%s(400 ms), mask blocks SIGUSR1", pw[i].name);
		show(l, &b);
		t_note("  handler had run when it returned: %d; ran afterwards: %d", b.hits_at_return, (int)hits);
	}

	t_note("== signalfd with TCP sockets in an epoll set, and in poll()");
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);
	int sfd = signalfd(-1, &usr2, SFD_CLOEXEC | SFD_NONBLOCK);
	int ep2 = epoll_create1(0);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = sfd };
	TE("ADD signalfd", epoll_ctl(ep2, EPOLL_CTL_ADD, sfd, &ev));
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = s1[1] };
	TE("ADD TCP socket", epoll_ctl(ep2, EPOLL_CTL_ADD, s1[1], &ev));
	struct epoll_event out[4];
	T("epoll_wait(0): nothing", epoll_wait(ep2, out, 4, 0));
	TE("kill SIGUSR2", kill(getpid(), SIGUSR2));
	long n = T("epoll_wait", epoll_wait(ep2, out, 4, 2000));
	for (long i = 0; i < n; i++)
		t_note("  %s events=0x%x", out[i].data.fd == sfd ? "signalfd" : "socket", out[i].events);
	struct signalfd_siginfo si;
	n = T("read signalfd", read(sfd, &si, sizeof(si)));
	if (n == (long)sizeof(si))
		t_note("  ssi_signo=%s ssi_pid is ours: %s", sigabbrev_np((int)si.ssi_signo),
		       tp_yesno(si.ssi_pid == (uint32_t)getpid()));
	T("read signalfd again", read(sfd, &si, sizeof(si)));
	TE("peer writes", write(s1[0], "data", 4));
	TE("kill SIGUSR2", kill(getpid(), SIGUSR2));
	tp_wait_acked(s1[0]);
	n = T("epoll_wait", epoll_wait(ep2, out, 4, 2000));
	int seen_sig = 0, seen_sock = 0;
	for (long i = 0; i < n; i++) {
		seen_sig |= out[i].data.fd == sfd;
		seen_sock |= out[i].data.fd == s1[1];
	}
	t_note("  signalfd reported %s, socket reported %s", tp_yesno(seen_sig), tp_yesno(seen_sock));
	char buf[16];
	n = T("read socket", read(s1[1], buf, sizeof(buf)));
	T("read signalfd", read(sfd, &si, sizeof(si)));
	struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN }, { .fd = s1[1], .events = POLLIN } };
	TE("kill SIGUSR2", kill(getpid(), SIGUSR2));
	n = T("poll", poll(pfd, 2, 2000));
	t_note("  revents signalfd=0x%x socket=0x%x", pfd[0].revents, pfd[1].revents);
	T("read signalfd", read(sfd, &si, sizeof(si)));
	close(sfd);
	close(ep2);
	close(ep);
	return 0;
}
