/* Rings of many threads around one SQ thread (batch with RINGSHIM_SQPOLL=1;
 * in the other modes the same program checks plain per-thread rings):
 * the thread whose ring started the SQ thread exits while others are still
 * attached (liburing issue 245 saw EFAULT there), new threads attach after
 * it is gone, and a forked child does its own I/O, never through the
 * parent's rings. Under SQPOLL the process must keep a single SQ thread
 * (RINGSHIM_SQPOLL_THREADS=1) and the child must have its own. */
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "check.h"

#define MSGS 300

struct worker {
	int fd;		/* our end; the echoer holds the other */
	uint64_t hash;
	int bad;
};

/* Sends MSGS messages and reads each echo back. */
static void *talk(void *p)
{
	struct worker *w = p;
	uint64_t h = T_FNV_INIT;
	for (int i = 0; i < MSGS; i++) {
		char msg[48], back[48];
		int len = snprintf(msg, sizeof(msg), "message %d on fd %d", i, w->fd);
		if (write(w->fd, msg, (size_t)len) != len) {
			w->bad++;
			break;
		}
		int got = 0;
		while (got < len) {
			ssize_t n = read(w->fd, back + got, (size_t)(len - got));
			if (n <= 0) {
				w->bad++;
				break;
			}
			got += (int)n;
		}
		if (memcmp(msg, back, (size_t)len))
			w->bad++;
		h = t_fnv(h, back, (size_t)got);
	}
	w->hash = h;
	return NULL;
}

static void *echo(void *p)
{
	int fd = *(int *)p;
	char buf[256];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n)
			break;
	return NULL;
}

struct pair {
	struct worker w;
	int other;
	pthread_t echoer;
};

static void pair_start(struct pair *p)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	p->w = (struct worker){ sv[0], 0, 0 };
	p->other = sv[1];
	pthread_create(&p->echoer, NULL, echo, &p->other);
}

static void pair_end(struct pair *p, const char *label)
{
	shutdown(p->w.fd, SHUT_WR);
	pthread_join(p->echoer, NULL);
	close(p->w.fd);
	close(p->other);
	t_note("%s: fd %d, %d messages, hash %016llx, bad %d", label, p->w.fd, MSGS,
	       (unsigned long long)p->w.hash, p->w.bad);
}

/* SQ threads of this process: kernel threads named iou-sqp-PID. */
static int sq_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[300], comm[64] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "iou-sqp-", 8))
			n++;
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/* Under the shim with SQPOLL the process must have exactly `want` SQ
 * threads; natively and in other modes there are none. A wrong count ends
 * the program with status 3, which the runner compares with native's 0. */
static void check_sq_threads(const char *when, int want)
{
	const char *pre = getenv("LD_PRELOAD"), *sq = getenv("RINGSHIM_SQPOLL");
	bool sqpoll = pre && strstr(pre, "ringshim") && sq && !strcmp(sq, "1");
	int n = sq_threads();
	if (n != (sqpoll ? want : 0)) {
		fprintf(stderr, "%s: %d SQ threads, expected %d\n", when, n, sqpoll ? want : 0);
		exit(3);
	}
}

int main(void)
{
	/* 1: the first thread with a ring (under SQPOLL: the one that starts
	 * the SQ thread) talks while B is attached, then exits first. */
	struct pair a, b;
	pair_start(&a);
	pair_start(&b);
	pthread_t ta, tb;
	pthread_create(&ta, NULL, talk, &a.w);
	pthread_join(ta, NULL);
	pthread_create(&tb, NULL, talk, &b.w);
	pthread_join(tb, NULL);
	pair_end(&a, "first thread");
	pair_end(&b, "second thread");

	/* 2: new threads after the first ones have gone. */
	struct pair c[4];
	pthread_t tc[4];
	for (int i = 0; i < 4; i++)
		pair_start(&c[i]);
	for (int i = 0; i < 4; i++)
		pthread_create(&tc[i], NULL, talk, &c[i].w);
	for (int i = 0; i < 4; i++)
		pthread_join(tc[i], NULL);
	for (int i = 0; i < 4; i++) {
		char label[32];
		snprintf(label, sizeof(label), "later thread %d", i);
		pair_end(&c[i], label);
	}
	check_sq_threads("after the threads", 1);

	/* 3: the main thread itself, then a forked child with its own I/O. */
	struct pair m;
	pair_start(&m);
	talk(&m.w);
	pair_end(&m, "main thread");

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		close(sv[1]);
		struct worker w = { sv[0], 0, 0 };
		talk(&w);
		check_sq_threads("in the child", 1);
		printf("child: hash %016llx, bad %d\n", (unsigned long long)w.hash, w.bad);
		fflush(stdout);
		_exit(w.bad ? 1 : 0);
	}
	close(sv[0]);
	echo(&sv[1]);
	int st;
	waitpid(pid, &st, 0);
	t_note("child: %s", t_status(st));
	close(sv[1]);
	check_sq_threads("at the end", 1);
	return 0;
}
