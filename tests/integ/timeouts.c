/* SO_RCVTIMEO and SO_SNDTIMEO: a blocking call gives up with EAGAIN after
 * the timeout (or returns what it moved so far), data arriving in time is
 * returned, getsockopt reads the values back, and the timeout belongs to the
 * socket, not to the fd number it was set through. Timeouts are short
 * (100 ms) where they must expire and long where they must not; nothing
 * here prints or depends on elapsed time. */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "check.h"

static void set_timeo(int fd, int opt, long sec, long usec)
{
	struct timeval tv = { sec, usec };
	char label[64];
	snprintf(label, sizeof(label), "%s {%ld, %ld}", opt == SO_RCVTIMEO ? "SO_RCVTIMEO" : "SO_SNDTIMEO",
		 sec, usec);
	TE(label, setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)));
}

static void show_timeo(int fd, int opt)
{
	struct timeval tv = { -1, -1 };
	socklen_t len = sizeof(tv);
	int r = getsockopt(fd, SOL_SOCKET, opt, &tv, &len);
	t_note("  getsockopt %s: ret=%d {%ld, %ld} len=%u", opt == SO_RCVTIMEO ? "SO_RCVTIMEO" : "SO_SNDTIMEO",
	       r, (long)tv.tv_sec, (long)tv.tv_usec, (unsigned)len);
}

/* A child that writes `msg` to fd once the parent is blocked, or after
 * `delay_ms` if delay_ms > 0 (a guard that keeps a wrongly blocking call
 * from hanging the test). */
static pid_t writer(int fd, const char *msg, long delay_ms)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		if (delay_ms > 0)
			t_sleep_ms(delay_ms);
		else
			t_wait_blocked(parent);
		_exit(write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg) ? 0 : 1);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int st;
	waitpid(pid, &st, 0);
	t_note("  writer %s", t_status(st));
}

static long drain(int fd)
{
	static char buf[65536];
	long total = 0, r;
	while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		total += r;
	return total;
}

static void fill(int fd)
{
	static char zeros[4096];
	for (size_t chunk = sizeof(zeros); chunk; chunk /= 4)
		while (send(fd, zeros, chunk, MSG_DONTWAIT) > 0)
			;
}

