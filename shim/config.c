#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "fault.h"
#include "log.h"

struct rs_config rs_cfg;

static const struct rs_config defaults = {
	.disable = false,
	/* Batch mode is the default now that it passes every test strict
	 * mode passes (issue 3); its by-design differences are listed in
	 * docs/semantics.md, and RINGSHIM_MODE=strict gives exactness alone. */
	.mode = RS_MODE_BATCH,
	.fds = RS_FDS_ALL,
	.ring_entries = 256,
	.max_rings = 64,
	.sqpoll = false,
	.sqpoll_threads = 1,
	.sqpoll_idle_ms = 50,
	.sqpoll_cpu = -1,
	.busy_poll_us = 0,
	.wb_fd_max = 256 * 1024,
	.wb_max = 64 * 1024 * 1024,
	.stash_fd_max = 256 * 1024,
	.accept_queue = 4,
	.flush_bytes = 64 * 1024,
	.flush_us = 200,
	.stats = RS_STATS_OFF,
	.stats_file = NULL,
	.log_level = RS_LOG_WARN,
	.log_file = NULL,
	.fault = NULL,
};

/* Problems found before logging is configured; printed by rs_config_report. */
#define MAX_PROBLEMS 8
static char problems[MAX_PROBLEMS][200];
static int nproblems;

static void problem(const char *name, const char *value, const char *accepts,
		    const char *deflt)
{
	if (nproblems < MAX_PROBLEMS)
		rs_snprintf(problems[nproblems++], sizeof(problems[0]),
			    "%s='%s' is not valid (accepted: %s); using the default %s",
			    name, value, accepts, deflt);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

int rs_parse_uint(const char *s, unsigned long long min, unsigned long long max,
		  unsigned long long *out)
{
	if (!s || strpbrk(s, "kKmMgGbB"))
		return -EINVAL;
	return rs_parse_size(s, min, max, out);
}

int rs_parse_size(const char *s, unsigned long long min, unsigned long long max,
		  unsigned long long *out)
{
	if (!s)
		return -EINVAL;
	while (is_space(*s))
		s++;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	unsigned long long v = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
	}
	unsigned shift = 0;
	switch (*s) {
	case 'k': case 'K': shift = 10; s++; break;
	case 'm': case 'M': shift = 20; s++; break;
	case 'g': case 'G': shift = 30; s++; break;
	default: break;
	}
	if (shift && (*s == 'b' || *s == 'B'))
		s++;
	while (is_space(*s))
		s++;
	if (*s)
		return -EINVAL;
	if (shift && v > (ULLONG_MAX >> shift))
		return -EINVAL;
	v <<= shift;
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int rs_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off", "" };
	for (size_t i = 0; i < RS_ARRAY_SIZE(yes); i++)
		if (!strcasecmp(s, yes[i]))
			return *out = true, 0;
	for (size_t i = 0; i < RS_ARRAY_SIZE(no); i++)
		if (!strcasecmp(s, no[i]))
			return *out = false, 0;
	return -EINVAL;
}

int rs_parse_fds(const char *s, unsigned *out)
{
	static const struct { const char *name; unsigned bits; } kinds[] = {
		{ "all", RS_FDS_ALL },	   { "none", 0 },
		{ "sockets", RS_FDS_SOCKETS }, { "tcp", RS_FDS_TCP },
		{ "udp", RS_FDS_UDP },	   { "unix", RS_FDS_UNIX },
		{ "pipes", RS_FDS_PIPES },	   { "files", RS_FDS_FILES },
	};
	unsigned bits = 0;
	bool any = false;
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		bool known = false;
		for (size_t i = 0; i < RS_ARRAY_SIZE(kinds); i++) {
			if (strlen(kinds[i].name) == len &&
			    !strncasecmp(s, kinds[i].name, len)) {
				bits |= kinds[i].bits;
				known = true;
			}
		}
		if (!known)
			return -EINVAL;
		any = true;
		s += len;
		if (*s == ',')
			s++;
	}
	if (!any)
		return -EINVAL;
	*out = bits;
	return 0;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Servers such as nginx and redis rewrite the memory of their environment
 * to set their process title, so strings kept past start-up are copied. */
