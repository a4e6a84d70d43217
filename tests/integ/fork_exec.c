/* fork, vfork, exec, posix_spawn and system(): a child does its own I/O
 * (before and after the parent has a ring), fork from a process whose other
 * threads are blocked in calls, and an exec'd program finds exactly the fds
 * it was meant to inherit (no ring fds) and the same LD_PRELOAD. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "check.h"

extern char **environ;

/* --fdcheck REPORTFD KEEPFD PRELOAD: runs in the exec'd program, before any
 * other I/O. Counts open fds >= 3 other than REPORTFD and KEEPFD. */
static int fdcheck(char **argv)
{
	int report = atoi(argv[2]), keep = atoi(argv[3]);
	const char *want = argv[4];
	int leaked = 0, open_ok = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 2;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd < 3 || fd == dirfd(d))
			continue;
		if (fd == report || fd == keep)
			open_ok++;
		else
			leaked++;
	}
	closedir(d);
	const char *lp = getenv("LD_PRELOAD");
	char msg[128];
	int n = snprintf(msg, sizeof(msg), "leaked=%d inherited=%d LD_PRELOAD same=%s", leaked, open_ok,
			 strcmp(lp ? lp : "(unset)", want) == 0 ? "yes" : "no");
	if (write(report, msg, (size_t)n) != n)
		return 3;
	if (write(keep, "k", 1) != 1)
		return 4;
	return 0;
}

static void status_of(const char *what, pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		t_note("%s: waitpid failed: %s", what, t_errname(errno));
	else
		t_note("%s: %s", what, t_status(st));
}

static void show_read(const char *what, int fd)
{
	char buf[256];
	long n = read(fd, buf, sizeof(buf));
	if (n < 0)
		t_note("%s: ret=-1 errno=%s", what, t_errname(errno));
	else
		t_bytes(what, buf, n);
}

struct blocked {
	int fd;
	pid_t tid;
	long ret;
	char buf[32];
};

static void *block_read(void *p)
{
	struct blocked *b = p;
	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	b->ret = read(b->fd, b->buf, sizeof(b->buf));
	return NULL;
}

/* Child side of an echo exchange: send, expect the same back. */
static int child_exchange(int fd, const char *msg)
{
	char buf[64];
	size_t len = strlen(msg);
	if (write(fd, msg, len) != (ssize_t)len)
		return 1;
	if (recv(fd, buf, len, MSG_WAITALL) != (ssize_t)len || memcmp(buf, msg, len))
		return 2;
	/* And a socketpair of its own. */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || write(sv[0], "own", 3) != 3 ||
	    read(sv[1], buf, sizeof(buf)) != 3)
		return 3;
	return 0;
}

static void parent_echo(int fd)
{
	char buf[64];
	long n = read(fd, buf, sizeof(buf));
	t_bytes("  parent got", buf, n > 0 ? n : 0);
	if (n > 0 && write(fd, buf, (size_t)n) != n)
		t_note("  echo failed");
}

