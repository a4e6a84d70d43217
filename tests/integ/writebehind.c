/* Writes to nonblocking connected TCP sockets (batch mode queues them and
 * sends later, coalesced): many small writes arrive complete and in order;
 * close and shutdown(SHUT_WR) right after writing still deliver everything
 * before the EOF; writing after shutdown is EPIPE with SIGPIPE; writing to a
 * peer that closed or reset reports what the kernel reports, when it
 * reports it; a peer that never reads makes writes EAGAIN and EPOLLOUT go
 * away until it drains (also when the writes are the kernel's own: a
 * blocking socket with a send timeout); a fork right after writing delivers the bytes
 * exactly once; bytes written by a thread that then sleeps still go out,
 * also when the socket took them only bit by bit. */
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "tcp_peer.h"

static volatile sig_atomic_t sigpipes;
static void on_pipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static int listener, port;

static int new_conn(struct tp_peer *p)
{
	*p = tp_peer_start(port);
	int a = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
	if (a < 0)
		t_die("accept4");
	return a;
}

static void so_error(const char *label, int fd)
{
	int e = -1;
	socklen_t l = sizeof(e);
	int r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
	t_note("%s: ret=%d SO_ERROR=%s", label, r, e ? t_errname(e) : "0");
}

/* n writes of `size` bytes each, record i being "%0*d" padded: returns how
 * many returned exactly `size`. */
static int small_writes(int fd, int n, int size, uint64_t *hash)
{
	int ok = 0;
	char rec[32];
	for (int i = 0; i < n; i++) {
		snprintf(rec, sizeof(rec), "%0*d\n", size - 1, i);
		if (write(fd, rec, (size_t)size) == size)
			ok++;
		*hash = t_fnv(*hash, rec, (size_t)size);
	}
	return ok;
}

static void peer_reads(struct tp_peer *p, const char *label, int n, uint64_t want)
{
	struct tp_reply r;
	long k = tp_do(p, TP_READ, NULL, 0, n, &r, NULL, 0);
	t_note("%s: peer read %ld of %d bytes%s%s, same bytes in order: %s", label, k, n,
	       r.err ? ", then " : "", r.err ? t_errname(r.err) : "", tp_yesno(r.hash == want));
}

/* ---- a thread that writes and then waits on a condition variable ------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int worker_go, worker_done, worker_quit;
static long worker_ret;

static void *worker(void *arg)
{
	int fd = *(int *)arg;
	pthread_mutex_lock(&mu);
	while (!worker_go)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	worker_ret = write(fd, "from worker", 11);
	pthread_mutex_lock(&mu);
	worker_done = 1;
	pthread_cond_broadcast(&cv);
	while (!worker_quit)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* The nginx way: write until EAGAIN, wait for EPOLLOUT, again, until
 * EPOLLOUT stays away for 200 ms: the socket is full then. (Bounded: an
 * EPOLLOUT that keeps coming over a full socket is reported, not looped
 * on forever.) Then the peer reads it all and EPOLLOUT is back. */
static void fill_and_drain(struct tp_peer *p, int ep, int a)
{
	static char chunk[16384];
	long total = 0, w = 0;
	int e = 0, idle = 0;
	uint64_t h = T_FNV_INIT;
	for (;;) {
		long before = total;
		for (;;) {
			for (size_t i = 0; i < sizeof(chunk); i++)
				chunk[i] = (char)((total + (long)i) * 7 + ((total + (long)i) >> 11));
			w = write(a, chunk, sizeof(chunk));
			e = errno;
			if (w < 0)
				break;
			h = t_fnv(h, chunk, (size_t)w);
			total += w;
		}
		struct epoll_event ev;
		int n = epoll_wait(ep, &ev, 1, 200);
		if (n == 0 || (n == 1 && !(ev.events & EPOLLOUT)))
			break;
		/* The kernel reports EPOLLOUT only with room for a write. */
		idle = total == before ? idle + 1 : 0;
		if (idle == 20) {
			t_note("EPOLLOUT reported %d times in a row, each time the write failed", idle);
			break;
		}
	}
	t_note("~ filled %ld bytes", total);
	t_note("write stopped with %s", t_errname(e));
	tp_wait("wait, full", ep, 4, 0);
	struct tp_reply r;
	long k = tp_do(p, TP_READ, NULL, 0, (int)total, &r, NULL, 0);
	t_note("peer read all that was written: %s, same bytes in order: %s",
	       tp_yesno(k == total), tp_yesno(r.hash == h));
	tp_wait("wait, drained", ep, 4, 5000);
	TE("write after the drain", write(a, "!", 1));
	tp_read_show(p, "peer reads", 1);
}

/* ---- a thread that fills the socket and then sleeps --------------------- */

static int filler_done, filler_quit, filler_errno;
static long filler_total;
static uint64_t filler_hash;

/* Writes until EAGAIN, then sleeps on the condition variable: whatever a
 * write said it took must reach the peer meanwhile, though the socket
 * took it only bit by bit. */
