/* Nonblocking behaviour: SOCK_NONBLOCK, O_NONBLOCK through fcntl (set and
 * cleared at any time), ioctl(FIONBIO), MSG_DONTWAIT, nonblocking pipes,
 * nonblocking accept/accept4, and how far a socket or pipe fills before
 * EAGAIN. A read on an fd whose O_NONBLOCK was cleared must block until a
 * writer (a thread, or a forked child) sends data. */
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "check.h"

static char chunk[1000];

static const char *yesno(int b)
{
	return b ? "yes" : "no";
}

static void show_flags(const char *what, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	int fdfl = fcntl(fd, F_GETFD);
	t_note("%s: O_NONBLOCK=%s FD_CLOEXEC=%s", what, yesno(fl & O_NONBLOCK), yesno(fdfl & FD_CLOEXEC));
}

/* Write 1000-byte chunks until the call fails; print where it stopped and
 * return how much went in. */
static long fill(const char *what, int fd, int how, int stream)
{
	long total = 0, r;
	int e = 0;
	for (;;) {
		errno = 0;
		if (how == 0)
			r = write(fd, chunk, sizeof(chunk));
		else
			r = send(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
		e = errno;
		if (r < 0)
			break;
		total += r;
		if (total > (64L << 20))
			break;
	}
	/* A stream socket under write-behind takes more before EAGAIN (its
	 * sends are coalesced into fewer, larger buffers): "~" lines hold such
	 * counts, compared only where nothing is held back (tests/run). */
	t_note("%s%s: filled %ld bytes", stream ? "~ " : "", what, total);
	t_note("%s: stopped with ret=%ld errno=%s", what, r, r < 0 ? t_errname(e) : "-");
	return total;
}

/* Read with MSG_DONTWAIT (sockets) or read() (pipes, must be nonblocking)
 * until EAGAIN; returns the byte count. */
static long drain(int fd, int sock)
{
	static char buf[65536];
	long total = 0;
	for (;;) {
		ssize_t r = sock ? recv(fd, buf, sizeof(buf), MSG_DONTWAIT) : read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		total += r;
	}
	return total;
}

/* ---- a writer that acts once the main thread is blocked ----------------- */

struct late {
	pid_t tid; /* main thread to watch */
	int fd;
	const char *msg;
	int connect_port; /* or connect to 127.0.0.1:port instead of writing */
	long result;
};

static int connect_loopback(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	return s;
}

static void *late_thread(void *p)
{
	struct late *l = p;
	t_wait_blocked_task(getpid(), l->tid);
	if (l->connect_port) {
		l->result = connect_loopback(l->connect_port);
		return NULL;
	}
	l->result = write(l->fd, l->msg, strlen(l->msg));
	return NULL;
}

static pthread_t late_by_thread(struct late *l)
{
	pthread_t t;
	l->tid = (pid_t)syscall(SYS_gettid);
	if (pthread_create(&t, NULL, late_thread, l))
		t_die("pthread_create");
	return t;
}

static pid_t late_by_child(int fd, const char *msg)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		t_wait_blocked(parent);
		ssize_t w = write(fd, msg, strlen(msg));
		_exit(w == (ssize_t)strlen(msg) ? 0 : 1);
	}
	return pid;
}

static void wait_child(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		t_die("waitpid");
	t_note("child: %s", t_status(st));
}

static int tcp_listener(int type, int *port)
{
	int l = socket(AF_INET, type, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 16) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		t_die("tcp listener");
	*port = ntohs(a.sin_port);
	return l;
}

