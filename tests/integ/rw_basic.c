/* read/write and friends on socketpairs, pipes and regular files: counts,
 * short reads, EOF, zero-length calls, vector and positional forms. */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "check.h"

static void stream_pair(const char *what, int a, int b)
{
	char buf[256];
	t_note("== %s", what);
	TE("write 5", write(a, "hello", 5));
	TE("write 0", write(a, "", 0));
	TE("read 0", read(b, buf, 0));
	long n = TE("read up to 256 (short read)", read(b, buf, sizeof(buf)));
	t_bytes("got", buf, n);
	struct iovec wv[3] = { { "ab", 2 }, { "", 0 }, { "cdef", 4 } };
	TE("writev 6", writev(a, wv, 3));
	char x[3], y[10];
	struct iovec rv[2] = { { x, sizeof(x) }, { y, sizeof(y) } };
	n = TE("readv", readv(b, rv, 2));
	t_bytes("readv x", x, n < 3 ? n : 3);
	t_bytes("readv y", y, n > 3 ? n - 3 : 0);
	struct iovec zero[1] = { { buf, 0 } };
	TE("readv total 0", readv(b, zero, 1));
	TE("writev total 0", writev(a, zero, 1));
	TE("writev iovcnt 0", writev(a, zero, 0));
	/* volatile: the compiler rightly refuses these counts as constants. */
	volatile int minus_one = -1, too_many = 2000;
	TE("writev iovcnt -1", writev(a, zero, minus_one));
	TE("readv iovcnt 2000", readv(b, zero, too_many));
	static char big[200000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	/* A blocking write larger than the buffer needs the reader: do it
	 * from a child so ordering is deterministic. */
	pid_t pid = fork();
	if (pid == 0) {
		ssize_t w = write(a, big, sizeof(big));
		_exit(w == (ssize_t)sizeof(big) ? 0 : 1);
	}
	size_t total = 0;
	static char in[200000];
	while (total < sizeof(in)) {
		ssize_t r = read(b, in + total, sizeof(in) - total);
		if (r <= 0)
			break;
		total += (size_t)r;
	}
	int status;
	waitpid(pid, &status, 0);
	t_note("big write child status %d", WEXITSTATUS(status));
	t_bytes("big read", in, (long)total);
	TE("close writer", close(a));
	TE("read at EOF", read(b, buf, sizeof(buf)));
	TE("read at EOF again", read(b, buf, sizeof(buf)));
	TE("close reader", close(b));
	TE("read closed fd", read(b, buf, 1));
	TE("write closed fd", write(b, buf, 1));
}

int main(void)
{
	int sv[2], p[2];
	char buf[128];
	t_expect("served_ring>0");
	t_expect("pt_fallback==0");

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	stream_pair("unix stream socketpair", sv[0], sv[1]);
	if (pipe(p))
		t_die("pipe");
	stream_pair("pipe", p[1], p[0]);

	t_note("== pipe wrong ends");
	if (pipe(p))
		t_die("pipe");
	TE("read write end", read(p[1], buf, 1));
	TE("read write end len 0", read(p[1], buf, 0));
	TE("write read end", write(p[0], "x", 1));
	TE("pread pipe", pread(p[0], buf, 1, 0));
	close(p[0]);
	close(p[1]);

	t_note("== unix datagrams");
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
		t_die("socketpair dgram");
	TE("send d1", write(sv[0], "one", 3));
	TE("send d2 empty", write(sv[0], "", 0));
	TE("send d3", write(sv[0], "three", 5));
	long n = TE("read 2 of d1 (truncates)", read(sv[1], buf, 2));
	t_bytes("d1", buf, n);
	TE("read 0 does not consume", read(sv[1], buf, 0));
	TE("read empty datagram", read(sv[1], buf, sizeof(buf)));
	n = TE("recv d3 MSG_TRUNC", recv(sv[1], buf, 2, MSG_TRUNC));
	close(sv[0]);
	close(sv[1]);

	t_note("== regular file");
	const char *path = "rw_basic.tmp";
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		t_die("open");
	TE("write 10", write(fd, "0123456789", 10));
	TE("pwrite at 20 (hole)", pwrite(fd, "XY", 2, 20));
	TE("pread at 0", pread(fd, buf, 4, 0));
	t_bytes("pread", buf, 4);
	n = TE("read at pos 10 (hole then XY)", read(fd, buf, sizeof(buf)));
	t_bytes("hole", buf, n);
	TE("read at EOF", read(fd, buf, sizeof(buf)));
	TE("lseek", lseek(fd, 0, SEEK_CUR));
	TE("pread negative offset", pread(fd, buf, 1, -1));
	TE("pwrite negative offset", pwrite(fd, buf, 1, -1));
	char a4[4], b4[4];
	struct iovec v[2] = { { a4, 4 }, { b4, 4 } };
	n = TE("preadv at 2", preadv(fd, v, 2, 2));
	t_bytes("preadv a", a4, 4);
	t_bytes("preadv b", b4, 4);
	TE("preadv negative", preadv(fd, v, 2, -5));
	TE("preadv2 at -1 (file position)", preadv2(fd, v, 2, -1, 0));
	TE("lseek 3", lseek(fd, 3, SEEK_SET));
	n = TE("preadv2 at -1 after seek", preadv2(fd, v, 1, -1, 0));
	t_bytes("preadv2", a4, n);
	TE("position moved", lseek(fd, 0, SEEK_CUR));
	struct iovec wv[2] = { { "ab", 2 }, { "cd", 2 } };
	TE("pwritev at 1", pwritev(fd, wv, 2, 1));
	TE("pwritev2 at -1", pwritev2(fd, wv, 1, -1, 0));
	TE("position after pwritev2", lseek(fd, 0, SEEK_CUR));
	TE("pread all", pread(fd, buf, sizeof(buf), 0));
	t_bytes("file", buf, 22);
	struct stat sb;
	fstat(fd, &sb);
	t_note("size %ld", (long)sb.st_size);
	close(fd);
	fd = open(path, O_RDONLY);
	TE("write to O_RDONLY", write(fd, "x", 1));
	close(fd);
	fd = open(path, O_WRONLY | O_APPEND);
	TE("append", write(fd, "END", 3));
	TE("pos after append", lseek(fd, 0, SEEK_CUR));
	TE("read from O_WRONLY", read(fd, buf, 1));
	close(fd);
	unlink(path);

	t_note("== directory");
	fd = open(".", O_RDONLY | O_DIRECTORY);
	TE("read dir", read(fd, buf, 1));
	close(fd);
	return 0;
}
