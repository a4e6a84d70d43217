/* Staged start-up, OpenOnload style: until the shim is ready, every
 * interposed call passes straight through to libc. */
#ifndef RS_INIT_H
#define RS_INIT_H

#include <stdbool.h>

#include "common.h"

enum rs_init_state { RS_STATE_NEW, RS_STATE_INITIALISING, RS_STATE_READY, RS_STATE_DISABLED };

extern int rs_state;

/* Initialise if nobody has yet; true when calls may use the shim. */
bool rs_init_now(void);

static inline bool rs_ready(void)
{
	return likely(__atomic_load_n(&rs_state, __ATOMIC_ACQUIRE) == RS_STATE_READY) ||
	       rs_init_now();
}

#endif
