/* Unit tests: model/retention.c (plans of scale and delete per the 3.5 retention table) and
 * model/order.c (ordered admission and release). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"

static struct model_set mkset(int32_t replicas, enum model_pod_management pm,
                              enum model_policy scaled, enum model_policy deleted)
{
    struct model_set s;

    memset(&s, 0, sizeof(s));
    strcpy(s.ns, "demo");
    strcpy(s.name, "web");
    s.replicas = replicas;
    s.pod_management = pm;
    s.when_scaled = scaled;
    s.when_deleted = deleted;
    s.n_templates = 1;
    strcpy(s.templates[0], "www");
    return s;
}

/* n ordinals 0..n-1, each with pod, claim and PV */
static void mkstate(struct model_ordinal_state *st, size_t n, enum model_policy reclaim,
                    bool ordered)
{
    for (size_t i = 0; i < n; i++)
        st[i] = (struct model_ordinal_state){.ordinal = (int32_t)i,
                                             .pod = true,
                                             .claim = true,
                                             .pv = true,
                                             .ordered = ordered,
                                             .ours = true,
                                             .reclaim = reclaim};
}

static struct model_plan *plan_new(void)
{
    struct model_plan *p = malloc(sizeof(*p));
    assert_non_null(p);
    return p;
}

/* index of the first step of kind k for ordinal o, or -1 */
static int step_at(const struct model_plan *p, enum model_step_kind k, int32_t o)
{
    for (size_t i = 0; i < p->n_steps; i++)
        if (p->steps[i].kind == k && p->steps[i].ordinal == o)
            return (int)i;
    return -1;
}

/* Every cell of the retention table for a scale-down 4 -> 2, both reclaim policies. */
static void test_scale_down_table(void **state)
{
    struct model_ordinal_state st[4];
    struct model_plan *p = plan_new();
    static const struct {
        enum model_policy scaled, deleted, reclaim;
        enum model_claim_fate claim;
        enum model_data_fate data;
    } cells[] = {
        {MODEL_RETAIN, MODEL_RETAIN, MODEL_DELETE, MODEL_CLAIM_KEPT, MODEL_DATA_KEPT},
        {MODEL_RETAIN, MODEL_DELETE, MODEL_DELETE, MODEL_CLAIM_KEPT, MODEL_DATA_KEPT},
        {MODEL_DELETE, MODEL_RETAIN, MODEL_DELETE, MODEL_CLAIM_DELETED, MODEL_DATA_DELETED},
        {MODEL_DELETE, MODEL_DELETE, MODEL_DELETE, MODEL_CLAIM_DELETED, MODEL_DATA_DELETED},
        {MODEL_DELETE, MODEL_RETAIN, MODEL_RETAIN, MODEL_CLAIM_DELETED, MODEL_DATA_RETAINED},
        {MODEL_DELETE, MODEL_DELETE, MODEL_RETAIN, MODEL_CLAIM_DELETED, MODEL_DATA_RETAINED},
        {MODEL_RETAIN, MODEL_RETAIN, MODEL_RETAIN, MODEL_CLAIM_KEPT, MODEL_DATA_KEPT},
    };

    (void)state;
    for (size_t c = 0; c < sizeof(cells) / sizeof(cells[0]); c++) {
        struct model_set s = mkset(4, MODEL_ORDERED_READY, cells[c].scaled, cells[c].deleted);

        mkstate(st, 4, cells[c].reclaim, false);
        assert_int_equal(model_plan_scale(&s, 2, st, 4, p), 0);
        assert_int_equal(p->n_outcomes, 4);
        for (int o = 0; o < 2; o++) {
            assert_int_equal(p->outcomes[o].pod, MODEL_POD_KEPT);
            assert_int_equal(p->outcomes[o].claim, MODEL_CLAIM_KEPT);
            assert_int_equal(p->outcomes[o].data, MODEL_DATA_KEPT);
        }
        for (int o = 2; o < 4; o++) {
            assert_int_equal(p->outcomes[o].pod, MODEL_POD_DELETED);
            assert_int_equal(p->outcomes[o].claim, cells[c].claim);
            assert_int_equal(p->outcomes[o].data, cells[c].data);
        }
        assert_int_equal(model_fate_on_scale_down(&s, cells[c].reclaim), cells[c].data);
        /* OrderedReady: pod 3 before pod 2, in separate waves */
        assert_true(step_at(p, MODEL_STEP_DELETE_POD, 3) < step_at(p, MODEL_STEP_DELETE_POD, 2));
        assert_true(p->steps[step_at(p, MODEL_STEP_DELETE_POD, 3)].wave <
                    p->steps[step_at(p, MODEL_STEP_DELETE_POD, 2)].wave);
        if (cells[c].claim == MODEL_CLAIM_DELETED) {
            /* the GC deletes a claim only after its pod */
            assert_true(step_at(p, MODEL_STEP_DELETE_CLAIM, 3) >
                        step_at(p, MODEL_STEP_DELETE_POD, 3));
            assert_true(p->steps[step_at(p, MODEL_STEP_DELETE_CLAIM, 3)].wave >
                        p->steps[step_at(p, MODEL_STEP_DELETE_POD, 3)].wave);
        } else {
            assert_int_equal(step_at(p, MODEL_STEP_DELETE_CLAIM, 3), -1);
        }
        assert_int_equal(step_at(p, MODEL_STEP_DELETE_STORE, 3) >= 0,
                         cells[c].data == MODEL_DATA_DELETED);
        assert_int_equal(step_at(p, MODEL_STEP_DELETE_POD, 1), -1);
    }
    free(p);
}