static void *filler(void *arg)
{
	int fd = *(int *)arg;
	static char chunk[16384];
	long total = 0;
	uint64_t h = T_FNV_INIT;
	for (;;) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (char)((total + (long)i) * 13 + ((total + (long)i) >> 10));
		ssize_t w = write(fd, chunk, sizeof(chunk));
		if (w < 0)
			break;
		h = t_fnv(h, chunk, (size_t)w);
		total += w;
	}
	pthread_mutex_lock(&mu);
	filler_errno = errno;
	filler_total = total;
	filler_hash = h;
	filler_done = 1;
	pthread_cond_broadcast(&cv);
	while (!filler_quit)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	(void)argc;
	/* Under SQPOLL, "a thread fills the socket, then sleeps" fails only
	 * if the SQ thread finishes the filler's last send after the filler
	 * went to sleep. On one CPU shared with the SQ thread that is what
	 * happens every time. */
	t_sqpoll_pin(argv, 0, 0);
	alarm(90);
	struct sigaction sa = { .sa_handler = on_pipe };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	t_expect("served_ring>0");
	listener = tp_listen(&port, 0, 16);
	struct tp_peer p;
	int a;
	uint64_t h;

	t_note("== 1000 writes of 7 bytes");
	a = new_conn(&p);
	h = T_FNV_INIT;
	t_note("writes that returned 7: %d", small_writes(a, 1000, 7, &h));
	peer_reads(&p, "7000 bytes", 7000, h);

	t_note("== write, send, writev, sendmsg interleaved");
	h = T_FNV_INIT;
	int ok = 0;
	for (int i = 0; i < 200; i++) {
		char x[16], y[16];
		snprintf(x, sizeof(x), "<%03d", i);
		snprintf(y, sizeof(y), "%03d>", i);
		struct iovec v[2] = { { x, 4 }, { y, 4 } };
		struct msghdr m = { .msg_iov = v, .msg_iovlen = 2 };
		long r;
		switch (i % 4) {
		case 0:
			r = write(a, x, 4) + write(a, y, 4);
			break;
		case 1:
			r = send(a, x, 4, 0) + send(a, y, 4, MSG_NOSIGNAL);
			break;
		case 2:
			r = writev(a, v, 2);
			break;
		default:
			r = sendmsg(a, &m, 0);
			break;
		}
		ok += r == 8;
		h = t_fnv(t_fnv(h, x, 4), y, 4);
	}
	t_note("calls that took all 8 bytes: %d of 200", ok);
	peer_reads(&p, "1600 bytes", 1600, h);
	TE("close", close(a));
	tp_read_eof_show(&p, "after close");
	tp_peer_end(&p);

	t_note("== write then close at once");
	a = new_conn(&p);
	h = T_FNV_INIT;
	t_note("writes that returned 10: %d", small_writes(a, 500, 10, &h));
	TE("close", close(a));
	struct tp_reply r;
	long k = tp_do(&p, TP_READ_EOF, NULL, 0, 0, &r, NULL, 0);
	t_note("peer read %ld bytes, same bytes in order: %s, then %s", k, tp_yesno(r.hash == h),
	       r.err ? t_errname(r.err) : "EOF");
	tp_peer_end(&p);

	t_note("== write then shutdown(SHUT_WR)");
	a = new_conn(&p);
	h = T_FNV_INIT;
	t_note("writes that returned 10: %d", small_writes(a, 300, 10, &h));
	TE("shutdown SHUT_WR", shutdown(a, SHUT_WR));
	TE("write after shutdown", write(a, "late", 4));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("send MSG_NOSIGNAL after shutdown", send(a, "late", 4, MSG_NOSIGNAL));
	TE("writev after shutdown", writev(a, &(struct iovec){ "late", 4 }, 1));
	t_note("SIGPIPE count %d", (int)sigpipes);
	k = tp_do(&p, TP_READ_EOF, NULL, 0, 0, &r, NULL, 0);
	t_note("peer read %ld bytes, same bytes in order: %s, then %s", k, tp_yesno(r.hash == h),
	       r.err ? t_errname(r.err) : "EOF");
	T("peer replies", tp_sends(&p, "reply"));
	char buf[64];
	k = TE("read the reply", read(a, buf, sizeof(buf)));
	if (k > 0)
		t_bytes("  got", buf, k);
	T("peer closes", tp_op(&p, TP_CLOSE));
	TE("read EOF", read(a, buf, sizeof(buf)));
	TE("shutdown SHUT_WR again", shutdown(a, SHUT_WR));
	TE("close", close(a));
	tp_peer_end(&p);

	t_note("== the peer closed first (FIN), then we write");
	a = new_conn(&p);
	T("peer closes", tp_op(&p, TP_CLOSE));
	TE("read EOF", read(a, buf, sizeof(buf)));
	TE("write 1 (the peer answers it with a reset)", write(a, "x", 1));
	T("(a blocking call)", tp_op(&p, TP_NOP));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("write after the reset", write(a, "y", 1));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("write again", write(a, "z", 1));
	t_note("SIGPIPE count %d", (int)sigpipes);
	so_error("getsockopt", a);
	TE("read", read(a, buf, sizeof(buf)));
	TE("close", close(a));
	tp_peer_end(&p);

	t_note("== the peer resets, then we write");
	a = new_conn(&p);
	T("peer resets", tp_op(&p, TP_RESET));
	TE("write after the reset", write(a, "y", 1));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("send again", send(a, "z", 1, 0));
	t_note("SIGPIPE count %d", (int)sigpipes);
	so_error("getsockopt", a);
	TE("read", read(a, buf, sizeof(buf)));
	TE("close", close(a));
	tp_peer_end(&p);

	t_note("== the peer resets while in epoll, we write first, then read");
	int ep = epoll_create1(0);
	a = new_conn(&p);
	TE("ADD IN", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 1));
	T("peer resets", tp_op(&p, TP_RESET));
	tp_wait("wait", ep, 4, 5000);
	TE("write", write(a, "y", 1));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("read", read(a, buf, sizeof(buf)));
	TE("read", read(a, buf, sizeof(buf)));
	TE("close", close(a));
	tp_peer_end(&p);

	t_note("== the peer resets while in epoll, we read first, then write");
	a = new_conn(&p);
	TE("ADD IN", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 2));
	T("peer resets", tp_op(&p, TP_RESET));
	tp_wait("wait", ep, 4, 5000);
	TE("read", read(a, buf, sizeof(buf)));
	TE("write", write(a, "y", 1));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("write", write(a, "y", 1));
	t_note("SIGPIPE count %d", (int)sigpipes);
	TE("close", close(a));
	tp_peer_end(&p);

	t_note("== a peer that does not read");
	a = new_conn(&p);
	TE("ADD OUT", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLOUT, 3));
	tp_wait("wait, empty socket", ep, 4, 0);
	fill_and_drain(&p, ep, a);
	TE("close", close(a));
	tp_peer_end(&p);

	/* A blocking socket in epoll: its writes are the kernel's own, one by
	 * one (write-behind is for nonblocking ones), and with a send timeout
	 * they end in EAGAIN when the buffer stays full. EPOLLOUT must go
	 * away then, as the kernel's buffer, not the shim's queue, is full. */
	t_note("== a blocking socket with a send timeout, a peer that does not read");
	a = new_conn(&p);
	TE("blocking", tp_set_nonblock(a, 0));
	struct timeval tv = { 0, 100000 };
	TE("SO_SNDTIMEO 100 ms", setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	TE("ADD IN|OUT", tp_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN | EPOLLOUT, 5));
	tp_wait("wait, empty socket", ep, 4, 0);
	fill_and_drain(&p, ep, a);
	TE("close", close(a));
	tp_peer_end(&p);

	t_note("== fork right after writing");
	a = new_conn(&p);
	h = T_FNV_INIT;
	t_note("writes that returned 10: %d", small_writes(a, 100, 10, &h));
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	int st;
	waitpid(pid, &st, 0);
	t_note("child (_exit at once): %s", t_status(st));
	uint64_t h2 = T_FNV_INIT;
	t_note("writes that returned 10: %d", small_writes(a, 100, 10, &h2));
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		exit(0);
	waitpid(pid, &st, 0);
	t_note("child (exit at once): %s", t_status(st));
	peer_reads(&p, "first 1000", 1000, h);
	peer_reads(&p, "next 1000", 1000, h2);
	TE("close", close(a));
	k = tp_do(&p, TP_READ_EOF, NULL, 0, 0, &r, NULL, 0);
	t_note("peer then read %ld more bytes, then %s", k, r.err ? t_errname(r.err) : "EOF");
	tp_peer_end(&p);

	t_note("== a thread writes, then sleeps on a condition variable");
	a = new_conn(&p);
	pthread_t t;
	pthread_create(&t, NULL, worker, &a);
	pthread_mutex_lock(&mu);
	worker_go = 1;
	pthread_cond_broadcast(&cv);
	while (!worker_done)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	t_note("worker write ret=%ld", worker_ret);
	tp_read_show(&p, "peer reads 11", 11);
	pthread_mutex_lock(&mu);
	worker_quit = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
	TE("close", close(a));
	tp_peer_end(&p);

	t_note("== a thread fills the socket, then sleeps on a condition variable");
	a = new_conn(&p);
	pthread_create(&t, NULL, filler, &a);
	pthread_mutex_lock(&mu);
	while (!filler_done)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	t_note("~ the thread wrote %ld bytes", filler_total);
	t_note("its writes stopped with %s", t_errname(filler_errno));
	k = tp_do(&p, TP_READ, NULL, 0, (int)filler_total, &r, NULL, 0);
	t_note("peer read all that was written: %s, same bytes in order: %s%s%s",
	       tp_yesno(k == filler_total), tp_yesno(r.hash == filler_hash), r.err ? ", then " : "",
	       r.err ? t_errname(r.err) : "");
	pthread_mutex_lock(&mu);
	filler_quit = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
	TE("close", close(a));
	tp_peer_end(&p);

	close(ep);
	close(listener);
	return 0;
}
