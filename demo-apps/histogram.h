/* Log-linear latency histogram in microseconds: exact 1 us buckets below
 * 1024 us, then 128 buckets per power of two (under 1% relative error) up
 * to 2^41 us.  Fixed size, so recording never allocates. */
#ifndef DEMO_HISTOGRAM_H
#define DEMO_HISTOGRAM_H

#include <stdint.h>

#define HIST_LINEAR_LIMIT 1024
#define HIST_SUB_BITS 7
#define HIST_FIRST_POW 10
#define HIST_LAST_POW 40
#define HIST_BUCKETS (HIST_LINEAR_LIMIT + (HIST_LAST_POW - HIST_FIRST_POW + 1) * (1 << HIST_SUB_BITS))

struct histogram {
    uint64_t count;
    uint64_t max_us;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_record(struct histogram *h, uint64_t us);
void hist_merge(struct histogram *into, const struct histogram *from);
/* Smallest recorded value (bucket midpoint, capped at the maximum) that at
 * least pct percent of the samples do not exceed; 0 if empty. */
uint64_t hist_percentile(const struct histogram *h, double pct);

#endif
