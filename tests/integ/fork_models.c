/* The process models of forking servers (fork_exec.c covers fork/vfork/
 * exec/posix_spawn basics):
 *  - prefork: the parent listens and forks 3 children that accept on the
 *    shared listener (blocking accept(), or nonblocking accept4() from an
 *    epoll loop of their own), each serving 10 connections and exiting;
 *    30 connections, every one served exactly once, bytes verified; once
 *    more with the parent's own epoll set holding the listener (and waited
 *    on) before it forks;
 *  - fork from a process whose other threads are busy in the shim (I/O
 *    loops on sockets and epoll), 100 times: no child deadlocks;
 *  - daemon(), and a double fork with setsid(): the daemon talks to its
 *    grandparent over an inherited socket;
 *  - fork with bytes queued on a nonblocking TCP socket (write-behind in
 *    batch mode): the peer gets them once, before the child's own bytes;
 *  - fork with bytes received but not yet read (a socket in an epoll set
 *    whose readiness was reported): the parent reads them, then the child
 *    reads what arrives afterwards; and the accept-then-fork pattern where
 *    the child handles the connection and the parent closes its copy. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "tcp_peer.h"

#define CHILDREN 3
#define PER_CHILD 10
#define CONNS (CHILDREN * PER_CHILD)

static int listener, port;

static void tcp_pair(int out[2])
{
	tp_pair(listener, port, out);
}

static void rcvtimeo(int fd, int secs)
{
	struct timeval tv = { secs, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* ---- prefork --------------------------------------------------------------- */
static int serve_one(int c)
{
	char req[64], rep[96];
	int bad = 0;
	rcvtimeo(c, 10);
	ssize_t n = recv(c, req, sizeof(req) - 1, 0);
	if (n <= 0) {
		bad = 1;
	} else {
		req[n] = 0;
		int len = snprintf(rep, sizeof(rep), "served [%s]", req);
		bad = send(c, rep, (size_t)len, 0) != len;
	}
	close(c);
	return bad;
}

static int child_blocking(int l)
{
	int bad = 0;
	for (int i = 0; i < PER_CHILD; i++) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			return 100;
		bad += serve_one(c);
	}
	return bad ? 101 : PER_CHILD;
}

static int child_epoll(int l)
{
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = l };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev))
		return 102;
	int served = 0, bad = 0;
	while (served < PER_CHILD) {
		int n = epoll_wait(ep, &ev, 1, 10000);
		if (n <= 0)
			return 103;
		/* One connection per wake-up, as a server with
		 * accept_mutex/one-at-a-time accepting does. */
		int c = accept4(l, NULL, NULL, 0);
		if (c < 0) {
			if (errno == EAGAIN)
				continue;
			return 104;
		}
		bad += serve_one(c);
		served++;
	}
	return bad ? 105 : served;
}

static void prefork(const char *what, int epoll_children, int parent_epoll)
{
	t_note("== prefork, %d children x %d connections: %s", CHILDREN, PER_CHILD, what);
	int pport;
	int l = tp_listen(&pport, epoll_children ? SOCK_NONBLOCK : 0, 128);
	int pep = -1;
	if (parent_epoll) {
		pep = epoll_create1(0);
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = l };
		TE("parent: listener into its epoll set", epoll_ctl(pep, EPOLL_CTL_ADD, l, &ev));
		T("parent: epoll_wait(0)", epoll_wait(pep, &ev, 1, 0));
	}
	fflush(stdout);
	pid_t kids[CHILDREN];
	for (int i = 0; i < CHILDREN; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			if (pep >= 0)
				close(pep);
			exit(epoll_children ? child_epoll(l) : child_blocking(l));
		}
	}
	int c[CONNS];
	for (int i = 0; i < CONNS; i++) {
		c[i] = tp_connect(pport);
		if (c[i] < 0)
			t_die("connect");
		rcvtimeo(c[i], 15);
	}
	int sent = 0;
	for (int i = 0; i < CONNS; i++) {
		char req[32];
		int len = snprintf(req, sizeof(req), "request %d", i);
		sent += send(c[i], req, (size_t)len, 0) == len;
	}
	int good = 0, none = 0;
	uint64_t h = T_FNV_INIT;
	for (int i = 0; i < CONNS; i++) {
		char want[64], got[64];
		int wl = snprintf(want, sizeof(want), "served [request %d]", i);
		size_t have = 0;
		ssize_t n;
		while (have < sizeof(got) && (n = recv(c[i], got + have, sizeof(got) - have, 0)) > 0)
			have += (size_t)n;
		if ((int)have == wl && !memcmp(got, want, have))
			good++;
		if (!have)
			none++;
		h = t_fnv(h, got, have);
		close(c[i]);
	}
	int codes[CHILDREN], total = 0;
	for (int i = 0; i < CHILDREN; i++) {
		int st;
		waitpid(kids[i], &st, 0);
		codes[i] = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
		total += codes[i] > 0 && codes[i] <= PER_CHILD ? codes[i] : 0;
	}
	t_note("requests sent %d, correct replies %d, no reply %d, replies hash %016llx", sent, good, none,
	       (unsigned long long)h);
	t_note("children exit codes %d %d %d (each served %d), total served %d", codes[0], codes[1], codes[2],
	       PER_CHILD, total);
	if (pep >= 0) {
		struct epoll_event ev;
		T("parent: epoll_wait(0) after the children", epoll_wait(pep, &ev, 1, 0));
		long a = T("parent: accept4 (nonblocking)", accept4(l, NULL, NULL, SOCK_NONBLOCK));
		if (a >= 0)
			close((int)a);
		close(pep);
	}
	close(l);
}

