/* Helpers for the batch-mode integration tests (epoll_*, batch_echo,
 * writebehind, fd_reuse, stash_flags, accept_queue, pollsel_batch):
 * loopback TCP listeners, a forked peer process driven step by step over
 * pipes, and epoll result printing.
 *
 * The peer is a separate process so the program under test is one process
 * with its own event loop. Each command is answered only once its effect is
 * visible on the test's side of the connection: a send is answered when
 * every byte has been acknowledged (SIOCOUTQ == 0), so the bytes sit in the
 * test's socket (natively) or have at least reached it (under the shim); a
 * shutdown is answered once the FIN is acknowledged. That keeps transcripts
 * independent of timing. */
#ifndef RS_TEST_TCP_PEER_H
#define RS_TEST_TCP_PEER_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "check.h"

static inline const char *tp_yesno(int b)
{
	return b ? "yes" : "no";
}

/* A listening TCP socket on 127.0.0.1, ephemeral port. */
static inline int tp_listen(int *port, int type_flags, int backlog)
{
	int l = socket(AF_INET, SOCK_STREAM | type_flags, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, backlog) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		t_die("tcp listener");
	*port = ntohs(a.sin_port);
	return l;
}

/* The same, made with raw system calls: the shim does not see it being
 * created and learns what it is on first use, as with a listener inherited
 * from a supervisor (systemd socket activation, a prefork master). */
static inline int tp_listen_raw(int *port, int type_flags, int backlog)
{
	int l = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM | type_flags, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || syscall(SYS_bind, l, &a, sizeof(a)) || syscall(SYS_listen, l, backlog) ||
	    syscall(SYS_getsockname, l, &a, &al))
		t_die("raw tcp listener");
	*port = ntohs(a.sin_port);
	return l;
}

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
static inline int tp_connect(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* A connected pair through `listener` (blocking, on 127.0.0.1:port):
 * out[0] the connecting side, out[1] the accepted one. */
static inline void tp_pair(int listener, int port, int out[2])
{
	out[0] = tp_connect(port);
	out[1] = accept(listener, NULL, NULL);
	if (out[0] < 0 || out[1] < 0)
		t_die("tcp pair");
}

static inline int tp_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Wait until everything sent on s (and a FIN) has been acknowledged. */
static inline void tp_wait_acked(int s)
{
	for (int i = 0; i < 20000; i++) {
		int q = 0;
		if (ioctl(s, SIOCOUTQ, &q) != 0 || q == 0)
			return;
		t_sleep_ms(1);
	}
}

/* ---- the peer process ---------------------------------------------------- */

enum {
	TP_SEND = 'S',	   /* send the payload (blocking, all of it), wait for the ACK */
	TP_SEND_NOACK = 's', /* send the payload, answer at once */
	TP_READ = 'R',	   /* read exactly arg bytes (fewer at EOF/error) */
	TP_READ_EOF = 'E', /* read until EOF or error */
	TP_SHUT_WR = 'W',  /* shutdown(SHUT_WR), wait for the FIN's ACK */
	TP_CLOSE = 'C',	   /* shutdown(SHUT_WR), wait for the ACK, close */
	TP_RESET = 'Z',	   /* SO_LINGER {1,0} and close: the peer gets an RST */
	TP_KILL = 'K',	   /* once the test is asleep, send it signal arg */
	TP_SEND_LATE = 'L', /* once the test is asleep, send the payload */
	TP_SOCKNAME = 'N', /* answer with getsockname() of the peer's socket */
	TP_NOP = 'P',	   /* just answer (the test's wait for it is a blocking call) */
	TP_ECHO = 'X',	   /* wait up to 3 s for bytes, send back what one read got */
	TP_QUIT = 'Q',
};

#define TP_MAXDATA (1 << 20)

struct tp_cmd {
	char op;
	int len;
	int arg;
};

struct tp_reply {
	long ret;      /* bytes, or -1 */
	int err;       /* errno of a failed call; for TP_READ_EOF: how reading ended */
	int len;       /* payload bytes that follow */
	uint64_t hash; /* FNV-1a of every byte read */
};

struct tp_peer {
	pid_t pid;
	int cmd, rep; /* test's ends of the two pipes */
};

static inline void tp_full_write(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			_exit(98);
		}
		c += w;
		n -= (size_t)w;
	}
}

