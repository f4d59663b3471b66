/*
 * Client-side rate limit of API requests: a token bucket of `burst` tokens refilled at `qps`
 * tokens per second (client-go's flowcontrol.NewTokenBucketRateLimiter). A request that finds the
 * bucket empty reserves a future token and waits for it, so waiters are served in order.
 *
 * Threading: kube_ratelimit_reserve() locks the limiter's own mutex (a leaf lock).
 */
#ifndef ORDINAL_KUBE_RATELIMIT_H
#define ORDINAL_KUBE_RATELIMIT_H

#include <pthread.h>

struct kube_ratelimit {
    pthread_mutex_t mu;
    double qps;    /* <= 0: unlimited */
    double burst;  /* >= 1 */
    double tokens; /* may go negative: tokens reserved ahead */
    double last;   /* clock of the last refill; < 0 before the first request */
};

/* 0 or -EINVAL (burst < 1 with qps > 0). */
int kube_ratelimit_init(struct kube_ratelimit *rl, double qps, int burst);
void kube_ratelimit_release(struct kube_ratelimit *rl);
/* Take one token at time now (seconds, any monotonic clock); returns how many seconds the caller
 * must wait before sending (0 = at once). */
double kube_ratelimit_reserve(struct kube_ratelimit *rl, double now);

#endif
