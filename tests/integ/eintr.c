/* Blocking calls interrupted by a caught signal: -1/EINTR without
 * SA_RESTART; with SA_RESTART the call goes on and returns what arrives
 * afterwards; signal() restarts, siginterrupt(sig, 1) does not; SA_RESETHAND;
 * SO_RCVTIMEO/SO_SNDTIMEO sockets are never restarted; data already moved
 * is returned, not lost. sigaction() reports the program's own handlers and
 * flags.
 *
 * A forked helper runs a small script against the blocked parent: wait
 * until it is asleep in the call, send a signal, wait until the handler has
 * run (it sends one byte on a socketpair), then write or connect. */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "check.h"

/* siginterrupt() is deprecated but real programs still call it. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static int note[2];		 /* handler -> helper: "I ran" */
static volatile sig_atomic_t hits; /* handler runs */
static int port;		 /* TCP listener */

static void handler(int sig)
{
	(void)sig;
	hits++;
	int e = errno;
	send(note[0], "h", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	errno = e;
}

static void info_handler(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	handler(sig);
}

static void set_handler(int sig, int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	if (sigaction(sig, &sa, NULL))
		t_die("sigaction");
}

static int tcp_connect(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	return s;
}

/* Helper script, one letter per step:
 *   B wait until the parent is blocked     K kill SIGUSR1     I kill SIGUSR2
 *   N wait for the handler's note          W write `data` to fd
 *   C connect to the TCP listener          D read fd until a 'Z' byte arrives
 *   S SIGSTOP, wait until stopped, SIGCONT */
static pid_t helper(const char *script, int fd, const char *data)
{
	pid_t parent = getpid();
	char buf[65536];
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid)
		return pid;
	int keep = -1;
	for (const char *s = script; *s; s++) {
		switch (*s) {
		case 'B': t_wait_blocked(parent); break;
		case 'K': kill(parent, SIGUSR1); break;
		case 'I': kill(parent, SIGUSR2); break;
		case 'N':
			if (recv(note[1], buf, 1, 0) != 1)
				_exit(2);
			break;
		case 'W':
			if (write(fd, data, strlen(data)) != (ssize_t)strlen(data))
				_exit(3);
			break;
		case 'C':
			keep = tcp_connect();
			if (keep < 0)
				_exit(4);
			break;
		case 'D':
			for (;;) {
				ssize_t n = read(fd, buf, sizeof(buf));
				if (n <= 0)
					_exit(5);
				if (buf[n - 1] == 'Z')
					break;
			}
			break;
		case 'S':
			kill(parent, SIGSTOP);
			while (t_task_state(parent, 0) != 'T')
				t_sleep_ms(5);
			kill(parent, SIGCONT);
			break;
		}
	}
	(void)keep;
	_exit(0);
}

