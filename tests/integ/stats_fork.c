/* Counters across fork: a forked child counts from zero into a segment of
 * its own and writes its own stats line at exit(), so the sums over every
 * process's line are exact. Were the child's counters a copy of the
 * parent's, the parent's writevs before the fork would be counted twice.
 *
 * tests/scripts/test_library_observability.py runs this program too and
 * checks the two stats lines one by one (pids, ppid, per-process counts). */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "check.h"

int main(void)
{
	int sv[2];
	char buf[64];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		t_die("socketpair");

	/* Parent, before the fork: 2 writev, 2 readv. */
	for (int i = 0; i < 2; i++) {
		struct iovec wv[2] = { { "be", 2 }, { "fore", 4 } };
		T("parent writev", writev(sv[0], wv, 2));
		struct iovec rv = { buf, 6 };
		long n = T("parent readv", readv(sv[1], &rv, 1));
		t_bytes("got", buf, n);
	}

	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		/* Child: 3 send, 1 shutdown, and exit() (not _exit: the stats
		 * line is written by the library's destructor). */
		close(sv[1]);
		int bad = 0;
		bad |= send(sv[0], "one", 3, 0) != 3;
		bad |= send(sv[0], "two", 3, 0) != 3;
		bad |= send(sv[0], "three", 5, 0) != 5;
		bad |= shutdown(sv[0], SHUT_WR) != 0;
		exit(bad ? 1 : 0);
	}
	close(sv[0]);
	int status;
	if (waitpid(pid, &status, 0) != pid)
		t_die("waitpid");
	t_note("child: %s", t_status(status));

	/* Parent, after the fork: recv until EOF (the child sent 11 bytes). */
	size_t total = 0;
	char all[64];
	int recvs = 0;
	for (;;) {
		ssize_t n = recv(sv[1], all + total, sizeof(all) - total, MSG_WAITALL);
		recvs++;
		if (n <= 0)
			break;
		total += (size_t)n;
	}
	t_bytes("parent received", all, (long)total);
	t_note("parent recv calls %d", recvs);
	close(sv[1]);

	char line[64];
	t_expect("call_writev==2");
	t_expect("call_readv==2");
	t_expect("call_send==3");
	t_expect("call_shutdown==1");
	snprintf(line, sizeof(line), "call_recv==%d", recvs);
	t_expect(line);
	return 0;
}