/* ---- fork while other threads are busy in the shim ----------------------- */
#define BUSY 4
static volatile int stop_busy;

static void *busy_thread(void *p)
{
	int i = (int)(long)p;
	int s[2];
	long rounds = 0;
	if (i % 2) {
		tcp_pair(s);
		tp_set_nonblock(s[1], 1);
	} else if (socketpair(AF_UNIX, SOCK_STREAM, 0, s)) {
		return (void *)-1L;
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = s[1] };
	epoll_ctl(ep, EPOLL_CTL_ADD, s[1], &ev);
	char buf[256];
	memset(buf, 'b', sizeof(buf));
	while (!__atomic_load_n(&stop_busy, __ATOMIC_ACQUIRE)) {
		if (write(s[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			break;
		size_t have = 0;
		while (have < sizeof(buf)) {
			if (epoll_wait(ep, &ev, 1, 5000) != 1)
				goto out;
			ssize_t n = read(s[1], buf, sizeof(buf) - have);
			if (n > 0)
				have += (size_t)n;
			else if (n == 0 || errno != EAGAIN)
				goto out;
		}
		rounds++;
	}
out:
	close(ep);
	close(s[0]);
	close(s[1]);
	return (void *)rounds;
}

static void fork_while_busy(void)
{
	t_note("== 100 forks while %d threads loop on socket I/O and epoll", BUSY);
	pthread_t t[BUSY];
	for (int i = 0; i < BUSY; i++)
		pthread_create(&t[i], NULL, busy_thread, (void *)(long)i);
	t_sleep_ms(50);
	int ok = 0, children_ok = 0;
	for (int i = 0; i < 100; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			t_die("socketpair");
		pid_t pid = fork();
		if (pid == 0) {
			/* Socket I/O, an epoll set, a thread: all of the shim. */
			int p[2];
			tcp_pair(p);
			int bad = write(p[0], "x", 1) != 1;
			char c;
			bad |= read(p[1], &c, 1) != 1;
			bad |= write(sv[1], "child", 5) != 5;
			exit(bad);
		}
		char buf[8];
		rcvtimeo(sv[0], 10);
		ok += recv(sv[0], buf, 5, MSG_WAITALL) == 5;
		int st;
		waitpid(pid, &st, 0);
		children_ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
		close(sv[0]);
		close(sv[1]);
	}
	__atomic_store_n(&stop_busy, 1, __ATOMIC_RELEASE);
	long all_ran = 1;
	for (int i = 0; i < BUSY; i++) {
		void *r;
		pthread_join(t[i], &r);
		all_ran &= (long)r > 0;
	}
	t_note("children that wrote back %d of 100, exited 0 %d of 100; busy threads kept going: %s", ok,
	       children_ok, tp_yesno(all_ran));
}

/* ---- daemon() and double fork ---------------------------------------------- */
static int daemon_side(int fd, const char *who)
{
	char msg[96], buf[32];
	/* Its parent is whatever reaps orphans here: not printed. */
	int len = snprintf(msg, sizeof(msg), "%s: session leader %s", who, getsid(0) == getpid() ? "yes" : "no");
	if (write(fd, msg, (size_t)len) != len)
		return 1;
	if (read(fd, buf, sizeof(buf)) != 3)
		return 2;
	if (write(fd, "bye", 3) != 3)
		return 3;
	return 0;
}

static void talk_to_daemon(const char *what, int fd)
{
	char buf[128];
	rcvtimeo(fd, 10);
	long n = read(fd, buf, sizeof(buf));
	t_bytes(what, buf, n > 0 ? n : 0);
	TE("  reply", write(fd, "ack", 3));
	n = recv(fd, buf, 3, MSG_WAITALL);
	t_bytes("  daemon's last words", buf, n > 0 ? n : 0);
	n = read(fd, buf, sizeof(buf));
	T("  then EOF", n);
}

static void daemons(void)
{
	t_note("== daemon()");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		if (daemon(1, 1) != 0)
			_exit(9);
		exit(daemon_side(sv[1], "daemon()"));
	}
	close(sv[1]);
	int st;
	waitpid(pid, &st, 0);
	t_note("process that called daemon(): %s", t_status(st));
	talk_to_daemon("daemon says", sv[0]);
	close(sv[0]);

	t_note("== double fork with setsid()");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		if (setsid() < 0)
			_exit(8);
		pid_t g = fork();
		if (g < 0)
			_exit(7);
		if (g > 0)
			exit(0); /* the middle process, through exit() */
		exit(daemon_side(sv[1], "grandchild"));
	}
	close(sv[1]);
	waitpid(pid, &st, 0);
	t_note("middle process: %s", t_status(st));
	talk_to_daemon("grandchild says", sv[0]);
	close(sv[0]);
}

/* ---- fork with batch state pending ------------------------------------------ */
static void fork_with_writebehind(void)
{
	t_note("== fork right after writes to a nonblocking TCP socket");
	int s[2];
	tcp_pair(s);
	tp_set_nonblock(s[0], 1);
	uint64_t h = T_FNV_INIT;
	char buf[100];
	long wrote = 0;
	for (int i = 0; i < 10; i++) {
		memset(buf, '0' + i, sizeof(buf));
		long n = write(s[0], buf, sizeof(buf));
		if (n > 0) {
			wrote += n;
			h = t_fnv(h, buf, (size_t)n);
		}
	}
	t_note("parent wrote %ld bytes", wrote);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		exit(write(s[0], "child", 5) == 5 ? 0 : 1);
	int st;
	waitpid(pid, &st, 0);
	t_note("child: %s", t_status(st));
	TE("parent writes after the child exited", write(s[0], "parent again", 12));
	static char got[2048];
	rcvtimeo(s[1], 5);
	long n = T("peer reads 1017 bytes", recv(s[1], got, 1017, MSG_WAITALL));
	if (n > 0) {
		t_note("  first 1000 are the parent's: %s", tp_yesno(n >= 1000 && t_fnv(T_FNV_INIT, got, 1000) == h));
		t_bytes("  then", got + (n > 1000 ? 1000 : n), n > 1000 ? n - 1000 : 0);
	}
	tp_set_nonblock(s[1], 1);
	T("peer: nothing more", recv(s[1], got, sizeof(got), 0));
	close(s[0]);
	close(s[1]);
}

/* The socket is in an epoll set and its readiness was reported: in batch
 * mode the bytes are then in the shim's stash. */
static void watched(int fd, int *ep_out)
{
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	T("epoll_wait reports the socket readable", epoll_wait(ep, &ev, 1, 5000));
	*ep_out = ep;
}

static void fork_with_stash(void)
{
	t_note("== fork with received bytes not yet read; the parent reads first");
	int s[2], go[2], ep;
	tcp_pair(s);
	tp_set_nonblock(s[1], 1);
	if (pipe(go))
		t_die("pipe");
	TE("peer writes 'before'", write(s[0], "before", 6));
	watched(s[1], &ep);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char c, buf[64];
		if (read(go[0], &c, 1) != 1)
			exit(90);
		tp_set_nonblock(s[1], 0);
		rcvtimeo(s[1], 3);
		long n = read(s[1], buf, sizeof(buf));
		exit(n == 5 && !memcmp(buf, "after", 5) ? 0 : n < 0 ? 91 : 92);
	}
	char buf[64];
	long n = T("parent reads", read(s[1], buf, sizeof(buf)));
	t_bytes("  got", buf, n > 0 ? n : 0);
	T("parent reads again", read(s[1], buf, sizeof(buf)));
	TE("let the child read", write(go[1], "g", 1));
	TE("peer writes 'after'", write(s[0], "after", 5));
	int st;
	waitpid(pid, &st, 0);
	t_note("child read 'after' (exit 0): %s", t_status(st));
	T("parent reads once more", read(s[1], buf, sizeof(buf)));
	close(ep);
	close(go[0]);
	close(go[1]);
	close(s[0]);
	close(s[1]);

	t_note("== accept, see the request arrive, fork a handler, close in the parent");
	tcp_pair(s);
	tp_set_nonblock(s[1], 1);
	TE("client sends its request", write(s[0], "GET /", 5));
	watched(s[1], &ep);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(ep);
		tp_set_nonblock(s[1], 0);
		rcvtimeo(s[1], 3);
		long m = read(s[1], buf, sizeof(buf));
		if (m <= 0)
			exit(m < 0 ? 93 : 94);
		char rep[80];
		int len = snprintf(rep, sizeof(rep), "handled %.*s", (int)m, buf);
		exit(write(s[1], rep, (size_t)len) == len ? 0 : 95);
	}
	close(ep);
	TE("parent closes its copy", close(s[1]));
	waitpid(pid, &st, 0);
	t_note("handler: %s", t_status(st));
	rcvtimeo(s[0], 5);
	n = T("client reads the reply", read(s[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n > 0 ? n : 0);
	close(s[0]);
}

int main(void)
{
	t_expect("served_ring>0");
	signal(SIGPIPE, SIG_IGN);
	listener = tp_listen(&port, 0, 128);

	prefork("blocking accept()", 0, 0);
	prefork("epoll loops", 1, 0);
	prefork("epoll loops, listener also in the parent's waited-on epoll set", 1, 1);
	fork_while_busy();
	daemons();
	fork_with_writebehind();
	fork_with_stash();
	return 0;
}
