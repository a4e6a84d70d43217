/* A write right after the peer reset or closed must fail (or, after a FIN,
 * go out and draw the reset) exactly as natively, also when the shim
 * learns the socket's state from the SQ thread instead of a poll() (wb.c
 * sqpoll_state_check). Here the peer is in the same process, so close()
 * returning means the kernel already holds the RST or FIN; the write comes
 * right after, before an SQ thread's task work could have reported it.
 *
 * Under SQPOLL the program re-runs itself on CPU 0 with the SQ thread on
 * CPU 1 and a generous busy-poll budget, so that the SQ thread, not the
 * poll() fallback, answers (the counters must show it). Each case runs
 * many times and only the tallies are printed. */
#include <signal.h>
#include <sys/socket.h>

#include "tcp_peer.h"

#define ROUNDS 150

static int listener, port;

struct tally {
	int n[8];
	const char *name[8];
};

static void count(struct tally *t, const char *what)
{
	for (int i = 0; i < 8; i++) {
		if (!t->name[i])
			t->name[i] = what;
		if (!strcmp(t->name[i], what)) {
			t->n[i]++;
			return;
		}
	}
}

static void count_result(struct tally *t, long r, int err)
{
	count(t, r < 0 ? t_errname(err) : "ok");
}

static void show(const char *label, const struct tally *t)
{
	printf("%s:", label);
	for (int i = 0; i < 8 && t->name[i]; i++)
		printf(" %s %d", t->name[i], t->n[i]);
	printf("\n");
	fflush(stdout);
}

/* A connected pair: *ours nonblocking (write-behind serves it), *peer
 * blocking. */
static void pair(int *ours, int *peer)
{
	int p[2];
	tp_pair(listener, port, p);
	*peer = p[0];
	*ours = p[1];
	if (tp_set_nonblock(*ours, 1))
		t_die("nonblock");
}

static void reset_close(int fd)
{
	struct linger lg = { 1, 0 };
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) || close(fd))
		t_die("reset");
}

/* Counts what a write of one byte returned. */
static void tally_write(struct tally *t, int fd, const char *byte)
{
	errno = 0;
	long r = write(fd, byte, 1);
	count_result(t, r, errno);
}

int main(int argc, char **argv)
{
	(void)argc;
	/* A budget the SQ thread meets even on a busy machine. */
	setenv("RINGSHIM_BUSY_POLL_US", "20000", 1);
	t_sqpoll_pin(argv, 0, 1);
	alarm(60);
	signal(SIGPIPE, SIG_IGN);
	/* Most first writes of a burst are answered by the SQ thread. */
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		t_expect("sqpoll:state_probes>100");
	t_expect("batch,sqpoll:served_writebehind>0");
	listener = tp_listen(&port, 0, 16);
	char buf[16];

	struct tally healthy = { 0 }, arrived = { 0 };
	for (int i = 0; i < ROUNDS; i++) {
		int a, c;
		pair(&a, &c);
		errno = 0;
		long r = write(a, "ping", 4);
		count_result(&healthy, r, errno);
		count(&arrived, !tp_full_read(c, buf, 4) && !memcmp(buf, "ping", 4) ? "yes"
											 : "no");
		close(a);
		close(c);
	}
	show("write on a healthy connection", &healthy);
	show("peer got the bytes", &arrived);

	struct tally after_reset = { 0 }, again = { 0 };
	for (int i = 0; i < ROUNDS; i++) {
		int a, c;
		pair(&a, &c);
		reset_close(c);
		tally_write(&after_reset, a, "x");
		tally_write(&again, a, "y");
		close(a);
	}
	show("write right after the peer's reset", &after_reset);
	show("the write after it", &again);

	struct tally after_fin = { 0 }, second = { 0 }, third = { 0 };
	for (int i = 0; i < ROUNDS; i++) {
		int a, c;
		pair(&a, &c);
		if (close(c))
			t_die("close");
		tally_write(&after_fin, a, "x"); /* goes out; the closed peer resets */
		tally_write(&second, a, "y");
		tally_write(&third, a, "z");
		close(a);
	}
	show("write right after the peer's close", &after_fin);
	show("the write after it", &second);
	show("and the next", &third);

	struct tally after_shut = { 0 };
	for (int i = 0; i < ROUNDS; i++) {
		int a, c;
		pair(&a, &c);
		if (shutdown(c, SHUT_RD))
			t_die("shutdown");
		/* The peer's SHUT_RD sends nothing: the write goes out and
		 * the peer's kernel answers it with a reset. */
		tally_write(&after_shut, a, "x");
		close(c);
		close(a);
	}
	show("write after the peer's SHUT_RD", &after_shut);
	close(listener);
	return 0;
}