/* Every cell for deleting the set (pods in range, plus one ordinal scaled away earlier whose
 * claim was retained). */
static void test_delete_table(void **state)
{
    struct model_ordinal_state st[3];
    struct model_plan *p = plan_new();
    static const struct {
        enum model_policy scaled, deleted, reclaim;
        enum model_data_fate in_range, retained_before;
    } cells[] = {
        {MODEL_RETAIN, MODEL_RETAIN, MODEL_DELETE, MODEL_DATA_KEPT, MODEL_DATA_KEPT},
        {MODEL_DELETE, MODEL_RETAIN, MODEL_DELETE, MODEL_DATA_KEPT, MODEL_DATA_KEPT},
        {MODEL_RETAIN, MODEL_DELETE, MODEL_DELETE, MODEL_DATA_DELETED, MODEL_DATA_DELETED},
        {MODEL_RETAIN, MODEL_DELETE, MODEL_RETAIN, MODEL_DATA_RETAINED, MODEL_DATA_RETAINED},
        /* Delete/Delete: a claim left above the range carries no set ref (its pod ref went
         * with the pod): it stays */
        {MODEL_DELETE, MODEL_DELETE, MODEL_DELETE, MODEL_DATA_DELETED, MODEL_DATA_KEPT},
    };

    (void)state;
    for (size_t c = 0; c < sizeof(cells) / sizeof(cells[0]); c++) {
        struct model_set s = mkset(2, MODEL_PARALLEL, cells[c].scaled, cells[c].deleted);

        mkstate(st, 3, cells[c].reclaim, true);
        st[2].pod = false; /* ordinal 2: scaled away before, claim retained */
        assert_int_equal(model_plan_delete(&s, false, st, 3, p), 0);
        assert_int_equal(p->outcomes[0].pod, MODEL_POD_DELETED);
        assert_int_equal(p->outcomes[0].data, cells[c].in_range);
        assert_int_equal(p->outcomes[1].data, cells[c].in_range);
        assert_int_equal(p->outcomes[2].pod, MODEL_POD_NONE);
        assert_int_equal(p->outcomes[2].data, cells[c].retained_before);
        assert_int_equal(model_fate_on_delete(&s, cells[c].reclaim), cells[c].in_range);
        /* pods all at once, in the first wave */
        assert_int_equal(p->steps[step_at(p, MODEL_STEP_DELETE_POD, 0)].wave, 0);
        assert_int_equal(p->steps[step_at(p, MODEL_STEP_DELETE_POD, 1)].wave, 0);
        if (cells[c].in_range == MODEL_DATA_DELETED) {
            /* ordered class: stores highest ordinal first, one per wave */
            int a = step_at(p, MODEL_STEP_DELETE_STORE, 1),
                b = step_at(p, MODEL_STEP_DELETE_STORE, 0);
            assert_true(a >= 0 && b > a);
            assert_true(p->steps[b].wave > p->steps[a].wave);
            assert_true(p->steps[a].wave > p->steps[step_at(p, MODEL_STEP_DELETE_CLAIM, 1)].wave);
        }
    }
    /* --cascade=orphan: nothing but the set goes */
    {
        struct model_set s = mkset(2, MODEL_PARALLEL, MODEL_DELETE, MODEL_DELETE);
        mkstate(st, 2, MODEL_DELETE, false);
        assert_int_equal(model_plan_delete(&s, true, st, 2, p), 0);
        assert_int_equal(p->n_steps, 0);
        assert_int_equal(p->outcomes[0].pod, MODEL_POD_KEPT);
        assert_int_equal(p->outcomes[0].data, MODEL_DATA_KEPT);
    }
    /* the real owner reference wins over the policy */
    {
        struct model_set s = mkset(2, MODEL_PARALLEL, MODEL_RETAIN, MODEL_DELETE);
        mkstate(st, 2, MODEL_DELETE, false);
        st[1].owner = MODEL_OWNER_NONE;
        assert_int_equal(model_plan_delete(&s, false, st, 2, p), 0);
        assert_int_equal(p->outcomes[0].data, MODEL_DATA_DELETED);
        assert_int_equal(p->outcomes[1].data, MODEL_DATA_KEPT);
    }
    free(p);
}

