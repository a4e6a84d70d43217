/* sendfile(): with and without an offset pointer (which of the offset and
 * the file position moves), counts past EOF, zero, offsets beyond EOF,
 * 4 MiB to a reader that checks every byte, a nonblocking socket that fills
 * up (partial count, then EAGAIN, offset/position advanced by exactly what
 * was sent), and the kernel's answers for bad or unusual fds. */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"

#define BIG (4 << 20)

static volatile sig_atomic_t pipes;
static void on_pipe(int sig)
{
	(void)sig;
	pipes++;
}

static char *pattern(size_t n)
{
	char *p = malloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (i * 7 + i / 251) % 26);
	return p;
}

static int make_file(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0)
		t_die("make_file");
	return fd;
}

static void recv_show(const char *what, int fd)
{
	static char buf[8192];
	long n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	t_bytes(what, buf, n > 0 ? n : 0);
}

static void tcp_pair(int *c, int *s)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		t_die("listener");
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*c, (struct sockaddr *)&a, sizeof(a)))
		t_die("connect");
	*s = accept(l, NULL, NULL);
	close(l);
}

static void wait_readable(int fd)
{
	/* TCP loopback delivers within the send call, but be sure. */
	char c;
	for (int i = 0; i < 500 && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0; i++)
		t_sleep_ms(2);
}

static void small_cases(const char *what, int out, int in_sock, int small)
{
	off_t off;
	t_note("== %s: offsets, counts, EOF", what);
	off = 10;
	TE("sendfile &off=10 count=100", sendfile(out, small, &off, 100));
	t_note("  off=%ld position=%ld", (long)off, (long)lseek(small, 0, SEEK_CUR));
	wait_readable(in_sock);
	recv_show("  received", in_sock);
	TE("sendfile NULL count=50", sendfile(out, small, NULL, 50));
	TE("sendfile NULL count=50", sendfile(out, small, NULL, 50));
	t_note("  position=%ld", (long)lseek(small, 0, SEEK_CUR));
	wait_readable(in_sock);
	recv_show("  received", in_sock);
	off = 900;
	TE("sendfile &off=900 count=500 (file has 1000)", sendfile(out, small, &off, 500));
	t_note("  off=%ld", (long)off);
	wait_readable(in_sock);
	recv_show("  received", in_sock);
	off = 5;
	TE("sendfile count=0", sendfile(out, small, &off, 0));
	t_note("  off=%ld", (long)off);
	off = 5000;
	TE("sendfile &off=5000 (beyond EOF)", sendfile(out, small, &off, 10));
	t_note("  off=%ld", (long)off);
	off = 1000;
	TE("sendfile &off=1000 (at EOF)", sendfile(out, small, &off, 10));
	lseek(small, 0, SEEK_END);
	TE("sendfile NULL at EOF", sendfile(out, small, NULL, 10));
	t_note("  position=%ld", (long)lseek(small, 0, SEEK_CUR));
	lseek(small, 990, SEEK_SET);
	TE("sendfile NULL count=SSIZE_MAX from 990", sendfile(out, small, NULL, SSIZE_MAX));
	t_note("  position=%ld", (long)lseek(small, 0, SEEK_CUR));
	wait_readable(in_sock);
	recv_show("  received", in_sock);
	volatile size_t huge = SIZE_MAX;
	off = 0;
	TE("sendfile count=SIZE_MAX", sendfile(out, small, &off, huge));
	t_note("  off=%ld", (long)off);
	recv_show("  received", in_sock);
	off = -1;
	TE("sendfile &off=-1", sendfile(out, small, &off, 10));
	off_t *volatile badp = (off_t *)8;
	TE("sendfile bad offset pointer", sendfile(out, small, badp, 10));
	recv_show("  received (nothing)", in_sock);
	lseek(small, 0, SEEK_SET);
}

static void big_transfer(const char *what, int out, int in_sock, int bigf, const char *data)
{
	uint64_t want = t_fnv(T_FNV_INIT, data, BIG);
	pid_t pid = fork();
	if (pid == 0) {
		close(out);
		static char buf[1 << 16];
		uint64_t h = T_FNV_INIT;
		long total = 0;
		ssize_t n;
		while ((n = read(in_sock, buf, sizeof(buf))) > 0) {
			h = t_fnv(h, buf, (size_t)n);
			total += n;
		}
		_exit(total == BIG && h == want ? 0 : 1);
	}
	close(in_sock);
	off_t off = 0;
	TE(what, sendfile(out, bigf, &off, BIG));
	t_note("  off=%ld position=%ld", (long)off, (long)lseek(bigf, 0, SEEK_CUR));
	shutdown(out, SHUT_WR);
	int st;
	waitpid(pid, &st, 0);
	t_note("  reader: %s (0: all 4 MiB arrived intact)", t_status(st));
	close(out);
}