static const char *keep(char *dst, size_t size, const char *src, const char *name)
{
	if (!src)
		return NULL;
	if (strlen(src) >= size) {
		problem(name, src, "a path shorter than 4096 bytes", "(unset)");
		return NULL;
	}
	strcpy(dst, src);
	return dst;
}

static char stats_file_buf[4096], log_file_buf[4096], fault_buf[512];

static void get_uint(const char *name, unsigned long long min, unsigned long long max,
		     unsigned *field, unsigned deflt)
{
	const char *v = env(name);
	unsigned long long x;
	if (!v)
		return;
	if (rs_parse_uint(v, min, max, &x) == 0) {
		*field = (unsigned)x;
		return;
	}
	char accepts[64], d[24];
	rs_snprintf(accepts, sizeof(accepts), "an integer %llu..%llu", min, max);
	rs_snprintf(d, sizeof(d), "%u", deflt);
	problem(name, v, accepts, d);
}

static void get_size(const char *name, unsigned long long min, unsigned long long max,
		     size_t *field, size_t deflt)
{
	const char *v = env(name);
	unsigned long long x;
	if (!v)
		return;
	if (rs_parse_size(v, min, max, &x) == 0) {
		*field = (size_t)x;
		return;
	}
	char accepts[96], d[24];
	rs_snprintf(accepts, sizeof(accepts), "bytes %llu..%llu, K/M/G suffixes allowed",
		    min, max);
	rs_snprintf(d, sizeof(d), "%zu", deflt);
	problem(name, v, accepts, d);
}

static void get_bool(const char *name, bool *field, bool deflt)
{
	const char *v = getenv(name);
	if (!v)
		return;
	if (rs_parse_bool(v, field) != 0)
		problem(name, v, "0 or 1", deflt ? "1" : "0");
}

