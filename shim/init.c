/* Start-up, fork and exit. */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "config.h"
#include "entry.h"
#include "fdtable.h"
#include "init.h"
#include "internal_fds.h"
#include "log.h"
#include "real.h"
#include "ring.h"
#include "signals.h"
#include "stats.h"
#include "thread.h"

int rs_state = RS_STATE_NEW;
const struct rs_io *rs_mode_io = &rs_io_strict;

static void atfork_parent(void)
{
	/* Both processes now hold every fd we know of. */
	rs_fd_mark_all_shared();
}

static void atfork_child(void)
{
	rs_internal_fds_after_fork_child();
	rs_signals_after_fork_child();
	rs_ring_after_fork_child();
	rs_stats_after_fork_child();
	rs_log_after_fork();
	rs_thread_after_fork_child();
	rs_fd_mark_all_shared();
}

bool rs_init_now(void)
{
	int s = __atomic_load_n(&rs_state, __ATOMIC_ACQUIRE);
	if (s == RS_STATE_READY)
		return true;
	if (s != RS_STATE_NEW)
		return false; /* disabled, or being set up (maybe by us, re-entered) */
	if (!__atomic_compare_exchange_n(&rs_state, &s, RS_STATE_INITIALISING, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return __atomic_load_n(&rs_state, __ATOMIC_ACQUIRE) == RS_STATE_READY;

	int saved = errno;
	rs_real_resolve_all();
	rs_config_load();
	if (rs_cfg.disable) {
		__atomic_store_n(&rs_state, RS_STATE_DISABLED, __ATOMIC_RELEASE);
		errno = saved;
		return false;
	}
	rs_log_init(rs_cfg.log_level, rs_cfg.log_file);
	rs_config_report();
	rs_stats_init();
	rs_thread_init();
	rs_signals_init();
	pthread_atfork(NULL, atfork_parent, atfork_child);
	rs_mode_io = &rs_io_strict;
	__atomic_store_n(&rs_state, RS_STATE_READY, __ATOMIC_RELEASE);

	if (rs_log_level >= RS_LOG_INFO) {
		char set[400];
		rs_config_describe_set(set, sizeof(set));
		rs_info("loaded: mode=%s fds=0x%x ring_entries=%u%s%s",
			rs_cfg.mode == RS_MODE_BATCH ? "batch" : "strict", rs_cfg.fds,
			rs_cfg.ring_entries, set[0] ? "; set: " : "", set);
	}
	errno = saved;
	return true;
}

__attribute__((constructor)) static void rs_constructor(void)
{
	rs_init_now();
}

__attribute__((destructor)) static void rs_destructor(void)
{
	if (__atomic_load_n(&rs_state, __ATOMIC_ACQUIRE) == RS_STATE_READY)
		rs_stats_report_exit();
}

/* vfork() shares the parent's memory: a vfork child calling close() or
 * dup2() through the shim would rewrite the parent's fd table and use the
 * parent's ring. fork() gives the child its own copy, which is all a
 * conforming vfork child may rely on anyway. */
RS_EXPORT pid_t vfork(void)
{
	return fork();
}

RS_EXPORT pid_t __vfork(void) RS_ALIAS(vfork);
