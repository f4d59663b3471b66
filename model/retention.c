/*
 * Retention: what scaling or deleting a StatefulSet does to every ordinal's pod, claim, PV and
 * data, and in which order (reference/kubernetes.md 3.2 ordering, 3.5 retention table, and
 * Ordinal's ordered release). Pure functions; see model.h.
 *
 * The facts encoded:
 *  - scale-down condemns ordinals >= start + replicas; OrderedReady deletes their pods highest
 *    first, one at a time; Parallel all at once;
 *  - before deleting a condemned pod the controller sets the claim's owner references to the
 *    table's: whenScaled Delete = the pod, so the GC deletes the claim once the pod is gone; a
 *    condemned ordinal whose pod is already gone gets no new reference (its claim stays);
 *  - set deletion: the GC deletes every pod (no order) and every claim whose controller owner is
 *    the set (whenDeleted Delete) or a deleted pod; --cascade=orphan deletes no claim;
 *  - a deleted claim's PV turns Released: reclaim Delete deletes the store then the PV (ordered
 *    classes of ours: highest ordinal first, one at a time), Retain keeps both for re-adoption.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

const char *model_data_fate_name(enum model_data_fate f)
{
    static const char *const names[] = {"kept", "deleted", "retained", "new", "reused", "-"};
    return (unsigned)f < ARRAY_SIZE(names) ? names[f] : "?";
}

const char *model_pod_fate_name(enum model_pod_fate f)
{
    static const char *const names[] = {"kept", "deleted", "created", "-"};
    return (unsigned)f < ARRAY_SIZE(names) ? names[f] : "?";
}

const char *model_claim_fate_name(enum model_claim_fate f)
{
    static const char *const names[] = {"kept", "deleted", "created", "reused", "-"};
    return (unsigned)f < ARRAY_SIZE(names) ? names[f] : "?";
}

const char *model_step_kind_name(enum model_step_kind k)
{
    static const char *const names[] = {"delete pod",  "create claim", "provision volume",
                                        "create pod",  "delete claim", "release PV",
                                        "delete store"};
    return (unsigned)k < ARRAY_SIZE(names) ? names[k] : "?";
}

const char *model_policy_name(enum model_policy p)
{
    return p == MODEL_DELETE ? "Delete" : "Retain";
}

static enum model_data_fate released(enum model_policy reclaim)
{
    return reclaim == MODEL_DELETE ? MODEL_DATA_DELETED : MODEL_DATA_RETAINED;
}

enum model_data_fate model_fate_on_scale_down(const struct model_set *set,
                                              enum model_policy reclaim)
{
    return set->when_scaled == MODEL_DELETE ? released(reclaim) : MODEL_DATA_KEPT;
}

enum model_data_fate model_fate_on_delete(const struct model_set *set, enum model_policy reclaim)
{
    return set->when_deleted == MODEL_DELETE ? released(reclaim) : MODEL_DATA_KEPT;
}

static int cmp_state(const void *a, const void *b)
{
    int32_t x = ((const struct model_ordinal_state *)a)->ordinal;
    int32_t y = ((const struct model_ordinal_state *)b)->ordinal;
    return (x > y) - (x < y);
}

static int cmp_step(const void *a, const void *b)
{
    const struct model_step *x = a, *y = b;
    /* waves ascending; the index tie-break (seq) keeps emission order: qsort is not stable */
    if (x->wave != y->wave)
        return (x->wave > y->wave) - (x->wave < y->wave);
    return (x->seq_ > y->seq_) - (x->seq_ < y->seq_);
}

static void add_step(struct model_plan *p, enum model_step_kind kind, int32_t ordinal, int wave)
{
    struct model_step *s = &p->steps[p->n_steps];

    s->kind = kind;
    s->ordinal = ordinal;
    s->wave = wave;
    s->seq_ = (int)p->n_steps;
    p->n_steps++;
}

/*
 * The union of `now` and [lo, hi) (ordinals that will exist after a scale-up), sorted, into
 * st (capacity MODEL_PLAN_MAX_ORDINALS). Returns the count or -EINVAL (duplicate or negative
 * ordinal) / -E2BIG.
 */
static int gather(const struct model_ordinal_state *now, size_t n_now, int32_t lo, int32_t hi,
                  struct model_ordinal_state *st)
{
    size_t n = 0;