static inline int tp_full_read(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static inline void tp_peer_main(int s, int cmd, int rep)
{
	static char buf[TP_MAXDATA];
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct tp_cmd c;
		if (tp_full_read(cmd, &c, sizeof(c)))
			_exit(0); /* the test is gone */
		if (c.len > TP_MAXDATA || (c.len && tp_full_read(cmd, buf, (size_t)c.len)))
			_exit(97);
		struct tp_reply r = { 0, 0, 0, T_FNV_INIT };
		long n = 0;
		switch (c.op) {
		case TP_SEND_LATE:
			t_wait_blocked(getppid());
			/* fall through */
		case TP_SEND:
		case TP_SEND_NOACK:
			while (n < c.len) {
				ssize_t w = send(s, buf + n, (size_t)(c.len - n), 0);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0) {
					r.err = errno;
					break;
				}
				n += w;
			}
			r.ret = r.err && !n ? -1 : n;
			if (c.op != TP_SEND_NOACK && !r.err)
				tp_wait_acked(s);
			break;
		case TP_READ:
		case TP_READ_EOF: {
			long want = c.op == TP_READ ? c.arg : -1;
			for (;;) {
				char *dst = buf + (n < TP_MAXDATA ? n : 0);
				size_t room = n < TP_MAXDATA ? (size_t)(TP_MAXDATA - n) : TP_MAXDATA;
				if (want >= 0 && (size_t)(want - n) < room)
					room = (size_t)(want - n);
				if (!room)
					break;
				/* Give up after 5 s without a byte: a test that waits
				 * for bytes that never come fails visibly instead of
				 * hanging. */
				struct pollfd pf = { s, POLLIN, 0 };
				if (poll(&pf, 1, 5000) == 0) {
					r.err = ETIMEDOUT;
					break;
				}
				ssize_t g = read(s, dst, room);
				if (g < 0 && errno == EINTR)
					continue;
				if (g <= 0) {
					r.err = g < 0 ? errno : 0;
					if (g < 0 && !n)
						n = -1;
					break;
				}
				r.hash = t_fnv(r.hash, dst, (size_t)g);
				n += g;
			}
			r.ret = n;
			r.len = n > 0 ? (int)(n < TP_MAXDATA ? n : TP_MAXDATA) : 0;
			break;
		}
		case TP_SHUT_WR:
		case TP_CLOSE:
			r.ret = shutdown(s, SHUT_WR);
			r.err = r.ret ? errno : 0;
			tp_wait_acked(s);
			if (c.op == TP_CLOSE)
				close(s);
			break;
		case TP_RESET: {
			struct linger lg = { 1, 0 };
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			r.ret = close(s);
			break;
		}
		case TP_KILL:
			t_wait_blocked(getppid());
			r.ret = kill(getppid(), c.arg);
			break;
		case TP_SOCKNAME: {
			struct sockaddr_in a;
			socklen_t al = sizeof(a);
			r.ret = getsockname(s, (struct sockaddr *)&a, &al);
			memcpy(buf, &a, sizeof(a));
			r.len = sizeof(a);
			break;
		}
		case TP_NOP:
			break;
		case TP_ECHO: {
			struct pollfd pf = { s, POLLIN, 0 };
			if (poll(&pf, 1, 3000) == 0) {
				r.ret = -1;
				r.err = ETIMEDOUT;
				break;
			}
			ssize_t g = read(s, buf, (size_t)c.arg);
			r.ret = g;
			r.err = g < 0 ? errno : 0;
			if (g > 0)
				send(s, buf, (size_t)g, 0);
			break;
		}
		case TP_QUIT:
			_exit(0);
		default:
			_exit(96);
		}
		tp_full_write(rep, &r, sizeof(r));
		if (r.len)
			tp_full_write(rep, buf, (size_t)r.len);
	}
}

/* Fork a peer that connects to 127.0.0.1:port and then obeys commands. */
static inline struct tp_peer tp_peer_start(int port)
{
	int c[2], r[2];
	if (pipe2(c, O_CLOEXEC) || pipe2(r, O_CLOEXEC))
		t_die("peer pipes");
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		/* Hold none of the test's descriptors: a connection the test
		 * closes must really close. */
		int lo = c[0] < r[1] ? c[0] : r[1], hi = c[0] < r[1] ? r[1] : c[0];
		if (lo > 3)
			close_range(3, (unsigned)lo - 1, 0);
		if (hi > lo + 1)
			close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
		close_range((unsigned)hi + 1, ~0U, 0);
		int s = tp_connect(port);
		if (s < 0)
			_exit(95);
		tp_peer_main(s, c[0], r[1]);
	}
	close(c[0]);
	close(r[1]);
	return (struct tp_peer){ pid, c[1], r[0] };
}

/* Hand the peer a command without waiting for its answer (for commands
 * that act while the test is blocked: TP_KILL, TP_SEND_LATE). */
static inline void tp_start(struct tp_peer *p, char op, const void *data, int len, int arg)
{
	struct tp_cmd c = { op, len, arg };
	tp_full_write(p->cmd, &c, sizeof(c));
	if (len)
		tp_full_write(p->cmd, data, (size_t)len);
}

/* Collect the answer of the command started last; the payload (at most
 * outmax bytes kept) goes to out. Returns the answer's ret. */
static inline long tp_finish(struct tp_peer *p, struct tp_reply *rep, void *out, int outmax)
{
	struct tp_reply r;
	if (tp_full_read(p->rep, &r, sizeof(r)))
		t_die("peer died");
	static char sink[TP_MAXDATA];
	if (r.len && tp_full_read(p->rep, out && r.len <= outmax ? out : sink, (size_t)r.len))
		t_die("peer reply");
	if (rep)
		*rep = r;
	return r.ret;
}

