/* A byte queue made of chunks: the write-behind queue and the receive stash
 * of an fd. Copies from and to program memory go through rs_safe_copy, so a
 * bad pointer is an EFAULT, never a crash in the shim.
 *
 * A chunk normally owns its bytes; a "lent" chunk refers to memory owned by
 * someone else (a provided receive buffer kept when copying it failed for
 * lack of memory) and hands it back through its release hook once read. */
#ifndef RS_BQ_H
#define RS_BQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RS_CHUNK_SIZE (4096 - 64)

struct rs_chunk {
	struct rs_chunk *next;
	uint32_t head; /* first unconsumed byte */
	uint32_t tail; /* end of data */
	char *base;    /* the bytes: data[] or lent memory */
	void (*release)(struct rs_chunk *c); /* lent chunks only */
	uintptr_t owner_data;		      /* for release() */
	char data[];
};

struct rs_bq {
	struct rs_chunk *first, *last;
	size_t bytes;
};

/* Append n bytes read from program memory (src) or shim memory (trusted).
 * Returns n, -EFAULT (nothing appended) or -ENOMEM (nothing appended). */
long rs_bq_append(struct rs_bq *q, const void *src, size_t n, int trusted);
/* Append a lent chunk (its head/tail/base/release set by the caller). */
void rs_bq_append_lent(struct rs_bq *q, struct rs_chunk *c);
/* Copy up to n bytes into program memory, consuming them unless peek.
 * Returns the count or -EFAULT (nothing consumed). */
long rs_bq_copyout(struct rs_bq *q, void *dst, size_t n, int peek);
/* Scatter into an iovec array in program memory (readv/recvmsg). */
long rs_bq_copyout_iov(struct rs_bq *q, const struct iovec *iov, int cnt, int peek);
void rs_bq_consume(struct rs_bq *q, size_t n);
/* Describe the first bytes as iovecs (at most `max` of them, `limit` bytes). */
int rs_bq_iov(const struct rs_bq *q, struct iovec *iov, int max, size_t limit);
void rs_bq_clear(struct rs_bq *q);

#endif
