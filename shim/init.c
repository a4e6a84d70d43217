/* Start-up, fork and exit. */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "batch.h"
#include "config.h"
#include "epoll.h"
#include "entry.h"
#include "fdtable.h"
#include "init.h"
#include "internal_fds.h"
#include "io_strict.h"
#include "log.h"
#include "real.h"
#include "ring.h"
#include "signals.h"
#include "stats.h"
#include "thread.h"

int rs_state = RS_STATE_NEW;
const struct rs_io *rs_mode_io = &rs_io_strict;

/* Bytes queued before fork() are in the kernel before either process goes
 * on, as they would be had write() not returned early. Only the forking
 * thread's ring can hold queued sends it must submit; a thread without a
 * ring has nothing to hand over and must not make one here (an fd and a
 * ring slot taken by every fork, and against RINGSHIM_MAX_RINGS). */
static void atfork_prepare(void)
{
	if (rs_cfg.mode == RS_MODE_BATCH && !rs_depth && rs_tls_ring) {
		rs_batch_flush_all(false);
		/* Past a full socket too: the child may shut the socket down
		 * or close it, and its FIN must come after every byte the
		 * parent was told it wrote (fuzz seed 2634624874). */
		rs_batch_push_all(true);
	}
	if (rs_cfg.mode == RS_MODE_BATCH && !rs_depth)
		rs_batch_before_fork();
}

static void atfork_parent(void)
{
	/* Both processes now hold every fd we know of. */
	rs_fd_mark_all_shared();
}

static void atfork_child(void)
{
	rs_internal_fds_after_fork_child();
	rs_strict_after_fork_child();
	rs_signals_after_fork_child();
	rs_ring_after_fork_child();
	rs_stats_after_fork_child();
	rs_log_after_fork();
	rs_thread_after_fork_child();
	rs_fd_mark_all_shared();
	if (rs_cfg.mode == RS_MODE_BATCH) {
		rs_batch_after_fork_child();
		rs_epoll_after_fork_child();
		rs_batch_fork_child_to_kernel();
	}
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
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	rs_mode_io = rs_cfg.mode == RS_MODE_BATCH ? &rs_io_batch : &rs_io_strict;
	if (rs_cfg.mode == RS_MODE_BATCH)
		rs_batch_init();
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
	if (__atomic_load_n(&rs_state, __ATOMIC_ACQUIRE) != RS_STATE_READY)
		return;
	/* Waiting for queued bytes needs a ring; a thread without one makes
	 * one only when some fd still has bytes queued. */
	if (rs_cfg.mode == RS_MODE_BATCH && (rs_tls_ring || rs_wb_pending_total()))
		rs_batch_flush_all(true);
	rs_stats_report_exit();
	rs_stats_unpublish();
}