    if (n_now > MODEL_PLAN_MAX_ORDINALS)
        return be_error(-E2BIG, "more than %d ordinals", MODEL_PLAN_MAX_ORDINALS);
    for (size_t i = 0; i < n_now; i++) {
        if (now[i].ordinal < 0 || now[i].ordinal > MODEL_ORDINAL_MAX)
            return be_error(-EINVAL, "ordinal %d out of range", (int)now[i].ordinal);
        st[n++] = now[i];
    }
    qsort(st, n, sizeof(st[0]), cmp_state);
    for (size_t i = 1; i < n; i++)
        if (st[i].ordinal == st[i - 1].ordinal)
            return be_error(-EINVAL, "ordinal %d given twice", (int)st[i].ordinal);
    for (int32_t o = lo; o < hi; o++) {
        bool have = bsearch(&(struct model_ordinal_state){.ordinal = o}, st, n_now, sizeof(st[0]),
                            cmp_state) != NULL;
        if (have)
            continue;
        if (n == MODEL_PLAN_MAX_ORDINALS)
            return be_error(-E2BIG, "more than %d ordinals", MODEL_PLAN_MAX_ORDINALS);
        st[n++] = (struct model_ordinal_state){.ordinal = o, .ours = true};
    }
    qsort(st, n, sizeof(st[0]), cmp_state);
    return (int)n;
}

/*
 * Store deletions for every outcome whose data is DELETED, each no earlier than the wave after
 * its claim's deletion (claim_wave[i]); ordered ones highest ordinal first, one per wave.
 */
static void add_store_steps(struct model_plan *p, const struct model_ordinal_state *st,
                            const int *claim_wave)
{
    int next_ordered = 0;

    for (size_t k = p->n_outcomes; k-- > 0;) {
        int w;

        if (p->outcomes[k].data != MODEL_DATA_DELETED)
            continue;
        w = claim_wave[k] + 1;
        if (st[k].ours && st[k].ordered) {
            if (w < next_ordered)
                w = next_ordered;
            next_ordered = w + 1;
        }
        add_step(p, MODEL_STEP_DELETE_STORE, p->outcomes[k].ordinal, w);
    }
}

static void finish(struct model_plan *p)
{
    qsort(p->steps, p->n_steps, sizeof(p->steps[0]), cmp_step);
}

int model_plan_scale(const struct model_set *set, int32_t replicas,
                     const struct model_ordinal_state *now, size_t n_now, struct model_plan *ret)
{
    struct model_ordinal_state st[MODEL_PLAN_MAX_ORDINALS];
    int claim_wave[MODEL_PLAN_MAX_ORDINALS];
    int32_t lo = set->start, old_hi, new_hi;
    bool ordered_ready = set->pod_management == MODEL_ORDERED_READY;
    int n, wave, condemned = 0;

    if (replicas < 0 || replicas > MODEL_REPLICAS_MAX)
        return be_error(-EINVAL, "replicas must be in 0..%d", MODEL_REPLICAS_MAX);
    old_hi = set->start + set->replicas;
    new_hi = set->start + replicas;
    n = gather(now, n_now, old_hi < new_hi ? old_hi : new_hi, new_hi, st);
    if (n < 0)
        return n;
    memset(ret, 0, sizeof(*ret));
    ret->n_outcomes = (size_t)n;

    /* Scale-down first: condemned pods highest first. */
    wave = 0;
    for (int i = n; i-- > 0;) {
        struct model_outcome *o = &ret->outcomes[i];
        int32_t ord = st[i].ordinal;

        o->ordinal = ord;
        claim_wave[i] = 0;
        if (ord < lo || ord < new_hi)
            continue; /* handled below */
        if (!st[i].pod) {
            /* no pod to condemn: the controller adds no reference, nothing happens */
            o->pod = MODEL_POD_NONE;
            o->claim = st[i].claim ? MODEL_CLAIM_KEPT : MODEL_CLAIM_NONE;
            o->data =
                st[i].claim ? MODEL_DATA_KEPT : (st[i].pv ? MODEL_DATA_RETAINED : MODEL_DATA_NONE);
            continue;
        }
        o->pod = MODEL_POD_DELETED;
        add_step(ret, MODEL_STEP_DELETE_POD, ord, wave);
        if (st[i].claim && set->when_scaled == MODEL_DELETE) {
            o->claim = MODEL_CLAIM_DELETED;
            claim_wave[i] = wave + 1;
            add_step(ret, MODEL_STEP_DELETE_CLAIM, ord, wave + 1);
            if (st[i].pv) {
                o->data = released(st[i].reclaim);
                add_step(ret, MODEL_STEP_RELEASE_PV, ord, wave + 1);
            } else {
                o->data = MODEL_DATA_NONE;
            }
        } else {
            o->claim = st[i].claim ? MODEL_CLAIM_KEPT : MODEL_CLAIM_NONE;
            o->data = st[i].claim ? MODEL_DATA_KEPT : MODEL_DATA_NONE;
        }
        condemned++;
        if (ordered_ready)
            wave++;
    }
    if (condemned && !ordered_ready)
        wave++;

    /* Then ordinals in the new range: kept, or created ascending (scale-up). */
    for (int i = 0, up = 0; i < n; i++) {
        struct model_outcome *o = &ret->outcomes[i];
        int32_t ord = st[i].ordinal;
        bool was_replica = ord < old_hi;
        int w;

        if (ord >= new_hi)
            continue;
        if (ord < lo) {
            /* below ordinals.start: nothing touches it */
            o->pod = st[i].pod ? MODEL_POD_KEPT : MODEL_POD_NONE;
            o->claim = st[i].claim ? MODEL_CLAIM_KEPT : MODEL_CLAIM_NONE;
            o->data =
                st[i].claim ? MODEL_DATA_KEPT : (st[i].pv ? MODEL_DATA_RETAINED : MODEL_DATA_NONE);
            continue;
        }
        if (was_replica && st[i].pod) {
            o->pod = MODEL_POD_KEPT;
            o->claim = st[i].claim ? MODEL_CLAIM_KEPT : MODEL_CLAIM_CREATED;
            o->data = st[i].claim ? MODEL_DATA_KEPT : MODEL_DATA_NEW;
            if (!st[i].claim) {
                add_step(ret, MODEL_STEP_CREATE_CLAIM, ord, wave);
                add_step(ret, MODEL_STEP_PROVISION, ord, wave);
            }
            continue;
        }
        /* a pod to create (scale-up, or a replica whose pod is missing) */
        w = ordered_ready ? wave + up : wave;
        up++;
        o->pod = MODEL_POD_CREATED;
        if (st[i].claim) {
            o->claim = was_replica ? MODEL_CLAIM_KEPT : MODEL_CLAIM_REUSED;
            o->data = was_replica ? MODEL_DATA_KEPT : MODEL_DATA_REUSED;
            add_step(ret, MODEL_STEP_CREATE_POD, ord, w);
        } else {
            o->claim = MODEL_CLAIM_CREATED;
            /* a retained store of the same key is re-adopted by the new claim */
            o->data = st[i].pv ? MODEL_DATA_REUSED : MODEL_DATA_NEW;
            add_step(ret, MODEL_STEP_CREATE_CLAIM, ord, w);
            add_step(ret, MODEL_STEP_CREATE_POD, ord, w);
            if (!st[i].pv)
                add_step(ret, MODEL_STEP_PROVISION, ord,
                         (!ordered_ready && st[i].ordered) ? w + up : w);
        }
    }
    add_store_steps(ret, st, claim_wave);
    finish(ret);
    return 0;
}

