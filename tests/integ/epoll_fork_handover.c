/* epoll registrations across fork(): the child shares the epoll instance,
 * so an edge consumed by either process is consumed for both, and fork
 * itself makes no edge. Batch mode watches TCP sockets itself and hands
 * their registrations to the kernel's epoll at fork; the hand-over must
 * keep each item's state: an edge-triggered item whose edge was reported
 * gets no new one, a oneshot item that fired stays disabled, and the
 * other items' pending events stay as they were (fuzz seeds 21, 22).
 * Bytes the shim received ahead before the fork are no longer in the
 * socket: they must still make the socket readable and count for
 * FIONREAD (fuzz seed 7). */
#include <sys/epoll.h>

#include "tcp_peer.h"

static void fork_and_reap(const char *label, int ep, int child_waits)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (!pid) {
		int n = 0;
		if (child_waits) {
			struct epoll_event ev[8];
			n = epoll_wait(ep, ev, 8, 0);
		}
		_exit(n < 0 ? 100 : n);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("%s: child %s\n", label, t_status(st));
	fflush(stdout);
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	int port;
	int l = tp_listen(&port, 0, 16);
	int a[2], b[2], c[2], u[2], p[2];
	tp_pair(l, port, a);
	tp_pair(l, port, b);
	tp_pair(l, port, c);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, u) || pipe(p))
		t_die("setup");
	tp_set_nonblock(a[1], 1);
	tp_set_nonblock(b[1], 1);
	tp_set_nonblock(c[1], 1);
	int ep = epoll_create1(0);
	if (ep < 0)
		t_die("epoll_create1");

	t_note("== edges reported before fork");
	TE("ADD tcp IN|OUT|ET data=1", tp_ctl(ep, EPOLL_CTL_ADD, a[1], EPOLLIN | EPOLLOUT | EPOLLET, 1));
	TE("ADD unix IN data=2", tp_ctl(ep, EPOLL_CTL_ADD, u[0], EPOLLIN, 2));
	TE("ADD tcp OUT|ONESHOT data=4", tp_ctl(ep, EPOLL_CTL_ADD, b[1], EPOLLOUT | EPOLLONESHOT, 4));
	TE("ADD tcp IN|RDHUP data=5", tp_ctl(ep, EPOLL_CTL_ADD, c[1], EPOLLIN | EPOLLRDHUP, 5));
	TE("close the unix peer", close(u[1]));
	T("send 5 bytes to tcp data=5", write(c[0], "hello", 5));
	tp_wait_acked(c[0]);
	tp_wait("wait", ep, 8, 0);
	tp_wait("wait: the edges are taken, the oneshot disabled", ep, 8, 0);
	TE("ADD pipe IN|ET data=3", tp_ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 3));
	T("write the pipe", write(p[1], "x", 1));

	t_note("== fork makes no edge; the pending one stays");
	fork_and_reap("fork", ep, 0);
	tp_wait("wait", ep, 8, 0);
	tp_wait("wait", ep, 8, 0);
	int nread = -1;
	TE("FIONREAD data=5", ioctl(c[1], FIONREAD, &nread));
	printf("  n=%d\n", nread);
	char buf[16];
	long n = TE("read 3 of data=5", read(c[1], buf, 3));
	if (n > 0)
		t_bytes("  got", buf, n);
	tp_wait("wait", ep, 8, 0);
	n = TE("read data=5", read(c[1], buf, sizeof(buf)));
	if (n > 0)
		t_bytes("  got", buf, n);
	tp_wait("wait: data=5 drained", ep, 8, 0);

	t_note("== an edge the child takes is taken for the parent too");
	T("write the pipe", write(p[1], "y", 1));
	fork_and_reap("fork, the child waits", ep, 1);
	tp_wait("wait", ep, 8, 0);
	T("MOD oneshot again", tp_ctl(ep, EPOLL_CTL_MOD, b[1], EPOLLOUT | EPOLLONESHOT, 4));
	tp_wait("wait", ep, 8, 0);
	tp_wait("wait", ep, 8, 0);
	return 0;
}
