/* I/O from signal handlers while the main program is inside (or outside) a
 * call: the self-pipe trick of nginx/redis, handlers that send and receive
 * on sockets, and handler writes during a big blocking write. Everything a
 * handler writes must arrive exactly once, and the interrupted call must end
 * the way the kernel ends it. */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "check.h"

static int selfpipe[2]; /* handler -> main loop */
static int hp[2];	/* socketpair the handler talks on */
static int hq[2];	/* socketpair the handler waits on */
static int target = -1; /* fd the handler writes into, for the EINTR cases */
static volatile sig_atomic_t seq, mode;
static volatile long h_send, h_recv, h_recv2;
static char h_buf[16];

static void on_usr1(int sig)
{
	(void)sig;
	int e = errno;
	char c = (char)('1' + seq++);
	switch (mode) {
	case 0: /* self-pipe */
		if (write(selfpipe[1], &c, 1) != 1)
			_exit(90);
		break;
	case 1: /* send and receive on a socketpair */
		h_send = send(hp[0], "ping", 4, 0);
		h_recv = recv(hp[1], h_buf, sizeof(h_buf), 0);
		break;
	case 2: /* wait for data from the helper, inside the handler */
		h_recv2 = recv(hq[1], h_buf, sizeof(h_buf), 0);
		break;
	case 3: /* write into the fd the main program is blocked reading */
		if (write(target, &c, 1) != 1)
			_exit(91);
		break;
	}
	errno = e;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	int e = errno;
	char c = (char)('0' + si->si_value.sival_int);
	if (write(selfpipe[1], &c, 1) != 1)
		_exit(92);
	errno = e;
}

static void install(int restart)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGUSR1, &sa, NULL);
}

static void drain_selfpipe(const char *when)
{
	char buf[64];
	long n = read(selfpipe[0], buf, sizeof(buf));
	if (n < 0)
		n = 0;
	t_bytes(when, buf, n);
}

/* Helper script (as in eintr.c): B wait blocked, K SIGUSR1, W write `msg`
 * to fd, Q write "to handler" to hq[0]. */
static pid_t helper(const char *script, int fd, const char *msg)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid)
		return pid;
	for (const char *s = script; *s; s++) {
		switch (*s) {
		case 'B': t_wait_blocked(parent); break;
		case 'K': kill(parent, SIGUSR1); break;
		case 'W':
			if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
				_exit(3);
			break;
		case 'Q':
			if (write(hq[0], "to handler", 10) != 10)
				_exit(4);
			break;
		}
	}
	_exit(0);
}

static void reap(pid_t pid)
{
	int st;
	waitpid(pid, &st, 0);
	t_note("  helper %s", t_status(st));
}

static void big_write(const char *what, int w, int r)
{
	static char big[4 << 20];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 131 + (i >> 12));
	uint64_t want = t_fnv(T_FNV_INIT, big, sizeof(big));
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		close(w);
		/* Signal the writer five times while it is blocked (nothing
		 * read yet), then read everything. */
		for (int i = 1; i <= 5; i++) {
			t_wait_blocked(parent);
			union sigval v = { .sival_int = i };
			sigqueue(parent, SIGRTMIN, v);
		}
		/* Let the last signal end its call before making room. */
		t_wait_blocked(parent);
		static char in[4 << 20];
		size_t got = 0;
		while (got < sizeof(in)) {
			ssize_t n = read(r, in + got, sizeof(in) - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		_exit(got == sizeof(in) && t_fnv(T_FNV_INIT, in, got) == want ? 0 : 1);
	}
	close(r);
	size_t done = 0;
	int errs = 0;
	while (done < sizeof(big)) {
		ssize_t n = write(w, big + done, sizeof(big) - done);
		if (n < 0) {
			errs++;
			if (errno != EINTR)
				break;
			continue;
		}
		done += (size_t)n;
	}
	t_note("%s: wrote all 4 MiB: %s, failed calls: %d", what, done == sizeof(big) ? "yes" : "no", errs);
	int st;
	waitpid(pid, &st, 0);
	t_note("  reader %s (0: every byte arrived once, in order)", t_status(st));
	drain_selfpipe("  self-pipe");
	close(w);
}