void rs_config_load(void)
{
	rs_cfg = defaults;
	nproblems = 0;
	get_bool("RINGSHIM_DISABLE", &rs_cfg.disable, defaults.disable);

	const char *v = env("RINGSHIM_MODE");
	if (v) {
		if (!strcasecmp(v, "strict"))
			rs_cfg.mode = RS_MODE_STRICT;
		else if (!strcasecmp(v, "batch"))
			rs_cfg.mode = RS_MODE_BATCH;
		else
			problem("RINGSHIM_MODE", v, "strict, batch",
				defaults.mode == RS_MODE_BATCH ? "batch" : "strict");
	}
	/* Batch mode leaves regular files to libc unless asked: a file read or
	 * write must return its result, so through the ring it costs one
	 * io_uring_enter per call, dearer than the plain system call, with
	 * nothing to batch (nginx serving a 1 KiB file: 0.90x without the
	 * shim with files on the ring, 1.24x without; docs/benchmarks.md). */
	bool batch = rs_cfg.mode == RS_MODE_BATCH;
	rs_cfg.fds = batch ? RS_FDS_ALL & ~RS_FDS_FILES : RS_FDS_ALL;
	v = env("RINGSHIM_FDS");
	if (v && rs_parse_fds(v, &rs_cfg.fds) != 0)
		problem("RINGSHIM_FDS", v,
			"comma list of all, none, sockets, tcp, udp, unix, pipes, files",
			batch ? "sockets,pipes (batch mode)" : "all");

	get_uint("RINGSHIM_RING_ENTRIES", 8, 32768, &rs_cfg.ring_entries,
		 defaults.ring_entries);
	get_uint("RINGSHIM_MAX_RINGS", 1, 65536, &rs_cfg.max_rings, defaults.max_rings);
	get_bool("RINGSHIM_SQPOLL", &rs_cfg.sqpoll, defaults.sqpoll);
	get_uint("RINGSHIM_SQPOLL_THREADS", 1, 64, &rs_cfg.sqpoll_threads,
		 defaults.sqpoll_threads);
	get_uint("RINGSHIM_SQPOLL_IDLE_MS", 0, 60000, &rs_cfg.sqpoll_idle_ms,
		 defaults.sqpoll_idle_ms);
	v = env("RINGSHIM_SQPOLL_CPU");
	if (v) {
		unsigned long long cpu;
		if (rs_parse_uint(v, 0, 4095, &cpu) == 0)
			rs_cfg.sqpoll_cpu = (int)cpu;
		else
			problem("RINGSHIM_SQPOLL_CPU", v, "a CPU number 0..4095",
				"(not pinned)");
	}
	get_uint("RINGSHIM_BUSY_POLL_US", 0, 1000000, &rs_cfg.busy_poll_us,
		 defaults.busy_poll_us);
	get_size("RINGSHIM_WB_FD_MAX", 4096, 1ULL << 30, &rs_cfg.wb_fd_max,
		 defaults.wb_fd_max);
	get_size("RINGSHIM_WB_MAX", 65536, 16ULL << 30, &rs_cfg.wb_max, defaults.wb_max);
	get_size("RINGSHIM_STASH_FD_MAX", 4096, 1ULL << 30, &rs_cfg.stash_fd_max,
		 defaults.stash_fd_max);
	get_uint("RINGSHIM_ACCEPT_QUEUE", 1, 1024, &rs_cfg.accept_queue,
		 defaults.accept_queue);
	get_size("RINGSHIM_FLUSH_BYTES", 512, 1ULL << 30, &rs_cfg.flush_bytes,
		 defaults.flush_bytes);
	get_uint("RINGSHIM_FLUSH_US", 0, 1000000, &rs_cfg.flush_us, defaults.flush_us);

	v = env("RINGSHIM_STATS");
	if (v) {
		bool on;
		if (rs_parse_bool(v, &on) == 0)
			rs_cfg.stats = on ? RS_STATS_STDERR : RS_STATS_OFF;
		else {
			rs_cfg.stats_file = keep(stats_file_buf, sizeof(stats_file_buf), v,
						 "RINGSHIM_STATS");
			rs_cfg.stats = rs_cfg.stats_file ? RS_STATS_FILE : RS_STATS_OFF;
		}
	}
	v = env("RINGSHIM_LOG");
	if (v) {
		static const char *const levels[] = { "quiet", "warn", "info", "debug" };
		int level = -1;
		for (int i = 0; i < 4; i++)
			if (!strcasecmp(v, levels[i]))
				level = i;
		if (level < 0)
			problem("RINGSHIM_LOG", v, "quiet, warn, info, debug", "warn");
		else
			rs_cfg.log_level = level;
	}
	rs_cfg.log_file = keep(log_file_buf, sizeof(log_file_buf), env("RINGSHIM_LOG_FILE"),
			       "RINGSHIM_LOG_FILE");
	rs_cfg.fault = keep(fault_buf, sizeof(fault_buf), env("RINGSHIM_FAULT"), "RINGSHIM_FAULT");
	if (rs_fault_parse(rs_cfg.fault) != 0) {
		problem("RINGSHIM_FAULT", rs_cfg.fault,
			"comma list of setup, sqfull, cqsmall, enobufs, shortsend, eintr, nomem, "
			"each optionally :N",
			"(off)");
		rs_cfg.fault = NULL;
		rs_fault_parse(NULL);
	}
}

void rs_config_report(void)
{
	for (int i = 0; i < nproblems; i++)
		rs_warn("%s", problems[i]);
}

size_t rs_config_describe_set(char *buf, size_t size)
{
	static const char *const prefix = "RINGSHIM_";
	size_t n = 0;
	buf[0] = '\0';
	extern char **environ;
	for (char **e = environ; e && *e && n + 2 < size; e++) {
		if (strncmp(*e, prefix, strlen(prefix)) != 0)
			continue;
		n += rs_snprintf(buf + n, size - n, "%s%s", n ? " " : "", *e);
	}
	return n;
}
