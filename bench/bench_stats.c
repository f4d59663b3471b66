/*
 * Latency samples (see bench_stats.h). No locking: one owner per set.
 */
#include "bench_stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void lat_init(struct lat_samples *s)
{
    memset(s, 0, sizeof(*s));
}

void lat_release(struct lat_samples *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int reserve(struct lat_samples *s, size_t extra)
{
    size_t want, cap;
    uint64_t *v;

    if (extra > LAT_MAX_SAMPLES - s->n)
        return -E2BIG;
    want = s->n + extra;
    if (want <= s->cap)
        return 0;
    cap = s->cap ? s->cap : 1024;
    while (cap < want)
        cap *= 2;
    if (cap > LAT_MAX_SAMPLES)
        cap = LAT_MAX_SAMPLES;
    v = realloc(s->v, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    s->v = v;
    s->cap = cap;
    return 0;
}

int lat_add(struct lat_samples *s, uint64_t ns)
{
    int r = reserve(s, 1);

    if (r < 0) {
        s->dropped++;
        return r;
    }
    s->v[s->n++] = ns;
    return 0;
}

int lat_merge(struct lat_samples *dst, const struct lat_samples *src)
{
    size_t take = src->n;
    int r;

    if (take > LAT_MAX_SAMPLES - dst->n)
        take = LAT_MAX_SAMPLES - dst->n;
    r = reserve(dst, take);
    if (r < 0) {
        dst->dropped += src->n + src->dropped;
        return r;
    }
    if (take > 0)
        memcpy(dst->v + dst->n, src->v, take * sizeof(*src->v));
    dst->n += take;
    dst->dropped += src->dropped + (src->n - take);
    return 0;
}

uint64_t lat_percentile(const uint64_t *sorted, size_t n, double p)
{
    double rank;
    size_t k;

    if (n == 0 || !(p > 0.0))
        return 0;
    if (p >= 100.0)
        return sorted[n - 1];
    /* ceil(p/100*n), computed so that 0.99 * 100 is 99 and not 99.00000000000001 */
    rank = ceil(p * (double)n / 100.0 - 1e-9);
    k = rank < 1.0 ? 1 : (size_t)rank;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

void lat_summarize(struct lat_samples *s, struct lat_summary *ret)
{
    long double sum = 0;

    memset(ret, 0, sizeof(*ret));
    if (s->n == 0)
        return;
    qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
    for (size_t i = 0; i < s->n; i++)
        sum += s->v[i];
    ret->count = s->n;
    ret->min = s->v[0];
    ret->max = s->v[s->n - 1];
    ret->p50 = lat_percentile(s->v, s->n, 50);
    ret->p90 = lat_percentile(s->v, s->n, 90);
    ret->p99 = lat_percentile(s->v, s->n, 99);
    ret->mean = (double)(sum / (long double)s->n);
}