int main(void)
{
	char buf[256];
	int sv[2];
	long n;
	t_expect("served_ring>0");
	t_expect("timeouts>0");

	t_note("== SO_RCVTIMEO expires");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	show_timeo(sv[0], SO_RCVTIMEO);
	set_timeo(sv[0], SO_RCVTIMEO, 0, 100000);
	show_timeo(sv[0], SO_RCVTIMEO);
	TE("recv", recv(sv[0], buf, sizeof(buf), 0));
	TE("read", read(sv[0], buf, sizeof(buf)));
	struct iovec v = { buf, sizeof(buf) };
	TE("readv", readv(sv[0], &v, 1));
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
	TE("recvmsg", recvmsg(sv[0], &m, 0));
	TE("recvfrom", recvfrom(sv[0], buf, sizeof(buf), 0, NULL, NULL));
	TE("write 5 first", write(sv[1], "12345", 5));
	n = TE("recv 100 MSG_WAITALL: 5 there, then the timeout", recv(sv[0], buf, 100, MSG_WAITALL));
	t_bytes("  got", buf, n);
	TE("recv MSG_DONTWAIT ignores the timeout", recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT));

	t_note("== data arriving before the timeout");
	set_timeo(sv[0], SO_RCVTIMEO, 20, 0);
	pid_t w = writer(sv[1], "in time", 0);
	n = TE("recv", recv(sv[0], buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	reap(w);
	w = writer(sv[1], "in time for read", 0);
	n = TE("read", read(sv[0], buf, sizeof(buf)));
	t_bytes("  got", buf, n);
	reap(w);

	t_note("== timeout cleared, odd values");
	set_timeo(sv[0], SO_RCVTIMEO, 0, 100000);
	set_timeo(sv[0], SO_RCVTIMEO, 0, 0);
	show_timeo(sv[0], SO_RCVTIMEO);
	w = writer(sv[1], "blocking again", 0);
	n = TE("recv blocks without a timeout", recv(sv[0], buf, sizeof(buf), 0));
	t_bytes("  got", buf, n);
	reap(w);
	set_timeo(sv[0], SO_RCVTIMEO, 0, 1000000);
	set_timeo(sv[0], SO_RCVTIMEO, 0, -1);
	set_timeo(sv[0], SO_RCVTIMEO, -5, 0);
	show_timeo(sv[0], SO_RCVTIMEO);
	/* The kernel stores a negative timeout as 0 jiffies: the call gives
	 * up at once. (The writer only keeps a wrong wait from hanging.) */
	w = writer(sv[1], "guard", 2000);
	n = TE("recv (negative timeout: at once)", recv(sv[0], buf, sizeof(buf), 0));
	if (n > 0)
		t_bytes("  got", buf, n);
	reap(w);
	drain(sv[0]);
	set_timeo(sv[0], SO_RCVTIMEO, LONG_MAX, 0);
	show_timeo(sv[0], SO_RCVTIMEO);
	w = writer(sv[1], "LONG_MAX means none", 0);
	n = TE("recv (LONG_MAX seconds: none)", recv(sv[0], buf, sizeof(buf), 0));
	if (n > 0)
		t_bytes("  got", buf, n);
	reap(w);
	drain(sv[0]);
	set_timeo(sv[0], SO_RCVTIMEO, 0, 1);
	show_timeo(sv[0], SO_RCVTIMEO);
	TE("recv (1 us)", recv(sv[0], buf, sizeof(buf), 0));
	socklen_t short_len = sizeof(struct timeval) - 1;
	struct timeval tv = { 0, 100000 };
	TE("setsockopt short optlen", setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, short_len));

	t_note("== the timeout belongs to the socket, not the fd number");
	set_timeo(sv[0], SO_RCVTIMEO, 0, 0);
	int d = dup(sv[0]);
	set_timeo(sv[0], SO_RCVTIMEO, 0, 100000);
	show_timeo(d, SO_RCVTIMEO);
	w = writer(sv[1], "guard", 2000);
	TE("recv on a dup made before the timeout was set", recv(d, buf, sizeof(buf), 0));
	reap(w);
	drain(sv[0]);
	close(d);
	set_timeo(sv[0], SO_RCVTIMEO, 0, 0);
	pid_t c = fork();
	if (c == 0) {
		struct timeval ctv = { 0, 100000 };
		_exit(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &ctv, sizeof(ctv)) ? 1 : 0);
	}
	reap(c);
	show_timeo(sv[0], SO_RCVTIMEO);
	w = writer(sv[1], "guard", 2000);
	TE("recv after a child set the timeout", recv(sv[0], buf, sizeof(buf), 0));
	reap(w);
	drain(sv[0]);
	close(sv[0]);
	close(sv[1]);

	t_note("== SO_SNDTIMEO");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	set_timeo(sv[0], SO_SNDTIMEO, 0, 100000);
	show_timeo(sv[0], SO_SNDTIMEO);
	static char big[1 << 20];
	n = TE("send 1 MiB into an empty socket", send(sv[0], big, sizeof(big), 0));
	t_note("  partial: %s; receiver has exactly that: %s", n > 0 && n < (long)sizeof(big) ? "yes" : "no",
	       drain(sv[1]) == n ? "yes" : "no");
	n = TE("write 1 MiB into an empty socket", write(sv[0], big, sizeof(big)));
	t_note("  receiver has exactly that: %s", drain(sv[1]) == n ? "yes" : "no");
	fill(sv[0]);
	TE("send 1 byte into a full socket", send(sv[0], "x", 1, 0));
	TE("write 1 byte into a full socket", write(sv[0], "x", 1));
	struct iovec wv = { "x", 1 };
	TE("writev 1 byte into a full socket", writev(sv[0], &wv, 1));
	struct msghdr wm = { .msg_iov = &wv, .msg_iovlen = 1 };
	TE("sendmsg 1 byte into a full socket", sendmsg(sv[0], &wm, 0));
	drain(sv[1]);
	close(sv[0]);
	close(sv[1]);

	t_note("== accept and UDP");
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		t_die("listener");
	set_timeo(l, SO_RCVTIMEO, 0, 100000);
	TE("accept", accept(l, NULL, NULL));
	TE("accept4", accept4(l, NULL, NULL, SOCK_CLOEXEC));
	set_timeo(l, SO_RCVTIMEO, 20, 0);
	pid_t cp = getpid();
	c = fork();
	if (c == 0) {
		t_wait_blocked(cp);
		int s = socket(AF_INET, SOCK_STREAM, 0);
		_exit(connect(s, (struct sockaddr *)&a, sizeof(a)) ? 1 : 0);
	}
	errno = EDOM;
	int as = accept(l, NULL, NULL);
	t_note("accept with a connection in time: %s", as >= 0 ? "fd" : t_errname(errno));
	reap(c);
	close(as);
	close(l);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof(a)))
		t_die("udp");
	set_timeo(u, SO_RCVTIMEO, 0, 100000);
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	TE("recvfrom UDP", recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
	t_note("  addrlen untouched: %s", fl == sizeof(from) ? "yes" : "no");
	TE("recv UDP", recv(u, buf, sizeof(buf), 0));
	close(u);
	return 0;
}