static void reap(pid_t pid)
{
	int st;
	waitpid(pid, &st, 0);
	char buf[16];
	while (recv(note[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	t_note("  helper %s, handler ran %d time(s)", t_status(st), (int)hits);
	hits = 0;
}

/* One blocking read-side call, by kind. */
static long do_read(int kind, int fd, char *buf, size_t len)
{
	struct iovec v = { buf, len };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
	switch (kind) {
	case 0: return read(fd, buf, len);
	case 1: return recv(fd, buf, len, 0);
	case 2: return recvmsg(fd, &m, 0);
	case 3: return readv(fd, &v, 1);
	default: return recvfrom(fd, buf, len, 0, NULL, NULL);
	}
}

static const char *read_names[] = { "read", "recv", "recvmsg", "readv", "recvfrom" };

/* Fill a blocking socket or pipe to the brim (nonblocking sends/writes),
 * so the next write blocks. */
static void fill(int fd, int sock)
{
	static char zeros[4096];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	for (size_t chunk = sizeof(zeros); chunk; chunk /= 4)
		while ((sock ? send(fd, zeros, chunk, MSG_DONTWAIT) : write(fd, zeros, chunk)) > 0)
			;
	fcntl(fd, F_SETFL, fl);
}

static void interrupted_reads(const char *title, int restart_expected)
{
	char buf[64];
	int sv[2], p[2];
	t_note("== %s", title);
	for (int kind = 0; kind < 5; kind++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		pid_t h = helper(restart_expected ? "BKNBW" : "BK", sv[1], "after signal");
		char label[64];
		snprintf(label, sizeof(label), "%s on socket", read_names[kind]);
		long n = TE(label, do_read(kind, sv[0], buf, sizeof(buf)));
		if (n > 0)
			t_bytes("  got", buf, n);
		reap(h);
		close(sv[0]);
		close(sv[1]);
	}
	if (pipe(p))
		t_die("pipe");
	pid_t h = helper(restart_expected ? "BKNBW" : "BK", p[1], "pipe data");
	long n = TE("read on pipe", read(p[0], buf, sizeof(buf)));
	if (n > 0)
		t_bytes("  got", buf, n);
	reap(h);
	close(p[0]);
	close(p[1]);
}

static void interrupted_others(int restart_expected, int listener)
{
	int sv[2], p[2];
	pid_t h = helper(restart_expected ? "BKNBC" : "BK", -1, NULL);
	errno = EDOM;
	int a = accept(listener, NULL, NULL);
	t_note("accept: %s", a >= 0 ? "fd" : t_errname(errno));
	if (a >= 0)
		close(a);
	reap(h);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	fill(sv[0], 1);
	h = helper(restart_expected ? "BKNBD" : "BK", sv[1], NULL);
	TE("write on a full socket", write(sv[0], "Z", 1));
	reap(h);
	close(sv[0]);
	close(sv[1]);

	if (pipe(p))
		t_die("pipe");
	fill(p[1], 0);
	h = helper(restart_expected ? "BKNBD" : "BK", p[0], NULL);
	TE("write on a full pipe", write(p[1], "Z", 1));
	reap(h);
	close(p[0]);
	close(p[1]);
}

static const char *handler_name(void *h)
{
	if (h == (void *)SIG_DFL)
		return "SIG_DFL";
	if (h == (void *)SIG_IGN)
		return "SIG_IGN";
	if (h == (void *)handler)
		return "handler";
	if (h == (void *)info_handler)
		return "info_handler";
	return "something else";
}

static void show_action(const char *what, int sig)
{
	struct sigaction old;
	memset(&old, 0, sizeof(old));
	if (sigaction(sig, NULL, &old))
		t_die("sigaction query");
	void *h = (old.sa_flags & SA_SIGINFO) ? (void *)old.sa_sigaction : (void *)old.sa_handler;
	t_note("%s: %s flags=0x%x SA_RESTART=%d SA_SIGINFO=%d SA_RESETHAND=%d SA_NODEFER=%d "
	       "mask has SIGUSR2=%d",
	       what, handler_name(h), (unsigned)old.sa_flags, !!(old.sa_flags & SA_RESTART),
	       !!(old.sa_flags & SA_SIGINFO), !!(old.sa_flags & SA_RESETHAND),
	       !!(old.sa_flags & SA_NODEFER), sigismember(&old.sa_mask, SIGUSR2));
}

int main(void)
{
	char buf[1 << 16];
	int sv[2];
	long n;
	t_expect("served_ring>0");
	t_expect("eintr>0");
	t_expect("restarts>0");

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, note))
		t_die("note socketpair");
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 16) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		t_die("listener");
	port = ntohs(a.sin_port);
	signal(SIGUSR2, SIG_IGN);

	t_note("== dispositions as the program sees them");
	show_action("SIGSEGV at start", SIGSEGV);
	show_action("SIGBUS at start", SIGBUS);
	show_action("SIGUSR1 at start", SIGUSR1);
	show_action("SIGUSR2 (signal SIG_IGN)", SIGUSR2);
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sa.sa_flags = SA_RESTART;
	TE("sigaction SA_RESTART", sigaction(SIGUSR1, &sa, &old));
	show_action("after SA_RESTART handler", SIGUSR1);
	sa.sa_sigaction = info_handler;
	sa.sa_flags = SA_SIGINFO;
	memset(&old, 0, sizeof(old));
	TE("sigaction SA_SIGINFO", sigaction(SIGUSR1, &sa, &old));
	t_note("old: %s flags SA_RESTART=%d SA_SIGINFO=%d", handler_name((void *)old.sa_handler),
	       !!(old.sa_flags & SA_RESTART), !!(old.sa_flags & SA_SIGINFO));
	show_action("after SA_SIGINFO handler", SIGUSR1);
	sighandler_t prev = signal(SIGUSR1, SIG_IGN);
	t_note("signal() returned %s", handler_name((void *)prev));
	show_action("after signal(SIG_IGN)", SIGUSR1);
	prev = signal(SIGUSR1, handler);
	t_note("signal() returned %s", handler_name((void *)prev));
	show_action("after signal(handler)", SIGUSR1);
	TE("siginterrupt 1", siginterrupt(SIGUSR1, 1));
	show_action("after siginterrupt 1", SIGUSR1);
	TE("siginterrupt 0", siginterrupt(SIGUSR1, 0));
	show_action("after siginterrupt 0", SIGUSR1);
	prev = sysv_signal(SIGUSR1, handler);
	t_note("sysv_signal() returned %s", handler_name((void *)prev));
	show_action("after sysv_signal", SIGUSR1);
	TE("SIGKILL cannot be caught", sigaction(SIGKILL, &sa, NULL));
	TE("signal 0", sigaction(0, &sa, NULL));

	set_handler(SIGUSR1, 0);
	interrupted_reads("no SA_RESTART: EINTR", 0);
	interrupted_others(0, l);

	set_handler(SIGUSR1, SA_RESTART);
	interrupted_reads("SA_RESTART: the call goes on", 1);
	interrupted_others(1, l);

	t_note("== signal() restarts, siginterrupt(1) does not");
	signal(SIGUSR1, handler);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	pid_t h = helper("BKNBW", sv[1], "signal() restarted");
	n = TE("read (signal)", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);
	siginterrupt(SIGUSR1, 1);
	h = helper("BK", sv[1], NULL);
	TE("read (siginterrupt 1)", read(sv[0], buf, sizeof(buf)));
	reap(h);
	siginterrupt(SIGUSR1, 0);
	h = helper("BKNBW", sv[1], "siginterrupt 0");
	n = TE("read (siginterrupt 0)", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);

	t_note("== SA_RESETHAND");
	sysv_signal(SIGUSR1, handler);
	h = helper("BK", sv[1], NULL);
	TE("read (sysv_signal)", read(sv[0], buf, sizeof(buf)));
	reap(h);
	show_action("after the one-shot handler ran", SIGUSR1);
	set_handler(SIGUSR1, SA_RESETHAND | SA_RESTART);
	h = helper("BKNBW", sv[1], "resethand+restart");
	n = TE("read (SA_RESETHAND|SA_RESTART)", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);
	show_action("after the one-shot handler ran", SIGUSR1);

	t_note("== ignored, blocked and stop/continue signals do not interrupt");
	set_handler(SIGUSR1, 0);
	h = helper("BIBW", sv[1], "after ignored");
	n = TE("read (SIGUSR2 ignored)", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);
	sigset_t set, oldset;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &oldset);
	h = helper("BKBW", sv[1], "after blocked");
	n = TE("read (SIGUSR1 blocked)", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	t_note("  handler ran before unblocking: %d", (int)hits);
	sigprocmask(SIG_SETMASK, &oldset, NULL);
	reap(h);
	h = helper("BSBW", sv[1], "after stop/cont");
	n = TE("read (SIGSTOP+SIGCONT)", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(h);

	t_note("== sockets with a timeout are never restarted");
	set_handler(SIGUSR1, SA_RESTART);
	struct timeval tv = { 30, 0 };
	TE("SO_RCVTIMEO 30s", setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	h = helper("BK", sv[1], NULL);
	TE("read (SO_RCVTIMEO, SA_RESTART)", read(sv[0], buf, sizeof(buf)));
	reap(h);
	h = helper("BK", sv[1], NULL);
	TE("recv (SO_RCVTIMEO, SA_RESTART)", recv(sv[0], buf, sizeof(buf), 0));
	reap(h);
	TE("SO_SNDTIMEO 30s", setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	fill(sv[1], 1);
	h = helper("BK", -1, NULL);
	TE("send to full (SO_SNDTIMEO, SA_RESTART)", send(sv[1], "Z", 1, 0));
	reap(h);
	close(sv[0]);
	close(sv[1]);
	h = helper("BK", -1, NULL);
	TE("SO_RCVTIMEO on the listener", setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	errno = EDOM;
	int fd = accept(l, NULL, NULL);
	t_note("accept (SO_RCVTIMEO, SA_RESTART): %s", fd >= 0 ? "fd" : t_errname(errno));
	reap(h);

	t_note("== data moved before the signal is returned");
	for (int restart = 0; restart < 2; restart++) {
		set_handler(SIGUSR1, restart ? SA_RESTART : 0);
		t_note("-- %s", restart ? "SA_RESTART" : "no SA_RESTART");
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		h = helper("BWBK", sv[1], "0123456789");
		n = TE("recv 100 MSG_WAITALL, 10 arrive", recv(sv[0], buf, 100, MSG_WAITALL));
		t_bytes("  got", buf, n);
		reap(h);
		TE("nothing more", recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT));
		static char big[1 << 20];
		h = helper("BK", -1, NULL);
		errno = EDOM;
		n = send(sv[0], big, sizeof(big), 0);
		t_note("send 1 MiB: ret=%ld (partial: %s) errno-kept=%s", n,
		       n > 0 && n < (long)sizeof(big) ? "yes" : "no", errno == EDOM ? "yes" : t_errname(errno));
		reap(h);
		long total = 0, r;
		while ((r = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			total += r;
		t_note("  receiver got exactly that: %s", total == n ? "yes" : "no");
		close(sv[0]);
		close(sv[1]);
		int p[2];
		if (pipe(p))
			t_die("pipe");
		h = helper("BK", -1, NULL);
		errno = EDOM;
		n = write(p[1], big, sizeof(big));
		t_note("pipe write 1 MiB: ret=%ld errno-kept=%s", n, errno == EDOM ? "yes" : t_errname(errno));
		reap(h);
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		total = 0;
		while ((r = read(p[0], buf, sizeof(buf))) > 0)
			total += r;
		t_note("  reader got exactly that: %s", total == n ? "yes" : "no");
		close(p[0]);
		close(p[1]);
	}
	close(l);
	return 0;
}
