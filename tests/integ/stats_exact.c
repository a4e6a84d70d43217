/* Counters with known values: a scripted sequence of calls, each call type
 * made a known number of times, checked against RINGSHIM_STATS by the
 * runner's #expect lines (summed over every process of the test; this one
 * has no children).
 *
 * A call is counted per call type whether the ring serves it or not, so the
 * counts are the same in strict and batch mode. The C runtime makes calls of
 * its own (stdio's writes to stdout, start-up reads), so read, write and
 * close get lower bounds; the call types the runtime never uses (recv/send,
 * the vector and positional forms, socket calls, readiness calls) get exact
 * counts. */
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "check.h"

static void expect_exact(const char *counter, int n)
{
	char line[80];
	snprintf(line, sizeof(line), "%s==%d", counter, n);
	t_expect(line);
}

int main(void)
{
	char buf[64];
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		t_die("socketpair");

	/* 10 writes, 10 reads: one byte pattern each. */
	for (int i = 0; i < 10; i++) {
		char out[4] = { 'w', (char)('0' + i), '\n', 0 };
		char label[32];
		snprintf(label, sizeof(label), "write %d", i);
		T(label, write(sv[0], out, 3));
		snprintf(label, sizeof(label), "read %d", i);
		long n = T(label, read(sv[1], buf, 3));
		t_bytes("got", buf, n);
	}

	/* 2 writev, 2 readv. */
	for (int i = 0; i < 2; i++) {
		struct iovec wv[2] = { { "ab", 2 }, { "cde", 3 } };
		T("writev", writev(sv[0], wv, 2));
		char x[2], y[3];
		struct iovec rv[2] = { { x, 2 }, { y, 3 } };
		long n = T("readv", readv(sv[1], rv, 2));
		t_bytes("readv x", x, n < 2 ? n : 2);
		t_bytes("readv y", y, n > 2 ? n - 2 : 0);
	}

	/* 1 sendto, 1 recvfrom, 1 sendmsg, 1 recvmsg. */
	T("sendto", sendto(sv[0], "to", 2, 0, NULL, 0));
	long n = T("recvfrom", recvfrom(sv[1], buf, 2, 0, NULL, NULL));
	t_bytes("got", buf, n);
	struct iovec mv = { "msg", 3 };
	struct msghdr mh = { .msg_iov = &mv, .msg_iovlen = 1 };
	T("sendmsg", sendmsg(sv[0], &mh, 0));
	struct iovec rmv = { buf, 3 };
	struct msghdr rmh = { .msg_iov = &rmv, .msg_iovlen = 1 };
	n = T("recvmsg", recvmsg(sv[1], &rmh, 0));
	t_bytes("got", buf, n);

	/* 1 sendmmsg, 1 recvmmsg (both passed to libc, counted as calls). */
	struct iovec v1 = { "mm", 2 };
	struct mmsghdr mm = { .msg_hdr = { .msg_iov = &v1, .msg_iovlen = 1 } };
	T("sendmmsg", sendmmsg(sv[0], &mm, 1, 0));
	struct iovec rv1 = { buf, 2 };
	struct mmsghdr rmm = { .msg_hdr = { .msg_iov = &rv1, .msg_iovlen = 1 } };
	T("recvmmsg", recvmmsg(sv[1], &rmm, 1, 0, NULL));
	t_bytes("got", buf, rmm.msg_len);

	/* Readiness calls: 1 poll, 1 select, 1 epoll_ctl, 1 epoll_wait. */
	T("send 1", send(sv[0], "p", 1, 0));
	struct pollfd pfd = { .fd = sv[1], .events = POLLIN };
	T("poll", poll(&pfd, 1, 5000));
	t_note("poll revents POLLIN=%d", !!(pfd.revents & POLLIN));
	fd_set rs;
	FD_ZERO(&rs);
	FD_SET(sv[1], &rs);
	struct timeval tv = { 5, 0 };
	T("select", select(sv[1] + 1, &rs, NULL, NULL, &tv));
	t_note("select readable=%d", FD_ISSET(sv[1], &rs) ? 1 : 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		t_die("epoll_create1");
	/* Interest in no event: the wait returns 0 at once, natively and
	 * under the shim (this test counts calls, epoll_*.c test epoll). */
	struct epoll_event ev = { .events = 0, .data.fd = sv[1] };
	T("epoll_ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
	struct epoll_event got;
	T("epoll_wait (timeout 0)", epoll_wait(ep, &got, 1, 0));

	/* 3 recv, 1 more send (2 in all), 1 shutdown: the third recv sees EOF. */
	n = T("recv 1", recv(sv[1], buf, sizeof(buf), 0));
	t_bytes("got", buf, n);
	T("send 2", send(sv[0], "second", 6, 0));
	n = T("recv 2", recv(sv[1], buf, sizeof(buf), 0));
	t_bytes("got", buf, n);
	T("shutdown SHUT_WR", shutdown(sv[0], SHUT_WR));
	T("recv 3 (EOF)", recv(sv[1], buf, sizeof(buf), 0));

	/* A regular file: 1 pwrite, 1 pwritev, 2 pread (one on a pipe: ESPIPE,
	 * passed to libc as an fd kind the positional forms never serve), 1
	 * preadv, 1 sendfile into the socketpair's other direction. */
	int f = open("stats_exact.tmp", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f < 0)
		t_die("open");
	unlink("stats_exact.tmp");
	T("pwrite", pwrite(f, "0123456789", 10, 0));
	struct iovec pv[2] = { { "ab", 2 }, { "cd", 2 } };
	T("pwritev", pwritev(f, pv, 2, 10));
	n = T("pread", pread(f, buf, 4, 3));
	t_bytes("got", buf, n);
	char p1[3], p2[3];
	struct iovec prv[2] = { { p1, 3 }, { p2, 3 } };
	n = T("preadv", preadv(f, prv, 2, 8));
	t_bytes("preadv 1", p1, n < 3 ? n : 3);
	t_bytes("preadv 2", p2, n > 3 ? n - 3 : 0);
	int pp[2];
	if (pipe(pp) != 0)
		t_die("pipe");
	T("pread on a pipe", pread(pp[0], buf, 1, 0));
	off_t off = 0;
	T("sendfile", sendfile(sv[1], f, &off, 14));
	n = T("read sendfile bytes", read(sv[0], buf, 14));
	t_bytes("got", buf, n);

	/* 1 connect, 1 accept on an abstract unix socket. */
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0)
		t_die("socket");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "ringshim-stats-exact-%d",
			   (int)getpid());
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
	if (bind(l, (struct sockaddr *)&sa, alen) != 0 || listen(l, 4) != 0)
		t_die("bind/listen");
	T("connect", connect(c, (struct sockaddr *)&sa, alen));
	int a = accept(l, NULL, NULL);
	t_note("accept: %s", a >= 0 ? "ok" : t_errname(errno));

	/* 9 closes. */
	int fds[] = { sv[0], sv[1], ep, f, pp[0], pp[1], l, c, a };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		T("close", close(fds[i]));

	expect_exact("call_readv", 2);
	expect_exact("call_writev", 2);
	expect_exact("call_recv", 3);
	expect_exact("call_send", 2);
	expect_exact("call_recvfrom", 1);
	expect_exact("call_sendto", 1);
	expect_exact("call_recvmsg", 1);
	expect_exact("call_sendmsg", 1);
	expect_exact("call_recvmmsg", 1);
	expect_exact("call_sendmmsg", 1);
	expect_exact("call_shutdown", 1);
	expect_exact("call_pread", 2);
	expect_exact("call_pwrite", 1);
	expect_exact("call_preadv", 1);
	expect_exact("call_pwritev", 1);
	expect_exact("call_sendfile", 1);
	expect_exact("call_connect", 1);
	expect_exact("call_accept", 1);
	expect_exact("call_poll", 1);
	expect_exact("call_select", 1);
	expect_exact("call_epoll_ctl", 1);
	expect_exact("call_epoll_wait", 1);
	t_expect("call_read>=11");
	t_expect("call_write>=10");
	t_expect("call_close>=9");
	/* The pipe pread; closes of fds never classified count here too. */
	t_expect("pt_fd_kind>=1");
	/* Strict mode serves every fd kind; batch mode leaves regular files to
	 * libc by default (the file's pwrite, pwritev, pread, preadv and
	 * close). No ring cap, io_uring available, no signal handlers. */
	t_expect("strict:pt_fds_filter==0");
	t_expect("batch,sqpoll:pt_fds_filter==5");
	t_expect("pt_ring_cap==0");
	t_expect("pt_fallback==0");
	t_expect("pt_reentry==0");
	t_expect("rings_created>=1");
	t_expect("enter>=1");
	return 0;
}
