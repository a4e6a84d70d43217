/* Completion-based accept (acceptq.c). */
#ifndef RS_ACCEPTQ_H
#define RS_ACCEPTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct rs_fdb;
struct rs_ring;

#define RS_ACQ_EMPTY (-4096 - 30)

bool rs_acq_supported(void);
/* Arm an accept on r (r->lock and b->lock held). */
void rs_acq_arm(struct rs_ring *r, struct rs_fdb *b);
uint32_t rs_acq_ready(const struct rs_fdb *b);
/* Connections queued (b->lock not needed). */
bool rs_acq_queued(const struct rs_fdb *b);
/* Hand out a queued connection: the new fd, -errno, or RS_ACQ_EMPTY.
 * r is the queue's ring, locked. */
int rs_acq_take(struct rs_ring *r, struct rs_fdb *b, struct sockaddr *addr, socklen_t *alen,
		int flags);
struct rs_ring *rs_acq_ring(const struct rs_fdb *b);
/* The same, held (rs_ring_hold; b->lock held): for locking it after. */
struct rs_ring *rs_acq_ring_hold(const struct rs_fdb *b);
/* r's thread exits: the queue no longer names r unless an accept is still
 * armed there (b->lock held). */
void rs_acq_forget_ring(struct rs_fdb *b, struct rs_ring *r);
void rs_acq_free_in_child(struct rs_fdb *b);
bool rs_acq_active(const struct rs_fdb *b);
void rs_acq_close(struct rs_ring *r, struct rs_fdb *b);
void rs_acq_disarm(struct rs_ring *r, struct rs_fdb *b);
void rs_acq_free(struct rs_fdb *b);

#endif