static void test_parallel_unordered_release_together(void **state)
{
    struct model_ordinal_state st[4];
    struct model_plan *p = plan_new();
    struct model_set s = mkset(4, MODEL_PARALLEL, MODEL_DELETE, MODEL_RETAIN);

    (void)state;
    mkstate(st, 4, MODEL_DELETE, false);
    assert_int_equal(model_plan_scale(&s, 1, st, 4, p), 0);
    for (int o = 1; o < 4; o++) {
        assert_int_equal(p->steps[step_at(p, MODEL_STEP_DELETE_POD, o)].wave, 0);
        assert_int_equal(p->steps[step_at(p, MODEL_STEP_DELETE_STORE, o)].wave, 2);
    }
    /* the same with an ordered class: 3, then 2, then 1 */
    mkstate(st, 4, MODEL_DELETE, true);
    assert_int_equal(model_plan_scale(&s, 1, st, 4, p), 0);
    assert_int_equal(p->steps[step_at(p, MODEL_STEP_DELETE_STORE, 3)].wave, 2);
    assert_int_equal(p->steps[step_at(p, MODEL_STEP_DELETE_STORE, 2)].wave, 3);
    assert_int_equal(p->steps[step_at(p, MODEL_STEP_DELETE_STORE, 1)].wave, 4);
    free(p);
}

static void test_scale_up_reuses_retained(void **state)
{
    struct model_ordinal_state st[4];
    struct model_plan *p = plan_new();
    struct model_set s = mkset(1, MODEL_ORDERED_READY, MODEL_RETAIN, MODEL_RETAIN);

    (void)state;
    mkstate(st, 3, MODEL_RETAIN, false);
    st[1].pod = false; /* claim retained from an earlier scale-down */
    st[2].pod = false;
    st[2].claim = false; /* claim deleted, PV Released and retained */
    assert_int_equal(model_plan_scale(&s, 4, st, 3, p), 0);
    assert_int_equal(p->n_outcomes, 4);
    assert_int_equal(p->outcomes[0].pod, MODEL_POD_KEPT);
    assert_int_equal(p->outcomes[1].claim, MODEL_CLAIM_REUSED);
    assert_int_equal(p->outcomes[1].data, MODEL_DATA_REUSED);
    assert_int_equal(p->outcomes[2].claim, MODEL_CLAIM_CREATED);
    assert_int_equal(p->outcomes[2].data, MODEL_DATA_REUSED);
    assert_int_equal(p->outcomes[3].claim, MODEL_CLAIM_CREATED);
    assert_int_equal(p->outcomes[3].data, MODEL_DATA_NEW);
    assert_int_equal(step_at(p, MODEL_STEP_PROVISION, 2), -1);
    assert_true(step_at(p, MODEL_STEP_PROVISION, 3) >= 0);
    /* ascending, one ordinal per wave */
    assert_true(step_at(p, MODEL_STEP_CREATE_POD, 1) < step_at(p, MODEL_STEP_CREATE_POD, 2));
    assert_true(p->steps[step_at(p, MODEL_STEP_CREATE_POD, 2)].wave <
                p->steps[step_at(p, MODEL_STEP_CREATE_POD, 3)].wave);
    free(p);
}

static void test_scale_down_without_pod_leaves_claim(void **state)
{
    struct model_ordinal_state st[3];
    struct model_plan *p = plan_new();
    struct model_set s = mkset(3, MODEL_ORDERED_READY, MODEL_DELETE, MODEL_RETAIN);

    (void)state;
    mkstate(st, 3, MODEL_DELETE, false);
    st[2].pod = false; /* no pod to condemn: the controller sets no owner ref */
    assert_int_equal(model_plan_scale(&s, 1, st, 3, p), 0);
    assert_int_equal(p->outcomes[2].claim, MODEL_CLAIM_KEPT);
    assert_int_equal(p->outcomes[1].claim, MODEL_CLAIM_DELETED);
    free(p);
}

