/*
 * Latency samples and their summary: every sample is kept (nanoseconds, a growable array with a
 * cap), sorted once at the end, and percentiles are exact nearest-rank values, so that p99 of a
 * short run is a measured latency, not an interpolation or a histogram bucket.
 *
 * Threading: a struct lat_samples belongs to one thread while measuring; the main thread merges
 * them after joining the workers.
 */
#ifndef ORDINAL_BENCH_STATS_H
#define ORDINAL_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

/* At most this many samples per set (512 MiB of uint64_t): a longer run keeps counting
 * operations but stops recording latencies, and says so (dropped). */
#define LAT_MAX_SAMPLES ((size_t)64 << 20)

struct lat_samples {
    uint64_t *v; /* owned, n used of cap */
    size_t n, cap;
    uint64_t dropped; /* samples not kept because of LAT_MAX_SAMPLES or ENOMEM */
};

struct lat_summary {
    uint64_t count;
    uint64_t min, p50, p90, p99, max; /* nanoseconds; 0 when count == 0 */
    double mean;
};

void lat_init(struct lat_samples *s);
void lat_release(struct lat_samples *s);

/* Appends one sample; returns 0, or -ENOMEM / -E2BIG (then counted in dropped). */
int lat_add(struct lat_samples *s, uint64_t ns);

/* Appends every sample of src to dst (src unchanged); dropped counts add up. 0 or -ENOMEM. */
int lat_merge(struct lat_samples *dst, const struct lat_samples *src);

/*
 * The p-th percentile (0 < p <= 100) of n sorted values by the nearest-rank method: the
 * smallest value such that at least p% of the values are <= it, i.e. sorted[ceil(p/100*n) - 1].
 * 0 when n == 0.
 */
uint64_t lat_percentile(const uint64_t *sorted, size_t n, double p);

/* Sorts s in place and fills *ret. */
void lat_summarize(struct lat_samples *s, struct lat_summary *ret);

#endif
