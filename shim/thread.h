/* Per-thread lifecycle: a pthread key whose destructor releases the thread's
 * ring and counters, and the re-entry depth that tells a signal handler's
 * I/O apart from the call it interrupted. */
#ifndef RS_THREAD_H
#define RS_THREAD_H

#include <stdbool.h>

#include "common.h"

/* >0 while this thread is inside the shim's ring path. */
extern RS_TLS unsigned rs_depth;

void rs_thread_init(void);
/* Make sure this thread's exit hook runs (call once it owns anything). */
void rs_thread_note_state(void);
/* True once the exit hook ran: late calls from other destructors pass
 * through instead of building a new ring. */
bool rs_thread_exiting(void);
void rs_thread_after_fork_child(void);

#endif
