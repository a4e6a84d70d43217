#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault.h"

bool rs_faults_on;
static unsigned every[RS_FAULT_COUNT];	/* 0: off */
static unsigned long seen[RS_FAULT_COUNT];
static unsigned long fired[RS_FAULT_COUNT];
/* RINGSHIM_FAULT_REPORT=FILE: at exit, one JSON line per process with how
 * often each fault was looked at and fired (tests check it really did). */
static char report_path[512];
/* An interrupted wait is tried again at once; were every try interrupted,
 * the thread would spin forever. So eintr never fires twice in a row on a
 * thread: a wait that was cut short then waits for real. */
static __thread bool eintr_just_fired;

static const char *const names[RS_FAULT_COUNT] = {
#define RS_F_NAME(n) #n,
	RS_FAULTS(RS_F_NAME)
#undef RS_F_NAME
};

bool rs_fault_hit(enum rs_fault f)
{
	if (!every[f])
		return false;
	if (f == RS_FAULT_eintr && eintr_just_fired) {
		eintr_just_fired = false;
		return false;
	}
	unsigned long n = __atomic_add_fetch(&seen[f], 1, __ATOMIC_RELAXED);
	bool hit = n % every[f] == 0;
	if (hit)
		__atomic_add_fetch(&fired[f], 1, __ATOMIC_RELAXED);
	if (f == RS_FAULT_eintr)
		eintr_just_fired = hit;
	return hit;
}

/* A forked child counts its own firings. */
static void fault_after_fork_child(void)
{
	memset(seen, 0, sizeof(seen));
	memset(fired, 0, sizeof(fired));
}

__attribute__((destructor)) static void fault_report(void)
{
	if (!rs_faults_on || !report_path[0])
		return;
	char line[1024];
	int len = snprintf(line, sizeof(line), "{\"pid\":%ld,\"faults\":{", (long)syscall(SYS_getpid));
	for (int i = 0, first = 1; i < RS_FAULT_COUNT && len < (int)sizeof(line); i++) {
		if (!every[i])
			continue;
		len += snprintf(line + len, sizeof(line) - (size_t)len,
				"%s\"%s\":{\"every\":%u,\"checked\":%lu,\"fired\":%lu}",
				first ? "" : ",", names[i], every[i], seen[i], fired[i]);
		first = 0;
	}
	if (len < (int)sizeof(line))
		len += snprintf(line + len, sizeof(line) - (size_t)len, "}}\n");
	if (len >= (int)sizeof(line))
		return;
	/* Raw system calls: the program's open/write are the shim's own. */
	long fd = syscall(SYS_openat, AT_FDCWD, report_path,
			  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	(void)!syscall(SYS_write, (int)fd, line, (size_t)len);
	syscall(SYS_close, (int)fd);
}

int rs_fault_parse(const char *spec)
{
	unsigned parsed[RS_FAULT_COUNT] = { 0 };
	while (spec && *spec) {
		const char *end = strchr(spec, ',');
		size_t len = end ? (size_t)(end - spec) : strlen(spec);
		const char *colon = memchr(spec, ':', len);
		size_t nlen = colon ? (size_t)(colon - spec) : len;
		unsigned n = 1;
		if (colon) {
			char *stop;
			unsigned long v = strtoul(colon + 1, &stop, 10);
			if (stop != spec + len || v == 0 || v > 1000000)
				return -EINVAL;
			n = (unsigned)v;
		}
		int found = -1;
		for (int i = 0; i < RS_FAULT_COUNT; i++)
			if (strlen(names[i]) == nlen && !strncmp(spec, names[i], nlen))
				found = i;
		if (found < 0)
			return -EINVAL;
		parsed[found] = n;
		spec += len;
		if (*spec == ',')
			spec++;
	}
	memcpy(every, parsed, sizeof(every));
	memset(seen, 0, sizeof(seen));
	memset(fired, 0, sizeof(fired));
	rs_faults_on = false;
	for (int i = 0; i < RS_FAULT_COUNT; i++)
		rs_faults_on |= every[i] != 0;
	const char *rep = getenv("RINGSHIM_FAULT_REPORT");
	report_path[0] = 0;
	if (rs_faults_on && rep && strlen(rep) < sizeof(report_path))
		strcpy(report_path, rep);
	static bool atfork_done;
	if (rs_faults_on && !atfork_done) {
		atfork_done = true;
		pthread_atfork(NULL, NULL, fault_after_fork_child);
	}
	return 0;
}
