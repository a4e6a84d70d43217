/* Nonblocking reads right after the shim armed its receive again: a
 * receive that stopped for a full stash (RINGSHIM_STASH_FD_MAX, set small
 * here by re-executing this program) is armed again by the read that makes
 * room, and a receive that ended (out of buffers, cancelled) by whichever
 * thread reaps its end. Until that SQE reaches the kernel nothing receives
 * for the socket: a nonblocking read that finds the stash empty must still
 * see the bytes the socket holds, as natively, not EAGAIN.
 *
 * The peer's bytes are all acknowledged before the reads start, so natively
 * reads until EAGAIN return every byte. */
#include <stdlib.h>
#include <sys/epoll.h>

#include "tcp_peer.h"

#define TOTAL (64 * 1024)

int main(int argc, char **argv)
{
	(void)argc;
	if (!getenv("RS_TEST_REEXEC")) {
		setenv("RS_TEST_REEXEC", "1", 1);
		setenv("RINGSHIM_STASH_FD_MAX", "4096", 1);
		execv("/proc/self/exe", argv);
		t_die("re-exec");
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int port;
	int l = tp_listen(&port, 0, 4);
	int p[2];
	tp_pair(l, port, p);
	tp_set_nonblock(p[1], 1);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = p[1] };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev))
		t_die("epoll");
	static char buf[TOTAL];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 13 + i / 256);
	for (int round = 0; round < 3; round++) {
		size_t off = 0;
		while (off < sizeof(buf)) {
			ssize_t n = write(p[0], buf + off, sizeof(buf) - off);
			if (n <= 0)
				t_die("write");
			off += (size_t)n;
		}
		tp_wait_acked(p[0]);
		struct epoll_event out;
		printf("round %d: epoll_wait: %d\n", round, epoll_wait(ep, &out, 1, 1000));
		static char got[TOTAL];
		size_t have = 0;
		int eagain = 0;
		for (;;) {
			ssize_t n = read(p[1], got + have, have + 1000 <= sizeof(got) ? 1000 : sizeof(got) - have);
			if (n > 0) {
				have += (size_t)n;
				if (have == sizeof(got))
					break;
				continue;
			}
			eagain = n < 0 && errno == EAGAIN;
			break;
		}
		printf("round %d: read %zu of %d bytes before %s, same bytes: %s\n", round, have, TOTAL,
		       have == sizeof(got) ? "the end" : eagain ? "EAGAIN" : "an error",
		       tp_yesno(!memcmp(got, buf, have)));
	}
	close(ep);
	close(p[0]);
	close(p[1]);
	close(l);
	return 0;
}
