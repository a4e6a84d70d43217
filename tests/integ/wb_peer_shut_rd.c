/* Bytes a nonblocking write returned as written must stay readable after
 * the receiving end shuts its reading side down (unix stream: SHUT_RD on
 * the reader gives the writer SEND_SHUTDOWN, but what is already in the
 * reader's queue is still read, then EOF). Batch mode may take a little
 * more than the kernel's room into the write-behind queue ("How much a full
 * socket takes"); those bytes must still arrive (fuzz seeds 209, 210, 224:
 * a peer's shutdown, or a fork child reading while the writer sleeps). */
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "check.h"

static char buf[1 << 20];

/* Fill sv[0] -> sv[1], make some room, then write more than that room.
 * Returns the bytes written and not read. */
static long overfill(const int sv[2])
{
	long sent = 0;
	ssize_t n;
	while ((n = write(sv[0], buf, 65536)) > 0)
		sent += n;
	n = read(sv[1], buf, 100000);
	sent -= n > 0 ? n : 0;
	n = write(sv[0], buf, 200000);
	return sent + (n > 0 ? n : 0);
}

static void one(int how)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		t_die("socketpair");
	long sent = overfill(sv), got = 0;
	ssize_t n;
	T("shutdown reader", shutdown(sv[1], how));
	while ((n = read(sv[1], buf, sizeof(buf))) > 0)
		got += n;
	t_note("%s: every byte written arrives: %s", how == SHUT_RD ? "SHUT_RD" : "SHUT_RDWR",
	       sent == got ? "yes" : "no");
	close(sv[0]);
	close(sv[1]);
}

/* The same overfull queue, read by a fork child while we sleep in
 * waitpid (not a call the shim sees): the child must get every byte
 * (fuzz seeds 209, 210 before the send waiting for room was made in the
 * enter that found the socket full). */
static void child_reads(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		t_die("socketpair");
	long sent = overfill(sv);
	ssize_t n;
	fflush(stdout);
	pid_t p = fork();
	if (p < 0)
		t_die("fork");
	if (!p) {
		long got = 0;
		struct pollfd pf = { .fd = sv[1], .events = POLLIN };
		while (poll(&pf, 1, 2000) > 0 && (n = read(sv[1], buf, sizeof(buf))) > 0)
			got += n;
		t_note("fork child reads every byte written: %s", got == sent ? "yes" : "no");
		fflush(stdout);
		_exit(0);
	}
	int st;
	T("waitpid", waitpid(p, &st, 0) == p ? 0 : -1);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	one(SHUT_RD);
	one(SHUT_RDWR);
	child_reads();
	return 0;
}