static inline long tp_do(struct tp_peer *p, char op, const void *data, int len, int arg,
			 struct tp_reply *rep, void *out, int outmax)
{
	tp_start(p, op, data, len, arg);
	return tp_finish(p, rep, out, outmax);
}

static inline long tp_send(struct tp_peer *p, const void *data, int len)
{
	return tp_do(p, TP_SEND, data, len, 0, NULL, NULL, 0);
}

static inline long tp_sends(struct tp_peer *p, const char *s)
{
	return tp_send(p, s, (int)strlen(s));
}

static inline long tp_op(struct tp_peer *p, char op)
{
	return tp_do(p, op, NULL, 0, 0, NULL, NULL, 0);
}

/* Ask the peer to read n bytes; print what it got. */
static inline long tp_read_show(struct tp_peer *p, const char *label, int n)
{
	static char got[TP_MAXDATA];
	struct tp_reply r;
	long k = tp_do(p, TP_READ, NULL, 0, n, &r, got, sizeof(got));
	if (k < 0)
		printf("%s: peer read ret=-1 errno=%s\n", label, t_errname(r.err));
	else
		t_bytes(label, got, k);
	if (k >= 0 && r.err)
		printf("%s: then %s\n", label, t_errname(r.err));
	return k;
}

/* Ask the peer to read to the end; print the byte count, hash and how the
 * stream ended. */
static inline long tp_read_eof_show(struct tp_peer *p, const char *label)
{
	struct tp_reply r;
	long k = tp_do(p, TP_READ_EOF, NULL, 0, 0, &r, NULL, 0);
	printf("%s: peer read %ld bytes fnv=%016llx, then %s\n", label, k < 0 ? 0 : k,
	       (unsigned long long)r.hash, r.err ? t_errname(r.err) : "EOF");
	fflush(stdout);
	return k;
}

static inline int tp_peer_end(struct tp_peer *p)
{
	struct tp_cmd c = { TP_QUIT, 0, 0 };
	tp_full_write(p->cmd, &c, sizeof(c));
	close(p->cmd);
	close(p->rep);
	int st = 0;
	if (waitpid(p->pid, &st, 0) != p->pid)
		t_die("waitpid peer");
	return st;
}

/* ---- epoll printing ------------------------------------------------------ */

static inline const char *tp_evstr(uint32_t e)
{
	static char s[160];
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ EPOLLIN, "IN" },	   { EPOLLPRI, "PRI" },	      { EPOLLOUT, "OUT" },
		{ EPOLLRDNORM, "RDNORM" }, { EPOLLRDBAND, "RDBAND" }, { EPOLLWRNORM, "WRNORM" },
		{ EPOLLWRBAND, "WRBAND" }, { EPOLLMSG, "MSG" },	      { EPOLLERR, "ERR" },
		{ EPOLLHUP, "HUP" },	   { EPOLLRDHUP, "RDHUP" },
	};
	s[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (e & names[i].bit) {
			if (s[0])
				strcat(s, "|");
			strcat(s, names[i].name);
			e &= ~names[i].bit;
		}
	}
	if (e)
		sprintf(s + strlen(s), "%s0x%x", s[0] ? "|" : "", e);
	if (!s[0])
		strcpy(s, "0");
	return s;
}

static inline int tp_cmp_ev(const void *a, const void *b)
{
	uint64_t x = ((const struct epoll_event *)a)->data.u64;
	uint64_t y = ((const struct epoll_event *)b)->data.u64;
	return x < y ? -1 : x > y;
}

/* Print a wait's result: the count, then one line per event, sorted by
 * data.u64 (the order of simultaneous events is not part of the API). */
static inline void tp_show_events(const char *label, int n, int err, struct epoll_event *ev)
{
	if (n < 0) {
		printf("%s: ret=-1 errno=%s\n", label, t_errname(err));
	} else {
		printf("%s: ret=%d\n", label, n);
		qsort(ev, (size_t)n, sizeof(*ev), tp_cmp_ev);
		for (int i = 0; i < n; i++)
			printf("  data=%llu events=%s\n", (unsigned long long)ev[i].data.u64,
			       tp_evstr(ev[i].events));
	}
	fflush(stdout);
}

static inline int tp_wait(const char *label, int ep, int max, int timeout)
{
	struct epoll_event ev[64];
	errno = 0;
	int n = epoll_wait(ep, ev, max, timeout);
	int e = errno;
	tp_show_events(label, n, e, ev);
	errno = e;
	return n;
}

static inline int tp_ctl(int ep, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	return epoll_ctl(ep, op, fd, &ev);
}

/* Nonblocking receives on fd, each printed, until one returns 0 or fails
 * (at most 3). */
static inline void tp_recv_show_all(const char *label, int fd)
{
	char buf[64];
	for (int i = 0; i < 3; i++) {
		long n = TE(label, recv(fd, buf, sizeof(buf), MSG_DONTWAIT));
		if (n > 0)
			t_bytes("  got", buf, n);
		if (n <= 0)
			break;
	}
}

#endif
