/*
 * Ordering at the storage layer (issue 11): which claim of a template may be provisioned next
 * (ordered admission) and which released stores of a set may be deleted next (ordered release,
 * highest ordinal first, one ordinal at a time). Pure functions; see model.h.
 */
#include <stdint.h>

#include "model.h"

bool model_may_admit(int32_t start, const struct model_slot *slots, size_t n, int32_t ordinal,
                     struct model_wait *ret_wait)
{
    struct model_wait w = {.blocker = -1, .phase = MODEL_PHASE_BOUND};

    /* The lowest ordinal in [start, ordinal) without a Bound claim blocks; absent ones count. */
    for (int64_t k = start; k < ordinal; k++) {
        enum model_phase ph = MODEL_PHASE_ABSENT;

        for (size_t i = 0; i < n; i++)
            if (slots[i].ordinal == k) {
                ph = slots[i].phase;
                break;
            }
        if (ph != MODEL_PHASE_BOUND) {
            w.blocker = (int32_t)k;
            w.phase = ph;
            break;
        }
    }
    if (ret_wait)
        *ret_wait = w;
    return w.blocker < 0;
}

size_t model_release_next(const struct model_release *rel, size_t n, size_t *ret, size_t cap)
{
    int64_t top = -1;
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (rel[i].state == MODEL_REL_APPROVED)
            return 0; /* one ordinal at a time: wait until that store is gone */
        if (rel[i].state == MODEL_REL_WAITING && rel[i].ordinal > top)
            top = rel[i].ordinal;
    }
    if (top < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (rel[i].ordinal == top && rel[i].in_use)
            return 0; /* still published or staged: never skip to a lower ordinal */
    for (size_t i = 0; i < n && k < cap; i++)
        if (rel[i].ordinal == top && rel[i].state == MODEL_REL_WAITING)
            ret[k++] = i;
    return k;
}
