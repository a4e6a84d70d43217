#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bq.h"
#include "fault.h"
#include "signals.h"

/* A few spare chunks so a busy connection does not malloc on every write. */
#define SPARE_MAX 4096
static struct rs_chunk *spare;
static unsigned nspare;
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;

static struct rs_chunk *chunk_new(void)
{
	struct rs_chunk *c = NULL;
	if (rs_fault(RS_FAULT_nomem))
		return NULL;
	pthread_mutex_lock(&spare_lock);
	if (spare) {
		c = spare;
		spare = c->next;
		nspare--;
	}
	pthread_mutex_unlock(&spare_lock);
	if (!c)
		c = malloc(sizeof(*c) + RS_CHUNK_SIZE);
	if (c) {
		c->next = NULL;
		c->head = c->tail = 0;
		c->base = c->data;
		c->release = NULL;
	}
	return c;
}

static void chunk_free(struct rs_chunk *c)
{
	if (c->release) {
		c->release(c);
		return;
	}
	pthread_mutex_lock(&spare_lock);
	if (nspare < SPARE_MAX) {
		c->next = spare;
		spare = c;
		nspare++;
		c = NULL;
	}
	pthread_mutex_unlock(&spare_lock);
	free(c);
}

long rs_bq_append(struct rs_bq *q, const void *src, size_t n, int trusted)
{
	struct rs_chunk *old_last = q->last, *first_new = NULL;
	uint32_t old_tail = old_last ? old_last->tail : 0;
	size_t done = 0;
	long err = 0;
	while (done < n) {
		struct rs_chunk *c = q->last;
		if (!c || c->release || c->tail == RS_CHUNK_SIZE) {
			c = chunk_new();
			if (!c) {
				err = -ENOMEM;
				break;
			}
			if (!first_new)
				first_new = c;
			if (q->last)
				q->last->next = c;
			else
				q->first = c;
			q->last = c;
		}
		size_t room = RS_CHUNK_SIZE - c->tail;
		size_t take = n - done < room ? n - done : room;
		if (trusted)
			memcpy(c->base + c->tail, (const char *)src + done, take);
		else if (rs_safe_copy(c->base + c->tail, (const char *)src + done, take)) {
			err = -EFAULT;
			break;
		}
		c->tail += (uint32_t)take;
		done += take;
	}
	if (!err) {
		q->bytes += n;
		return (long)n;
	}
	/* All or nothing: put the queue back exactly as it was. */
	for (struct rs_chunk *c = first_new, *next; c; c = next) {
		next = c->next;
		chunk_free(c);
	}
	if (old_last) {
		old_last->tail = old_tail;
		old_last->next = NULL;
	} else {
		q->first = NULL;
	}
	q->last = old_last;
	return err;
}

long rs_bq_copyout(struct rs_bq *q, void *dst, size_t n, int peek)
{
	struct iovec iov = { dst, n };
	return rs_bq_copyout_iov(q, &iov, 1, peek);
}

long rs_bq_copyout_iov(struct rs_bq *q, const struct iovec *iov, int cnt, int peek)
{
	size_t copied = 0;
	struct rs_chunk *c = q->first;
	uint32_t off = c ? c->head : 0;
	for (int i = 0; i < cnt && c; i++) {
		char *dst = iov[i].iov_base;
		size_t want = iov[i].iov_len;
		while (want && c) {
			size_t avail = c->tail - off;
			size_t take = want < avail ? want : avail;
			if (take && rs_safe_copy(dst, c->base + off, take))
				return -EFAULT;
			dst += take;
			want -= take;
			copied += take;
			off += (uint32_t)take;
			if (off == c->tail) {
				c = c->next;
				off = c ? c->head : 0;
			}
		}
	}
	if (!peek)
		rs_bq_consume(q, copied);
	return (long)copied;
}

void rs_bq_consume(struct rs_bq *q, size_t n)
{
	if (n > q->bytes)
		n = q->bytes;
	q->bytes -= n;
	while (n && q->first) {
		struct rs_chunk *c = q->first;
		size_t avail = c->tail - c->head;
		if (n < avail) {
			c->head += (uint32_t)n;
			return;
		}
		n -= avail;
		q->first = c->next;
		if (!q->first)
			q->last = NULL;
		chunk_free(c);
	}
	/* Reuse an emptied last chunk from its start. */
	if (q->first && q->first == q->last && q->first->head == q->first->tail &&
	    !q->first->release)
		q->first->head = q->first->tail = 0;
}

void rs_bq_append_lent(struct rs_bq *q, struct rs_chunk *c)
{
	c->next = NULL;
	if (q->last)
		q->last->next = c;
	else
		q->first = c;
	q->last = c;
	q->bytes += c->tail - c->head;
}

int rs_bq_iov(const struct rs_bq *q, struct iovec *iov, int max, size_t limit)
{
	int n = 0;
	for (struct rs_chunk *c = q->first; c && n < max && limit; c = c->next) {
		size_t len = c->tail - c->head;
		if (!len)
			continue;
		if (len > limit)
			len = limit;
		iov[n].iov_base = c->base + c->head;
		iov[n].iov_len = len;
		limit -= len;
		n++;
	}
	return n;
}

void rs_bq_clear(struct rs_bq *q)
{
	for (struct rs_chunk *c = q->first, *next; c; c = next) {
		next = c->next;
		chunk_free(c);
	}
	q->first = q->last = NULL;
	q->bytes = 0;
}