/* Whether the claim of state s is deleted when its set is deleted (3.5, see the file comment). */
static bool claim_goes_with_set(const struct model_set *set, const struct model_ordinal_state *s)
{
    switch (s->owner) {
    case MODEL_OWNER_SET:
        return true;
    case MODEL_OWNER_POD:
        return s->pod;
    case MODEL_OWNER_NONE:
        return false;
    case MODEL_OWNER_UNKNOWN:
    default:
        break;
    }
    if (set->when_deleted != MODEL_DELETE)
        /* Delete/Retain: a condemned pod's ref, but the GC deletes that pod anyway */
        return s->pod && set->when_scaled == MODEL_DELETE &&
               model_range_of(set, s->ordinal) == MODEL_ABOVE;
    /* whenDeleted Delete: the set ref on replicas; on condemned ordinals too unless whenScaled
     * Delete moved it to the pod */
    if (model_range_of(set, s->ordinal) == MODEL_IN_RANGE || set->when_scaled == MODEL_RETAIN)
        return true;
    return s->pod;
}

int model_plan_delete(const struct model_set *set, bool orphan,
                      const struct model_ordinal_state *now, size_t n_now, struct model_plan *ret)
{
    struct model_ordinal_state st[MODEL_PLAN_MAX_ORDINALS];
    int claim_wave[MODEL_PLAN_MAX_ORDINALS];
    int n = gather(now, n_now, 0, 0, st);

    if (n < 0)
        return n;
    memset(ret, 0, sizeof(*ret));
    ret->n_outcomes = (size_t)n;
    for (int i = n; i-- > 0;) {
        struct model_outcome *o = &ret->outcomes[i];

        o->ordinal = st[i].ordinal;
        claim_wave[i] = 1;
        if (st[i].pod && !orphan) {
            o->pod = MODEL_POD_DELETED;
            add_step(ret, MODEL_STEP_DELETE_POD, o->ordinal, 0);
        } else {
            o->pod = st[i].pod ? MODEL_POD_KEPT : MODEL_POD_NONE;
        }
        if (!st[i].claim) {
            o->claim = MODEL_CLAIM_NONE;
            o->data = st[i].pv ? MODEL_DATA_RETAINED : MODEL_DATA_NONE;
        } else if (!orphan && claim_goes_with_set(set, &st[i])) {
            o->claim = MODEL_CLAIM_DELETED;
            add_step(ret, MODEL_STEP_DELETE_CLAIM, o->ordinal, 1);
            if (st[i].pv) {
                o->data = released(st[i].reclaim);
                add_step(ret, MODEL_STEP_RELEASE_PV, o->ordinal, 1);
            } else {
                o->data = MODEL_DATA_NONE;
            }
        } else {
            o->claim = MODEL_CLAIM_KEPT;
            o->data = MODEL_DATA_KEPT;
        }
    }
    add_store_steps(ret, st, claim_wave);
    finish(ret);
    return 0;
}
