/* RINGSHIM_* settings, read once at start-up. A bad value never stops the
 * program: it gets one line naming the variable and what it accepts, and the
 * default is used. Every variable is listed in README.md and docs/ringshim.1. */
#ifndef RS_CONFIG_H
#define RS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum rs_mode { RS_MODE_STRICT, RS_MODE_BATCH };

/* Which kinds of fd may be served by the ring (RINGSHIM_FDS). */
enum {
	RS_FDS_TCP = 1u << 0,
	RS_FDS_UDP = 1u << 1,
	RS_FDS_UNIX = 1u << 2,
	RS_FDS_PIPES = 1u << 3,
	RS_FDS_FILES = 1u << 4,
	RS_FDS_SOCKETS = RS_FDS_TCP | RS_FDS_UDP | RS_FDS_UNIX,
	RS_FDS_ALL = RS_FDS_SOCKETS | RS_FDS_PIPES | RS_FDS_FILES,
};

enum rs_stats_out { RS_STATS_OFF, RS_STATS_STDERR, RS_STATS_FILE };

struct rs_config {
	bool disable;
	enum rs_mode mode;
	unsigned fds;
	unsigned ring_entries;
	unsigned max_rings;
	bool sqpoll;
	unsigned sqpoll_threads;
	unsigned sqpoll_idle_ms;
	int sqpoll_cpu; /* -1: not pinned */
	unsigned busy_poll_us;
	size_t wb_fd_max;
	size_t wb_max;
	size_t stash_fd_max;
	unsigned accept_queue;
	size_t flush_bytes;
	unsigned flush_us;
	enum rs_stats_out stats;
	const char *stats_file;
	int log_level;
	const char *log_file;
	const char *fault;
};

extern struct rs_config rs_cfg;

/* Parse the environment into rs_cfg. Messages about bad values are queued
 * and printed by rs_config_report() once logging is set up. */
void rs_config_load(void);
void rs_config_report(void);
/* Write every RINGSHIM_* variable the user set, for the start-up banner. */
size_t rs_config_describe_set(char *buf, size_t size);

/* Exposed for unit tests: parse one value. Return 0 or -EINVAL. */
int rs_parse_uint(const char *s, unsigned long long min, unsigned long long max,
		  unsigned long long *out);
int rs_parse_size(const char *s, unsigned long long min, unsigned long long max,
		  unsigned long long *out);
int rs_parse_bool(const char *s, bool *out);
int rs_parse_fds(const char *s, unsigned *out);

#endif