static void test_plan_bad_input(void **state)
{
    struct model_ordinal_state st[2];
    struct model_plan *p = plan_new();
    struct model_set s = mkset(2, MODEL_ORDERED_READY, MODEL_RETAIN, MODEL_RETAIN);

    (void)state;
    mkstate(st, 2, MODEL_DELETE, false);
    assert_int_equal(model_plan_scale(&s, -1, st, 2, p), -EINVAL);
    assert_int_equal(model_plan_scale(&s, MODEL_REPLICAS_MAX + 1, st, 2, p), -EINVAL);
    st[1].ordinal = 0;
    assert_int_equal(model_plan_scale(&s, 1, st, 2, p), -EINVAL);
    assert_int_equal(model_plan_delete(&s, false, st, 2, p), -EINVAL);
    assert_int_equal(model_plan_scale(&s, 1, st, MODEL_PLAN_MAX_ORDINALS + 1, p), -E2BIG);
    /* scale-up beyond the plan's capacity */
    assert_int_equal(model_plan_scale(&s, MODEL_PLAN_MAX_ORDINALS + 5, st, 1, p), -E2BIG);
    free(p);
}

static void test_admission(void **state)
{
    struct model_slot sl[] = {{3, MODEL_PHASE_BOUND},
                              {4, MODEL_PHASE_PENDING},
                              {5, MODEL_PHASE_PENDING},
                              {1, MODEL_PHASE_PENDING}};
    struct model_wait w;

    (void)state;
    /* start 3: ordinal 1 is below the range and waits for nothing */
    assert_true(model_may_admit(3, sl, 4, 3, &w));
    assert_true(model_may_admit(3, sl, 4, 4, &w));
    assert_false(model_may_admit(3, sl, 4, 5, &w));
    assert_int_equal(w.blocker, 4);
    assert_int_equal(w.phase, MODEL_PHASE_PENDING);
    assert_true(model_may_admit(3, sl, 4, 1, NULL));
    /* start 0: ordinal 0 has no claim at all and blocks */
    assert_false(model_may_admit(0, sl, 4, 3, &w));
    assert_int_equal(w.blocker, 0);
    assert_int_equal(w.phase, MODEL_PHASE_ABSENT);
    sl[0].phase = MODEL_PHASE_LOST;
    assert_false(model_may_admit(3, sl, 4, 4, &w));
    assert_int_equal(w.phase, MODEL_PHASE_LOST);
}

static void test_release_order(void **state)
{
    struct model_release r[] = {{1, MODEL_REL_WAITING, false},
                                {3, MODEL_REL_WAITING, false},
                                {2, MODEL_REL_WAITING, false},
                                {3, MODEL_REL_WAITING, false}};
    size_t out[4];

    (void)state;
    /* both templates' ordinal 3 first */
    assert_int_equal(model_release_next(r, 4, out, 4), 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    assert_int_equal(model_release_next(r, 4, out, 1), 1);
    /* in progress: nothing else */
    r[1].state = MODEL_REL_APPROVED;
    assert_int_equal(model_release_next(r, 4, out, 4), 0);
    /* ordinal 3 done (removed from the list): 2 next, unless still in use */
    r[1] = r[0];
    r[3] = r[0];
    r[2].in_use = true;
    assert_int_equal(model_release_next(r, 4, out, 4), 0);
    r[2].in_use = false;
    assert_int_equal(model_release_next(r, 4, out, 4), 1);
    assert_int_equal(out[0], 2);
    assert_int_equal(model_release_next(r, 0, out, 4), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(model_data_fate_name(MODEL_DATA_RETAINED), "retained");
    assert_string_equal(model_data_fate_name((enum model_data_fate)99), "?");
    assert_string_equal(model_step_kind_name(MODEL_STEP_DELETE_STORE), "delete store");
    assert_string_equal(model_policy_name(MODEL_DELETE), "Delete");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scale_down_table),
        cmocka_unit_test(test_delete_table),
        cmocka_unit_test(test_parallel_unordered_release_together),
        cmocka_unit_test(test_scale_up_reuses_retained),
        cmocka_unit_test(test_scale_down_without_pod_leaves_claim),
        cmocka_unit_test(test_plan_bad_input),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_release_order),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
