/* Receive corner cases the nonblocking-try-then-wait scheme cannot rebuild
 * on its own: a datagram socket shut for reading (a blocking receive returns
 * 0, a nonblocking one EAGAIN), MSG_PEEK|MSG_WAITALL (which a unix stream
 * answers at once), a zero-length MSG_WAITALL recvfrom (the kernel still sets
 * the address length), and O_NONBLOCK cleared through a dup. */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "check.h"

static void late_writer(int fd, const char *msg, size_t n)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		t_wait_blocked(parent);
		if (write(fd, msg, n) != (ssize_t)n)
			_exit(1);
		_exit(0);
	}
}

static void reap_all(void)
{
	int st;
	while (wait(&st) > 0)
		;
}

int main(void)
{
	char buf[256];
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
		t_die("socketpair");
	T("shutdown dgram RDWR", shutdown(sv[0], SHUT_RDWR));
	T("read after shutdown", read(sv[0], buf, 10));
	T("recv DONTWAIT after shutdown", recv(sv[0], buf, 10, MSG_DONTWAIT));
	struct iovec v = { buf, 10 };
	T("readv after shutdown", readv(sv[0], &v, 1));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	T("recvfrom after shutdown", recvfrom(sv[0], buf, 10, 0, (struct sockaddr *)&ss, &sl));
	t_note("addrlen=%u", (unsigned)sl);
	close(sv[0]);
	close(sv[1]);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	T("write 5", write(sv[1], "hello", 5));
	late_writer(sv[1], " world", 6);
	long n = T("recv PEEK|WAITALL 11", recv(sv[0], buf, 11, MSG_PEEK | MSG_WAITALL));
	t_bytes("peeked", buf, n);
	reap_all();
	n = T("recv 11", recv(sv[0], buf, 11, 0));
	t_bytes("read", buf, n);

	int d = dup(sv[0]);
	int on = 1;
	T("FIONBIO 1 on dup", ioctl(d, FIONBIO, &on));
	T("recv on original (nonblocking via dup)", recv(sv[0], buf, 4, 0));
	on = 0;
	T("FIONBIO 0 on original", ioctl(sv[0], FIONBIO, &on));
	late_writer(sv[1], "late", 4);
	n = T("recv WAITALL on dup (blocking again)", recv(d, buf, 4, MSG_WAITALL));
	t_bytes("read", buf, n);
	reap_all();
	T("shutdown peer WR", shutdown(sv[1], SHUT_WR));
	sl = sizeof(ss);
	T("recvfrom len 0 WAITALL", recvfrom(sv[0], buf, 0, MSG_WAITALL, (struct sockaddr *)&ss, &sl));
	t_note("addrlen=%u", (unsigned)sl);
	return 0;
}