static void exec_check(const char *how, const char *self)
{
	int rep[2], sv[2];
	if (pipe2(rep, O_CLOEXEC) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		t_die("exec_check setup");
	/* Exactly these two are meant to reach the exec'd program. */
	fcntl(rep[1], F_SETFD, 0);
	fcntl(sv[1], F_SETFD, 0);
	char a2[16], a3[16];
	snprintf(a2, sizeof(a2), "%d", rep[1]);
	snprintf(a3, sizeof(a3), "%d", sv[1]);
	const char *lp = getenv("LD_PRELOAD");
	char *args[] = { (char *)self, "--fdcheck", a2, a3, (char *)(lp ? lp : "(unset)"), NULL };
	pid_t pid = -1;
	if (!strcmp(how, "fork+exec")) {
		pid = fork();
		if (pid == 0) {
			execv(self, args);
			_exit(127);
		}
	} else if (!strcmp(how, "vfork+exec")) {
		pid = vfork();
		if (pid == 0) {
			execv(self, args);
			_exit(127);
		}
	} else {
		if (posix_spawn(&pid, self, NULL, NULL, args, environ))
			pid = -1;
	}
	close(rep[1]);
	close(sv[1]);
	status_of(how, pid);
	show_read("  report", rep[0]);
	show_read("  through the kept socket", sv[0]);
	close(rep[0]);
	close(sv[0]);
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "--fdcheck"))
		return fdcheck(argv);

	/* Before the parent does any I/O (not even a printf): the child is
	 * the first to make a ring. */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	pid_t pid = fork();
	if (pid == 0)
		_exit(write(sv[1], "child first", 11) == 11 ? 0 : 1);
	int st;
	waitpid(pid, &st, 0);

	t_expect("served_ring>0");
	signal(SIGPIPE, SIG_IGN);
	t_note("== child I/O before the parent had a ring");
	t_note("child: %s", t_status(st));
	show_read("parent read", sv[0]);

	t_note("== child I/O after the parent has a ring");
	for (int i = 0; i < 3; i++) {
		pid = fork();
		if (pid == 0)
			_exit(child_exchange(sv[1], i == 0 ? "round 0" : i == 1 ? "round 1" : "round 2"));
		parent_echo(sv[0]);
		status_of("child", pid);
	}
	TE("parent I/O after the children", write(sv[1], "parent", 6));
	show_read("parent read", sv[0]);

	t_note("== fork with 4 other threads blocked in read()");
	struct blocked b[4];
	pthread_t th[4];
	int tsv[4][2];
	for (int i = 0; i < 4; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, tsv[i]))
			t_die("socketpair");
		b[i] = (struct blocked){ .fd = tsv[i][0] };
		pthread_create(&th[i], NULL, block_read, &b[i]);
	}
	for (int i = 0; i < 4; i++) {
		while (!__atomic_load_n(&b[i].tid, __ATOMIC_ACQUIRE))
			t_sleep_ms(1);
		t_wait_blocked_task(getpid(), b[i].tid);
	}
	pid = fork();
	if (pid == 0) {
		/* Only this thread exists here; wake the parent's threads. */
		for (int i = 0; i < 4; i++) {
			char msg[16];
			int n = snprintf(msg, sizeof(msg), "wake %d", i);
			if (write(tsv[i][1], msg, (size_t)n) != n)
				_exit(10 + i);
		}
		_exit(child_exchange(sv[1], "threaded parent"));
	}
	parent_echo(sv[0]);
	status_of("child", pid);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		char what[32];
		snprintf(what, sizeof(what), "thread %d got", i);
		t_bytes(what, b[i].buf, b[i].ret > 0 ? b[i].ret : 0);
	}

	t_note("== vfork");
	pid = vfork();
	if (pid == 0)
		_exit(7);
	status_of("vfork + _exit(7)", pid);
	int p[2];
	if (pipe(p))
		t_die("pipe");
	pid = vfork();
	if (pid == 0) {
		dup2(p[1], 1);
		execl("/bin/echo", "echo", "vforked echo", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	status_of("vfork + dup2 + exec echo", pid);
	show_read("  output", p[0]);
	close(p[0]);

	t_note("== exec: inherited fds and LD_PRELOAD");
	/* Keep two threads (with rings) alive across the execs. */
	for (int i = 0; i < 2; i++) {
		b[i] = (struct blocked){ .fd = tsv[i][0] };
		pthread_create(&th[i], NULL, block_read, &b[i]);
		while (!__atomic_load_n(&b[i].tid, __ATOMIC_ACQUIRE))
			t_sleep_ms(1);
		t_wait_blocked_task(getpid(), b[i].tid);
	}
	/* Everything the program itself has open is close-on-exec; only
	 * the two fds exec_check() clears it on may reach the new program. */
	close_range(3, 255, CLOSE_RANGE_CLOEXEC);
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		t_die("readlink");
	self[sl] = 0;
	exec_check("fork+exec", self);
	exec_check("vfork+exec", self);
	exec_check("posix_spawn", self);
	for (int i = 0; i < 2; i++) {
		TE("wake thread", write(tsv[i][1], "bye", 3));
		pthread_join(th[i], NULL);
	}

	t_note("== posix_spawn and system()");
	char *sh3[] = { "sh", "-c", "exit 3", NULL };
	if (posix_spawn(&pid, "/bin/sh", NULL, NULL, sh3, environ))
		t_die("posix_spawn");
	status_of("posix_spawn sh -c 'exit 3'", pid);
	if (pipe(p))
		t_die("pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	char *echo[] = { "echo", "spawned", NULL };
	if (posix_spawn(&pid, "/bin/echo", &fa, NULL, echo, environ))
		t_die("posix_spawn echo");
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	status_of("posix_spawn echo (stdout to a pipe)", pid);
	show_read("  output", p[0]);
	close(p[0]);
	int r = system("exit 4");
	t_note("system(\"exit 4\"): %s", t_status(r));
	if (pipe(p))
		t_die("pipe");
	int out = dup(1);
	dup2(p[1], 1);
	r = system("printf 'from system'");
	dup2(out, 1);
	close(out);
	close(p[1]);
	t_note("system(printf), stdout a pipe: %s", t_status(r));
	show_read("  output", p[0]);
	close(p[0]);
	TE("parent I/O at the end", write(sv[1], "end", 3));
	show_read("parent read", sv[0]);
	return 0;
}