int main(void)
{
	char buf[256];
	int sv[2];
	long n;
	pid_t h;
	t_expect("served_ring>0");

	if (pipe2(selfpipe, O_NONBLOCK) || socketpair(AF_UNIX, SOCK_STREAM, 0, hp) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, hq) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("setup");

	t_note("== self-pipe, SA_RESTART: the read goes on");
	install(1);
	mode = 0;
	h = helper("BKBW", sv[1], "data");
	n = TE("read on socket", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);
	drain_selfpipe("  self-pipe");
	h = helper("BKBKBKBW", sv[1], "data after 3");
	n = TE("read on socket, three signals", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);
	drain_selfpipe("  self-pipe");

	t_note("== self-pipe, no SA_RESTART: an event loop");
	install(0);
	seq = 0;
	h = helper("BKBW", sv[1], "loop data");
	for (int round = 0; round < 3; round++) {
		n = TE("recv", recv(sv[0], buf, sizeof(buf), 0));
		if (n > 0) {
			t_bytes("  got", buf, n);
			break;
		}
		drain_selfpipe("  self-pipe");
	}
	reap(h);

	t_note("== handler sends and receives on a socketpair");
	install(1);
	mode = 1;
	h = helper("BKBW", sv[1], "main data");
	n = TE("recv on socket", recv(sv[0], buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	reap(h);
	t_note("  handler: send=%ld recv=%ld", h_send, h_recv);
	t_bytes("  handler got", h_buf, h_recv > 0 ? h_recv : 0);
	mode = 1;
	h_send = h_recv = 0;
	raise(SIGUSR1);
	t_note("handler outside any call (raise): send=%ld recv=%ld", h_send, h_recv);
	t_bytes("  handler got", h_buf, h_recv > 0 ? h_recv : 0);

	t_note("== handler blocks in recv while the main program is blocked too");
	mode = 2;
	h = helper("BKBQBW", sv[1], "main after handler");
	n = TE("read on socket", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);
	t_note("  handler recv=%ld", h_recv2);
	t_bytes("  handler got", h_buf, h_recv2 > 0 ? h_recv2 : 0);

	t_note("== handler writes into the fd the main program is reading");
	for (int restart = 0; restart < 2; restart++) {
		install(restart);
		mode = 3;
		seq = 0;
		int p[2];
		if (pipe(p))
			t_die("pipe");
		target = p[1];
		h = helper("BK", -1, NULL);
		n = TE(restart ? "pipe read (SA_RESTART)" : "pipe read (no SA_RESTART)", read(p[0], buf, sizeof(buf)));
		if (n > 0)
			t_bytes("  got", buf, n);
		reap(h);
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		n = TE("  then", read(p[0], buf, sizeof(buf)));
		if (n > 0)
			t_bytes("  got", buf, n);
		close(p[0]);
		close(p[1]);
		target = sv[1];
		h = helper("BK", -1, NULL);
		n = TE(restart ? "socket recv (SA_RESTART)" : "socket recv (no SA_RESTART)", recv(sv[0], buf, sizeof(buf), 0));
		if (n > 0)
			t_bytes("  got", buf, n);
		reap(h);
		n = TE("  then", recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT));
		if (n > 0)
			t_bytes("  got", buf, n);
	}

	t_note("== handler writes during a big blocking write");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
	int bs[2], bp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, bs) || pipe(bp))
		t_die("big setup");
	big_write("socket", bs[0], bs[1]);
	big_write("pipe", bp[1], bp[0]);
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGRTMIN, &sa, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, bs) || pipe(bp))
		t_die("big setup");
	big_write("socket, no SA_RESTART", bs[0], bs[1]);
	big_write("pipe, no SA_RESTART", bp[1], bp[0]);
	return 0;
}