static void nonblocking_fill(int use_offset, int bigf, const char *data)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		t_die("socketpair");
	t_note("== nonblocking socket fills up (%s)", use_offset ? "offset pointer" : "file position");
	lseek(bigf, 1000, SEEK_SET);
	off_t off = 1000;
	/* How many bytes a full socket takes depends on the kernel's memory
	 * accounting (page references when splicing, copies otherwise), which
	 * no program can rely on; what it took must be exactly what moved. */
	errno = EDOM;
	long n = sendfile(sv[0], bigf, use_offset ? &off : NULL, BIG - 1000);
	t_note("sendfile 4 MiB: %s errno-kept=%s", n > 0 ? "ret>0" : t_errname(errno),
	       errno == EDOM ? "yes" : "no");
	off_t pos = lseek(bigf, 0, SEEK_CUR);
	t_note("  partial: %s; %s advanced by exactly that: %s; %s unchanged: %s", n > 0 && n < BIG - 1000 ? "yes" : "no",
	       use_offset ? "offset" : "position", (use_offset ? off : pos) == 1000 + n ? "yes" : "no",
	       use_offset ? "position" : "(offset)", use_offset ? (pos == 1000 ? "yes" : "no") : "-");
	off_t off2 = off;
	TE("sendfile again", sendfile(sv[0], bigf, use_offset ? &off : NULL, BIG - 1000));
	t_note("  moved: %s", (use_offset ? off != off2 : lseek(bigf, 0, SEEK_CUR) != pos) ? "yes" : "no");
	static char buf[BIG];
	long got = 0, r;
	while ((r = recv(sv[1], buf + got, sizeof(buf) - (size_t)got, MSG_DONTWAIT)) > 0)
		got += r;
	t_note("  receiver got exactly those bytes: %s", got == n && !memcmp(buf, data + 1000, (size_t)got) ? "yes" : "no");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	int sv[2];
	t_expect("served_ring>0");
	signal(SIGPIPE, on_pipe);

	char *small_data = pattern(1000);
	char *big_data = pattern(BIG);
	int small = make_file("sendfile-small.tmp", small_data, 1000);
	int bigf = make_file("sendfile-big.tmp", big_data, BIG);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	small_cases("unix stream", sv[0], sv[1], small);
	int c, s;
	tcp_pair(&c, &s);
	small_cases("TCP loopback", c, s, small);

	t_note("== 4 MiB with a reader checking every byte");
	big_transfer("sendfile 4 MiB to unix stream", sv[0], sv[1], bigf, big_data);
	big_transfer("sendfile 4 MiB to TCP", c, s, bigf, big_data);

	nonblocking_fill(1, bigf, big_data);
	nonblocking_fill(0, bigf, big_data);

	t_note("== bad and unusual fds");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	int closed = dup(0);
	close(closed);
	volatile int neg = -1;
	TE("in_fd -1", sendfile(sv[0], neg, NULL, 10));
	TE("in_fd closed", sendfile(sv[0], closed, NULL, 10));
	TE("out_fd closed", sendfile(closed, small, NULL, 10));
	int wo = open("sendfile-small.tmp", O_WRONLY);
	TE("in_fd O_WRONLY", sendfile(sv[0], wo, NULL, 10));
	close(wo);
	int p[2];
	if (pipe(p))
		t_die("pipe");
	TE("write 5 into a pipe", write(p[1], "piped", 5));
	TE("in_fd a pipe", sendfile(sv[0], p[0], NULL, 5));
	off_t off = 0;
	TE("in_fd a pipe, with offset", sendfile(sv[0], p[0], &off, 5));
	int sv2[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv2);
	TE("write 4 into a socket", write(sv2[1], "sock", 4));
	TE("in_fd a socket", sendfile(sv[0], sv2[0], NULL, 4));
	int dir = open(".", O_RDONLY | O_DIRECTORY);
	TE("in_fd a directory", sendfile(sv[0], dir, NULL, 4));
	close(dir);
	recv_show("  socket received", sv[1]);
	TE("out_fd a pipe", sendfile(p[1], small, NULL, 10));
	char buf[64];
	long n = read(p[0], buf, sizeof(buf));
	t_bytes("  pipe got", buf, n > 0 ? n : 0);
	int f = open("sendfile-out.tmp", O_RDWR | O_CREAT | O_TRUNC, 0600);
	off = 100;
	TE("out_fd a regular file", sendfile(f, small, &off, 20));
	t_note("  out file size %ld", (long)lseek(f, 0, SEEK_END));
	close(f);
	f = open("sendfile-out.tmp", O_RDONLY);
	TE("out_fd O_RDONLY", sendfile(f, small, &off, 20));
	close(f);
	f = open("sendfile-out.tmp", O_WRONLY | O_APPEND);
	TE("out_fd O_APPEND", sendfile(f, small, &off, 20));
	close(f);
	unlink("sendfile-out.tmp");
	int u[2];
	socketpair(AF_UNIX, SOCK_DGRAM, 0, u);
	off = 0;
	TE("out_fd a unix datagram socket, 1000", sendfile(u[0], small, &off, 1000));
	n = recv(u[1], buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	t_note("  first datagram: %ld bytes", n);
	close(u[0]);
	close(u[1]);
	off = 0;
	TE("out_fd an unconnected TCP socket", sendfile(socket(AF_INET, SOCK_STREAM, 0), small, &off, 10));
	t_note("  SIGPIPE: %d", (int)pipes);
	pipes = 0;
	close(sv[1]);
	off = 0;
	TE("out_fd with the peer gone", sendfile(sv[0], small, &off, 10));
	t_note("  SIGPIPE: %d, off=%ld", (int)pipes, (long)off);
	unlink("sendfile-small.tmp");
	unlink("sendfile-big.tmp");
	return 0;
}
