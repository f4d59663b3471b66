/* The token bucket of kube_ratelimit.h; time is passed in so that tests can drive it. */
#include "kube_ratelimit.h"

#include <errno.h>

int kube_ratelimit_init(struct kube_ratelimit *rl, double qps, int burst)
{
    if (qps > 0 && burst < 1)
        return -EINVAL;
    pthread_mutex_init(&rl->mu, NULL);
    rl->qps = qps;
    rl->burst = burst < 1 ? 1 : burst;
    rl->tokens = rl->burst;
    rl->last = -1;
    return 0;
}

void kube_ratelimit_release(struct kube_ratelimit *rl)
{
    pthread_mutex_destroy(&rl->mu);
}

double kube_ratelimit_reserve(struct kube_ratelimit *rl, double now)
{
    double wait = 0;

    if (rl->qps <= 0)
        return 0;
    pthread_mutex_lock(&rl->mu);
    if (rl->last >= 0 && now > rl->last) {
        rl->tokens += (now - rl->last) * rl->qps;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
    }
    if (rl->last < 0 || now > rl->last)
        rl->last = now;
    rl->tokens -= 1;
    if (rl->tokens < 0)
        wait = -rl->tokens / rl->qps;
    pthread_mutex_unlock(&rl->mu);
    return wait;
}