int main(void)
{
	int sv[2], p[2], r;
	char buf[256];
	long n;
	t_expect("served_ring>0");

	t_note("== socketpair SOCK_NONBLOCK");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		t_die("socketpair");
	show_flags("sv[0]", sv[0]);
	TE("read empty", read(sv[0], buf, sizeof(buf)));
	TE("recv empty", recv(sv[0], buf, sizeof(buf), 0));
	TE("recvfrom empty", recvfrom(sv[0], buf, sizeof(buf), 0, NULL, NULL));
	struct iovec iv = { buf, sizeof(buf) };
	TE("readv empty", readv(sv[0], &iv, 1));
	struct msghdr mh = { .msg_iov = &iv, .msg_iovlen = 1 };
	TE("recvmsg empty", recvmsg(sv[0], &mh, 0));
	TE("read 0 bytes", read(sv[0], buf, 0));
	TE("write 3", write(sv[1], "abc", 3));
	n = TE("read", read(sv[0], buf, sizeof(buf)));
	t_bytes("got", buf, n);
	long filled = fill("socketpair write()", sv[1], 0, 1);
	TE("write 1 more", write(sv[1], "x", 1));
	TE("send 1 more", send(sv[1], "x", 1, 0));
	struct iovec wv = { chunk, 10 };
	TE("writev 1 more", writev(sv[1], &wv, 1));
	struct msghdr wm = { .msg_iov = &wv, .msg_iovlen = 1 };
	TE("sendmsg 1 more", sendmsg(sv[1], &wm, 0));
	long d = drain(sv[0], 1);
	t_note("~ drained %ld", d);
	t_note("drained everything written: %s", d == filled + 1 + 1 + 10 + 10 ? "yes" : "no");
	filled = fill("socketpair send(MSG_DONTWAIT)", sv[1], 1, 1);
	d = drain(sv[0], 1);
	t_note("~ drained %ld", d);
	t_note("drained everything written: %s", d == filled ? "yes" : "no");
	close(sv[0]);
	close(sv[1]);

	t_note("== datagram socketpair SOCK_NONBLOCK");
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv))
		t_die("socketpair dgram");
	TE("recv empty", recv(sv[0], buf, sizeof(buf), 0));
	fill("dgram socketpair write()", sv[1], 0, 0);
	long dgrams = 0;
	while (recv(sv[0], buf, sizeof(buf), 0) > 0)
		dgrams++;
	t_note("datagrams received: %ld", dgrams);
	close(sv[0]);
	close(sv[1]);

	t_note("== fcntl O_NONBLOCK set and cleared");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	show_flags("fresh", sv[0]);
	int fl = fcntl(sv[0], F_GETFL);
	TE("F_SETFL O_NONBLOCK", fcntl(sv[0], F_SETFL, fl | O_NONBLOCK));
	show_flags("after set", sv[0]);
	TE("read empty", read(sv[0], buf, sizeof(buf)));
	TE("recv empty", recv(sv[0], buf, sizeof(buf), 0));
	TE("F_SETFL 0", fcntl(sv[0], F_SETFL, fl & ~O_NONBLOCK));
	show_flags("after clear", sv[0]);
	TE("F_SETFL O_NONBLOCK again", fcntl(sv[0], F_SETFL, fl | O_NONBLOCK));
	TE("recv empty again", recv(sv[0], buf, sizeof(buf), 0));
	TE("F_SETFL 0 again", fcntl(sv[0], F_SETFL, fl & ~O_NONBLOCK));
	struct late l = { .fd = sv[1], .msg = "from thread" };
	pthread_t th = late_by_thread(&l);
	n = TE("read blocks until a thread writes", read(sv[0], buf, sizeof(buf)));
	t_bytes("got", buf, n);
	pthread_join(th, NULL);
	t_note("thread write ret=%ld", l.result);

	t_note("== ioctl FIONBIO");
	int on = 1, off = 0;
	TE("FIONBIO 1", ioctl(sv[0], FIONBIO, &on));
	show_flags("after FIONBIO 1", sv[0]);
	TE("read empty", read(sv[0], buf, sizeof(buf)));
	TE("recvmsg empty", recvmsg(sv[0], &mh, 0));
	TE("FIONBIO 0", ioctl(sv[0], FIONBIO, &off));
	show_flags("after FIONBIO 0", sv[0]);
	l = (struct late){ .fd = sv[1], .msg = "after FIONBIO 0" };
	th = late_by_thread(&l);
	n = TE("recv blocks until a thread writes", recv(sv[0], buf, sizeof(buf), 0));
	t_bytes("got", buf, n);
	pthread_join(th, NULL);

	t_note("== MSG_DONTWAIT on a blocking socket");
	TE("recv MSG_DONTWAIT", recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT));
	TE("recvfrom MSG_DONTWAIT", recvfrom(sv[0], buf, sizeof(buf), MSG_DONTWAIT, NULL, NULL));
	TE("recvmsg MSG_DONTWAIT", recvmsg(sv[0], &mh, MSG_DONTWAIT));
	fill("blocking socketpair send(MSG_DONTWAIT)", sv[1], 1, 0);
	TE("sendto MSG_DONTWAIT full", sendto(sv[1], "x", 1, MSG_DONTWAIT, NULL, 0));
	TE("sendmsg MSG_DONTWAIT full", sendmsg(sv[1], &wm, MSG_DONTWAIT));
	t_note("drained %ld", drain(sv[0], 1));
	show_flags("still blocking", sv[1]);
	close(sv[0]);
	close(sv[1]);

	t_note("== pipe2 O_NONBLOCK");
	if (pipe2(p, O_NONBLOCK))
		t_die("pipe2");
	show_flags("read end", p[0]);
	show_flags("write end", p[1]);
	TE("read empty", read(p[0], buf, sizeof(buf)));
	TE("readv empty", readv(p[0], &iv, 1));
	TE("read 0 bytes", read(p[0], buf, 0));
	fill("pipe write()", p[1], 0, 0);
	TE("write 1 more", write(p[1], "x", 1));
	TE("writev 1 more", writev(p[1], &wv, 1));
	n = TE("read 100", read(p[0], buf, 100));
	static char big[20000];
	TE("write 20000 into 100 free bytes", write(p[1], big, sizeof(big)));
	TE("write 100 (<= PIPE_BUF) into the rest", write(p[1], big, 100));
	t_note("drained %ld", drain(p[0], 0));
	TE("write 20000 into an empty pipe", write(p[1], big, sizeof(big)));
	t_note("drained %ld", drain(p[0], 0));
	TE("close write end", close(p[1]));
	TE("read at EOF", read(p[0], buf, sizeof(buf)));
	close(p[0]);

	t_note("== pipe with fcntl O_NONBLOCK");
	if (pipe(p))
		t_die("pipe");
	fl = fcntl(p[0], F_GETFL);
	TE("F_SETFL O_NONBLOCK read end", fcntl(p[0], F_SETFL, fl | O_NONBLOCK));
	TE("read empty", read(p[0], buf, sizeof(buf)));
	TE("F_SETFL O_NONBLOCK write end", fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK));
	fill("pipe (fcntl) write()", p[1], 0, 0);
	t_note("drained %ld", drain(p[0], 0));
	TE("F_SETFL 0 read end", fcntl(p[0], F_SETFL, fl));
	l = (struct late){ .fd = p[1], .msg = "pipe late" };
	th = late_by_thread(&l);
	n = TE("read blocks until a thread writes", read(p[0], buf, sizeof(buf)));
	t_bytes("got", buf, n);
	pthread_join(th, NULL);
	int on2 = 1;
	TE("FIONBIO 1 read end", ioctl(p[0], FIONBIO, &on2));
	TE("read empty", read(p[0], buf, sizeof(buf)));
	close(p[0]);
	close(p[1]);

	t_note("== accept on a nonblocking listener");
	int port;
	int ls = tcp_listener(SOCK_STREAM | SOCK_NONBLOCK, &port);
	show_flags("listener", ls);
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	TE("accept empty queue", accept(ls, (struct sockaddr *)&peer, &plen));
	TE("accept4 empty queue", accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
	int c1 = connect_loopback(port);
	if (c1 < 0)
		t_die("connect");
	struct pollfd pf = { ls, POLLIN, 0 };
	poll(&pf, 1, 5000);
	int a1 = TE("accept4 SOCK_NONBLOCK|SOCK_CLOEXEC", accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
	show_flags("accepted (flags)", a1);
	TE("recv on accepted", recv(a1, buf, sizeof(buf), 0));
	TE("read on accepted", read(a1, buf, sizeof(buf)));
	TE("send from client", send(c1, "hi", 2, 0));
	pf = (struct pollfd){ a1, POLLIN, 0 };
	poll(&pf, 1, 5000);
	n = TE("recv on accepted", recv(a1, buf, sizeof(buf), 0));
	t_bytes("got", buf, n);
	TE("accept empty again", accept(ls, NULL, NULL));
	int c2 = connect_loopback(port);
	pf = (struct pollfd){ ls, POLLIN, 0 };
	poll(&pf, 1, 5000);
	int a2 = TE("accept (no flags)", accept(ls, NULL, NULL));
	show_flags("accepted (no flags)", a2);
	l = (struct late){ .fd = c2, .msg = "blocking accepted" };
	th = late_by_thread(&l);
	n = TE("recv on accepted blocks until a thread writes", recv(a2, buf, sizeof(buf), 0));
	t_bytes("got", buf, n);
	pthread_join(th, NULL);
	close(a1);
	close(a2);
	close(c1);
	close(c2);
	TE("listener F_SETFL blocking", fcntl(ls, F_SETFL, fcntl(ls, F_GETFL) & ~O_NONBLOCK));
	l = (struct late){ .connect_port = port };
	th = late_by_thread(&l);
	/* (Which number it gets is fdnums.c's business.) */
	errno = EDOM;
	int a3 = accept(ls, NULL, NULL);
	t_note("accept blocks until a thread connects: %s errno-kept=%s", a3 >= 0 ? "fd" : "failed",
	       errno == EDOM ? "yes" : t_errname(errno));
	pthread_join(th, NULL);
	t_note("thread connect ok: %s", yesno(l.result >= 0));
	close(a3);
	close((int)l.result);
	TE("listener F_SETFL nonblocking", fcntl(ls, F_SETFL, fcntl(ls, F_GETFL) | O_NONBLOCK));
	TE("accept empty queue", accept(ls, NULL, NULL));
	close(ls);

	t_note("== unix listener with fcntl O_NONBLOCK");
	int us = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un ua = { .sun_family = AF_UNIX };
	snprintf(ua.sun_path, sizeof(ua.sun_path), "nonblock.sock");
	unlink(ua.sun_path);
	if (us < 0 || bind(us, (struct sockaddr *)&ua, sizeof(ua)) || listen(us, 4))
		t_die("unix listener");
	TE("F_SETFL O_NONBLOCK", fcntl(us, F_SETFL, O_NONBLOCK));
	TE("accept4 empty queue", accept4(us, NULL, NULL, SOCK_CLOEXEC));
	int uc = socket(AF_UNIX, SOCK_STREAM, 0);
	TE("connect", connect(uc, (struct sockaddr *)&ua, sizeof(ua)));
	int ua1 = TE("accept4 SOCK_NONBLOCK", accept4(us, NULL, NULL, SOCK_NONBLOCK));
	show_flags("accepted", ua1);
	TE("read on accepted", read(ua1, buf, sizeof(buf)));
	close(ua1);
	close(uc);
	close(us);
	unlink(ua.sun_path);

	t_note("== nonblocking connect");
	ls = tcp_listener(SOCK_STREAM, &port);
	int nc = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	TE("connect nonblocking", connect(nc, (struct sockaddr *)&sa, sizeof(sa)));
	pf = (struct pollfd){ nc, POLLOUT, 0 };
	poll(&pf, 1, 5000);
	int soerr = -1;
	socklen_t sl = sizeof(soerr);
	getsockopt(nc, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	t_note("SO_ERROR after connect: %s", soerr ? t_errname(soerr) : "0");
	int na = TE("accept", accept(ls, NULL, NULL));
	TE("recv on nonblocking client", recv(nc, buf, sizeof(buf), 0));
	TE("send to client", send(na, "ok", 2, 0));
	pf = (struct pollfd){ nc, POLLIN, 0 };
	poll(&pf, 1, 5000);
	n = TE("recv", recv(nc, buf, sizeof(buf), 0));
	t_bytes("got", buf, n);
	close(na);
	close(nc);
	close(ls);

	/* From here on every fd is shared with a child process: flags may
	 * change behind the shim's back. */
	t_note("== O_NONBLOCK changed by another process");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	pid_t pid = fork();
	if (pid == 0) {
		int f = fcntl(sv[0], F_GETFL);
		_exit(fcntl(sv[0], F_SETFL, f | O_NONBLOCK) == 0 ? 0 : 1);
	}
	wait_child(pid);
	TE("read after child set O_NONBLOCK", read(sv[0], buf, sizeof(buf)));
	TE("recv after child set O_NONBLOCK", recv(sv[0], buf, sizeof(buf), 0));
	pid = fork();
	if (pid == 0) {
		int f = fcntl(sv[0], F_GETFL);
		_exit(fcntl(sv[0], F_SETFL, f & ~O_NONBLOCK) == 0 ? 0 : 1);
	}
	wait_child(pid);
	pid = late_by_child(sv[1], "child late");
	n = TE("read blocks after child cleared O_NONBLOCK", read(sv[0], buf, sizeof(buf)));
	t_bytes("got", buf, n);
	wait_child(pid);

	t_note("== O_NONBLOCK through a dup");
	int dfd = dup(sv[0]);
	TE("F_SETFL O_NONBLOCK on dup", fcntl(dfd, F_SETFL, O_NONBLOCK));
	TE("read original", read(sv[0], buf, sizeof(buf)));
	TE("F_SETFL 0 on original", fcntl(sv[0], F_SETFL, 0));
	show_flags("dup", dfd);
	pid = late_by_child(sv[1], "via dup");
	n = TE("read on dup blocks", read(dfd, buf, sizeof(buf)));
	t_bytes("got", buf, n);
	wait_child(pid);
	close(dfd);

	t_note("== pipe O_NONBLOCK changed by another process");
	if (pipe(p))
		t_die("pipe");
	pid = fork();
	if (pid == 0)
		_exit(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0 ? 0 : 1);
	wait_child(pid);
	TE("read after child set O_NONBLOCK", read(p[0], buf, sizeof(buf)));
	r = fcntl(p[0], F_SETFL, 0);
	pid = late_by_child(p[1], "pipe child");
	n = TE("read blocks again", read(p[0], buf, sizeof(buf)));
	t_bytes("got", buf, n);
	wait_child(pid);
	(void)r;
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
