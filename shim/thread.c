#include <pthread.h>

#include "batch.h"
#include "config.h"
#include "ring.h"
#include "stats.h"
#include "thread.h"

RS_TLS unsigned rs_depth;
static RS_TLS bool exiting;
static pthread_key_t exit_key;
static bool key_ok;

static void thread_exit_hook(void *arg)
{
	(void)arg;
	if (rs_tls_ring && rs_cfg.mode == RS_MODE_BATCH)
		rs_batch_ring_exit(rs_tls_ring);
	exiting = true;
	rs_ring_thread_exit();
	rs_stats_thread_exit();
}

void rs_thread_init(void)
{
	key_ok = pthread_key_create(&exit_key, thread_exit_hook) == 0;
}

void rs_thread_note_state(void)
{
	if (key_ok && !pthread_getspecific(exit_key))
		pthread_setspecific(exit_key, (void *)1);
}

bool rs_thread_exiting(void)
{
	return exiting;
}

void rs_thread_after_fork_child(void)
{
	rs_depth = 0;
}
