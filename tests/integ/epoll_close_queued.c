/* close() of the last number of a socket whose write-behind queue still
 * holds bytes (batch mode keeps a hidden copy of the socket to send them):
 * natively the close releases the file and with it every epoll
 * registration of it, so a ready socket no longer shows up in epoll_wait.
 * Both kinds of registration: a unix stream socket (in the kernel's epoll
 * instance) and a TCP socket in an epoll set nested in poll() (moved to the
 * kernel's instance too), each readable when closed. */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/epoll.h>

#include "tcp_peer.h"

/* Write until the socket takes no more, then once more: batch mode queues
 * that last write, natively it is EAGAIN (the result is not compared). */
static void fill(int fd)
{
	static char buf[65536];
	long total = 0;
	ssize_t n;
	while ((n = write(fd, buf, sizeof(buf))) > 0)
		total += n;
	t_note("~ filled %ld bytes, then %s", total, t_errname(errno));
	n = write(fd, "queued?", 7);
	t_note("~ one more write: %ld", (long)n);
}

static void check(const char *kind, int s, int peer, bool nest)
{
	t_note("== %s%s", kind, nest ? ", epoll set nested in poll()" : "");
	int ep = epoll_create1(0);
	TE("ADD s IN", tp_ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 7));
	if (nest) {
		struct pollfd p = { .fd = ep, .events = POLLIN };
		T("poll on the epoll fd", poll(&p, 1, 0));
	}
	fill(s);
	TE("peer writes 1", write(peer, "x", 1) == 1);
	t_sleep_ms(50);
	tp_wait("wait, s readable", ep, 8, 1000);
	TE("close s", close(s));
	tp_wait("wait after the close", ep, 8, 0);
	close(ep);
	close(peer);
}

int main(void)
{
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		t_die("socketpair");
	check("unix stream", sv[0], sv[1], false);

	int port;
	int l = tp_listen(&port, 0, 16);
	int t[2];
	tp_pair(l, port, t);
	fcntl(t[1], F_SETFL, O_NONBLOCK);
	check("TCP", t[1], t[0], true);
	close(l);
	return 0;
}
