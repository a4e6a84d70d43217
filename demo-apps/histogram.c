#include "histogram.h"

static unsigned bucket_of(uint64_t us)
{
    if (us < HIST_LINEAR_LIMIT)
        return (unsigned)us;
    unsigned pow = 63 - (unsigned)__builtin_clzll(us);
    if (pow > HIST_LAST_POW)
        return HIST_BUCKETS - 1;
    unsigned sub = (unsigned)(us >> (pow - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
    return HIST_LINEAR_LIMIT + ((pow - HIST_FIRST_POW) << HIST_SUB_BITS) + sub;
}

static uint64_t bucket_midpoint(unsigned bucket)
{
    if (bucket < HIST_LINEAR_LIMIT)
        return bucket;
    unsigned pow = HIST_FIRST_POW + ((bucket - HIST_LINEAR_LIMIT) >> HIST_SUB_BITS);
    uint64_t sub = (bucket - HIST_LINEAR_LIMIT) & ((1u << HIST_SUB_BITS) - 1);
    uint64_t width = 1ull << (pow - HIST_SUB_BITS);
    return ((1ull << HIST_SUB_BITS) + sub) * width + width / 2;
}

void hist_record(struct histogram *h, uint64_t us)
{
    h->buckets[bucket_of(us)]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

void hist_merge(struct histogram *into, const struct histogram *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
}

uint64_t hist_percentile(const struct histogram *h, double pct)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(pct / 100.0 * (double)h->count);
    if ((double)rank < pct / 100.0 * (double)h->count || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bucket_midpoint(i);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}
