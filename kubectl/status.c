/*
 * kubectl ordinal status and plan: per-ordinal rows (cluster.c) through the ordinal model
 * (model/), printed as a table or JSON. Only GET and LIST requests: nothing is changed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "table.h"
#include "util.h"
#include "verbs.h"

int kctl_cluster_error(int r, const struct kube_status *st, const char *what)
{
    if (st && st->http && st->http != 200)
        fprintf(stderr, "Error from server (%s): %s\n", st->reason[0] ? st->reason : "Unknown",
                st->message[0] ? st->message : strerror(-r));
    else
        fprintf(stderr, "error: %s: %s\n", what, st && st->message[0] ? st->message : strerror(-r));
    return 1;
}

static void print_json(cJSON *j)
{
    char *s = cJSON_Print(j);

    if (s) {
        puts(s);
        free(s);
    }
}

/* The set(s) to show: one by name, or every set of the namespace (NULL = all). */
static int load_sets(const struct kctl_ctx *c, const char *ns, cJSON **ret_list)
{
    struct kube_status st;
    int r;

    if (c->args->name) {
        cJSON *obj = NULL, *list, *arr;

        r = kube_get(c->client, &kube_statefulsets, ns, c->args->name, &obj, &st);
        if (r < 0)
            return kctl_cluster_error(r, &st, "getting the StatefulSet");
        list = cJSON_CreateObject();
        arr = cJSON_AddArrayToObject(list, "items");
        if (!list || !arr) {
            cJSON_Delete(list);
            cJSON_Delete(obj);
            return kctl_cluster_error(-ENOMEM, NULL, "memory");
        }
        cJSON_AddItemToArray(arr, obj);
        *ret_list = list;
        return 0;
    }
    r = kube_list_all(c->client, &kube_statefulsets, ns, NULL, ret_list, &st);
    if (r < 0)
        return kctl_cluster_error(r, &st, "listing StatefulSets");
    return 0;
}

static const char *size_of(const struct kctl_row *r, char *buf, size_t n)
{
    const char *s = kctl_str(r->pvc, "status.capacity.storage");
    const cJSON *cap;

    if (!s)
        s = kctl_str(r->pv, "spec.capacity.storage");
    if (!s)
        s = kctl_str(r->pvc, "spec.resources.requests.storage");
    if (s)
        return s;
    cap = kctl_get(r->ov, "spec.capacityBytes");
    if (cJSON_IsNumber(cap)) {
        kctl_bytes(cap->valuedouble, buf, n);
        return buf;
    }
    return "-";
}

static const char *used_of(const struct kctl_row *r, char *buf, size_t n)
{
    const cJSON *u = kctl_get(r->ov, "status.usedBytes");

    if (!cJSON_IsNumber(u))
        return "-";
    kctl_bytes(u->valuedouble, buf, n);
    return buf;
}

static const char *node_of(const struct kctl_row *r)
{
    const char *n = kctl_str(r->pod, "spec.nodeName");
    const cJSON *ann;

    if (!n)
        n = kctl_str(r->ov, "spec.node");
    ann = kctl_get(r->pvc, "metadata.annotations");
    if (!n && cJSON_IsObject(ann)) {
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(ann, "volume.kubernetes.io/selected-node");
        if (cJSON_IsString(v))
            n = v->valuestring;
    }
    return n ? n : "-";
}

/* What happens to the row's data when its ordinal is scaled away. */
static const char *fate_scale_down(const struct model_set *set, const struct kctl_row *r)
{
    if (!r->pvc)
        return r->st.pv ? "retained" : "-";
    if (r->range != MODEL_IN_RANGE && !r->pod)
        return "kept"; /* already scaled away: no pod to condemn, the claim stays */
    return model_data_fate_name(model_fate_on_scale_down(set, r->st.reclaim));
}

static const char *fate_delete(const struct kctl_row *r, const struct model_plan *p)
{
    for (size_t i = 0; i < p->n_outcomes; i++)
        if (p->outcomes[i].ordinal == r->ordinal)
            return model_data_fate_name(p->outcomes[i].data);
    return "-";
}

static const char *range_name(enum model_range r)
{
    return r == MODEL_IN_RANGE ? "replica" : r == MODEL_ABOVE ? "scaled-down" : "below-start";
}

/* The delete plan of template t (for the SET-DELETE column). */
static int delete_plan(const struct model_set *set, const struct kctl_row *rows, size_t n, size_t t,
                       struct model_plan *p)
{
    struct model_ordinal_state st[MODEL_PLAN_MAX_ORDINALS];
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (rows[i].tmpl == t)
            st[k++] = rows[i].st;
    return model_plan_delete(set, false, st, k, p);
}

struct status_out {
    struct kctl_table table;
    cJSON *items; /* JSON output: borrowed from the top object */
    bool wide, all_ns;
};

static int status_set(const struct kctl_ctx *c, const struct model_set *set,
                      const struct kctl_snap *snap, struct status_out *out)
{
    _cleanup_free_ struct kctl_row *rows = NULL;
    _cleanup_free_ struct model_plan *plans = NULL;
    size_t n;
    int r;

    (void)c;
    r = kctl_rows(set, snap, &rows, &n);
    if (r < 0)
        return r;
    plans = calloc(set->n_templates ? set->n_templates : 1, sizeof(*plans));
    if (!plans)
        return -ENOMEM;
    for (size_t t = 0; t < set->n_templates; t++)
        if ((r = delete_plan(set, rows, n, t, &plans[t])) < 0)
            return r;
    for (size_t i = 0; i < n; i++) {
        const struct kctl_row *w = &rows[i];
        char ord[16], size[32], used[32], ev[600] = "-";
        const char *phase = w->pvc ? kctl_str(w->pvc, "status.phase") : NULL;
        const char *reclaim = w->reclaim_known ? model_policy_name(w->st.reclaim) : "-";
        const char *down = fate_scale_down(set, w), *del = fate_delete(w, &plans[w->tmpl]);
        const char *pv = w->pv ? kctl_str(w->pv, "metadata.name") : NULL;
        const char *store = kctl_str(w->ov, "spec.store");

        snprintf(ord, sizeof(ord), "%d", (int)w->ordinal);
        if (!w->pvc)
            phase = w->st.pv ? "(deleted)" : "-";
        if (w->event)
            kctl_event_text(w->event, ev, sizeof(ev));
        if (out->items) {
            cJSON *o = cJSON_CreateObject();
            if (!o)
                return -ENOMEM;
            cJSON_AddItemToArray(out->items, o);
            cJSON_AddStringToObject(o, "namespace", set->ns);
            cJSON_AddStringToObject(o, "statefulSet", set->name);
            cJSON_AddStringToObject(o, "template", set->templates[w->tmpl]);
            cJSON_AddNumberToObject(o, "ordinal", w->ordinal);
            cJSON_AddStringToObject(o, "range", range_name(w->range));
            if (w->pod) {
                cJSON *p = cJSON_AddObjectToObject(o, "pod");
                cJSON_AddStringToObject(p, "name", w->pod_name);
                cJSON_AddStringToObject(p, "ready", kctl_pod_ready(w->pod));
            } else {
                cJSON_AddNullToObject(o, "pod");
            }
            cJSON_AddStringToObject(o, "node", node_of(w));
            {
                cJSON *cl = cJSON_AddObjectToObject(o, "claim");
                cJSON_AddStringToObject(cl, "name", w->claim_name);
                cJSON_AddBoolToObject(cl, "exists", w->pvc != NULL);
                cJSON_AddStringToObject(cl, "phase", phase ? phase : "");
            }
            cJSON_AddStringToObject(o, "persistentVolume", pv ? pv : "");
            cJSON_AddStringToObject(o, "reclaimPolicy", w->reclaim_known ? reclaim : "");
            cJSON_AddStringToObject(o, "storageClass",
                                    w->sc ? kctl_str(w->sc, "metadata.name") : "");
            cJSON_AddBoolToObject(o, "orderedClass", w->st.ordered);
            cJSON_AddStringToObject(o, "store", store ? store : "");
            cJSON_AddStringToObject(o, "ordinalVolume",
                                    w->ov ? kctl_str(w->ov, "metadata.name") : "");
            cJSON_AddStringToObject(o, "size", size_of(w, size, sizeof(size)));
            {
                const cJSON *u = kctl_get(w->ov, "status.usedBytes");
                if (cJSON_IsNumber(u))
                    cJSON_AddNumberToObject(o, "usedBytes", u->valuedouble);
                else
                    cJSON_AddNullToObject(o, "usedBytes");
            }
            cJSON_AddStringToObject(o, "whenScaled", model_policy_name(set->when_scaled));
            cJSON_AddStringToObject(o, "whenDeleted", model_policy_name(set->when_deleted));
            cJSON_AddStringToObject(o, "onScaleDown", down);
            cJSON_AddStringToObject(o, "onSetDelete", del);
            cJSON_AddStringToObject(o, "lastEvent", w->event ? ev : "");
            continue;
        }
        {
            const char *cells[KCTL_TABLE_MAX_COLS];
            size_t k = 0;

            if (out->all_ns)
                cells[k++] = set->ns;
            cells[k++] = set->name;
            cells[k++] = ord;
            cells[k++] = w->pod ? w->pod_name : "-";
            cells[k++] = w->pod ? kctl_pod_ready(w->pod) : "-";
            cells[k++] = node_of(w);
            cells[k++] = w->claim_name;
            cells[k++] = phase;
            cells[k++] = reclaim;
            cells[k++] = size_of(w, size, sizeof(size));
            cells[k++] = used_of(w, used, sizeof(used));
            cells[k++] = down;
            cells[k++] = del;
            if (out->wide) {
                cells[k++] = pv;
                cells[k++] = store;
                cells[k++] = model_policy_name(set->when_scaled);
                cells[k++] = model_policy_name(set->when_deleted);
                cells[k++] = ev;
            }
            if ((r = kctl_table_add(&out->table, cells)) < 0)
                return r;
        }
    }
    return 0;
}

int kctl_status(const struct kctl_ctx *c)
{
    const char *ns = c->args->all_namespaces ? NULL : c->ns;
    struct status_out out = {.wide = c->args->output == KCTL_OUT_WIDE,
                             .all_ns = c->args->all_namespaces};
    struct kctl_snap snap;
    struct kube_status st;
    cJSON *sets = NULL, *top = NULL;
    const cJSON *items;
    size_t nsets = 0;
    int r, rc = 1;

    if ((r = load_sets(c, ns, &sets)) != 0)
        return r;
    r = kctl_snap_load(c->client, ns, &snap, &st);
    if (r < 0) {
        cJSON_Delete(sets);
        return kctl_cluster_error(r, &st, "reading the cluster");
    }
    if (c->args->output == KCTL_OUT_JSON) {
        top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "apiVersion", "ordinal.csi.dev/v1alpha1");
        cJSON_AddStringToObject(top, "kind", "OrdinalStatusList");
        out.items = cJSON_AddArrayToObject(top, "items");
        if (!out.items) {
            r = -ENOMEM;
            goto out;
        }
    } else {
        const char *h[KCTL_TABLE_MAX_COLS + 1];
        size_t k = 0;
        static const char *const base[] = {"SET",  "ORDINAL", "POD",        "READY",
                                           "NODE", "CLAIM",   "PHASE",      "RECLAIM",
                                           "SIZE", "USED",    "SCALE-DOWN", "SET-DELETE"};
        static const char *const wide[] = {"PV", "STORE", "WHEN-SCALED", "WHEN-DELETED",
                                           "LAST-EVENT"};
        if (out.all_ns)
            h[k++] = "NAMESPACE";
        for (size_t i = 0; i < ARRAY_SIZE(base); i++)
            h[k++] = base[i];
        for (size_t i = 0; out.wide && i < ARRAY_SIZE(wide); i++)
            h[k++] = wide[i];
        h[k] = NULL;
        if ((r = kctl_table_init(&out.table, h)) < 0)
            goto out;
    }
    items = kctl_get(sets, "items");
    for (const cJSON *s = cJSON_IsArray(items) ? items->child : NULL; s; s = s->next) {
        struct model_set set;

        if (model_set_from_json(s, &set) < 0) {
            fprintf(stderr, "warning: skipping StatefulSet %s: %s\n",
                    kctl_str(s, "metadata.name") ? kctl_str(s, "metadata.name") : "?",
                    be_last_error());
            continue;
        }
        if ((r = status_set(c, &set, &snap, &out)) < 0) {
            fprintf(stderr, "error: StatefulSet %s/%s: %s\n", set.ns, set.name,
                    r == -E2BIG ? "more ordinals than kubectl-ordinal shows (1024)" : strerror(-r));
            goto out;
        }
        nsets++;
    }
    if (top) {
        print_json(top);
    } else if (nsets == 0) {
        if (ns)
            fprintf(stderr, "No StatefulSets found in %s namespace.\n", ns);
        else
            fprintf(stderr, "No StatefulSets found.\n");
    } else {
        kctl_table_print(&out.table, stdout);
        if (!snap.have_ovs)
            fprintf(stderr, "note: the OrdinalVolume API is not served (CRD not installed): "
                            "no store or used bytes shown\n");
    }
    rc = 0;
out:
    if (r < 0 && rc)
        fprintf(stderr, "error: %s\n", strerror(-r));
    if (!top)
        kctl_table_release(&out.table);
    cJSON_Delete(top);
    cJSON_Delete(sets);
    kctl_snap_release(&snap);
    return rc;
}

/* ---- plan ---- */

static const char *pv_of(const struct kctl_row *rows, size_t n, size_t t, int32_t ord)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].tmpl == t && rows[i].ordinal == ord && rows[i].pv)
            return kctl_str(rows[i].pv, "metadata.name");
    return NULL;
}

static const struct kctl_row *row_of(const struct kctl_row *rows, size_t n, size_t t, int32_t ord)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].tmpl == t && rows[i].ordinal == ord)
            return &rows[i];
    return NULL;
}

/* One step as a sentence. */
static void step_text(const struct model_set *set, bool deleting, const struct kctl_row *rows,
                      size_t nrows, size_t t, const struct model_step *s, char *buf, size_t n)
{
    char claim[MODEL_NAME_MAX + 1] = "?";
    const char *pv = pv_of(rows, nrows, t, s->ordinal);
    const struct kctl_row *row = row_of(rows, nrows, t, s->ordinal);
    bool ordered = row && row->st.ordered && row->st.ours;

    model_claim_name(claim, sizeof(claim), set, t, s->ordinal);
    switch (s->kind) {
    case MODEL_STEP_DELETE_POD:
        snprintf(buf, n, "delete pod %s-%d (%s)", set->name, (int)s->ordinal,
                 deleting ? "garbage collector" : "StatefulSet controller");
        break;
    case MODEL_STEP_CREATE_CLAIM:
        snprintf(buf, n, "create claim %s (StatefulSet controller)", claim);
        break;
    case MODEL_STEP_PROVISION:
        snprintf(buf, n, "provision a new volume for %s%s", claim,
                 ordered ? " (ordered class: after the lower ordinals are Bound)" : "");
        break;
    case MODEL_STEP_CREATE_POD:
        snprintf(buf, n, "create pod %s-%d (StatefulSet controller)", set->name, (int)s->ordinal);
        break;
    case MODEL_STEP_DELETE_CLAIM:
        snprintf(buf, n, "delete claim %s (garbage collector, once pod %s-%d is gone)", claim,
                 set->name, (int)s->ordinal);
        break;
    case MODEL_STEP_RELEASE_PV:
        snprintf(buf, n, "PV %s turns Released (reclaim %s%s)", pv ? pv : "?",
                 row ? model_policy_name(row->st.reclaim) : "?",
                 row && row->st.reclaim == MODEL_RETAIN
                     ? ": PV and data kept for re-adoption by a new claim of the same name"
                     : "");
        break;
    case MODEL_STEP_DELETE_STORE:
        snprintf(buf, n, "delete the store of %s, then PV %s (%s%s)", claim, pv ? pv : "?",
                 row && row->st.ours ? "node plugin" : "the volume's provisioner",
                 ordered ? ", ordered release: highest ordinal first" : "");
        break;
    }
}

struct merged_step {
    struct model_step s;
    size_t tmpl;
    size_t seq;
};

static int cmp_merged(const void *a, const void *b)
{
    const struct merged_step *x = a, *y = b;
    if (x->s.wave != y->s.wave)
        return (x->s.wave > y->s.wave) - (x->s.wave < y->s.wave);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

int kctl_plan(const struct kctl_ctx *c)
{
    const struct kctl_args *a = c->args;
    bool deleting = a->verb == KCTL_PLAN_DELETE;
    _cleanup_free_ struct kctl_row *rows = NULL;
    _cleanup_free_ struct model_plan *plans = NULL;
    _cleanup_free_ struct merged_step *steps = NULL;
    struct model_ordinal_state st[MODEL_PLAN_MAX_ORDINALS];
    struct kctl_snap snap = {0};
    struct kube_status kst;
    struct model_set set;
    struct kctl_table table = {0};
    cJSON *obj = NULL, *top = NULL, *jo = NULL, *js = NULL;
    size_t nrows = 0, nsteps = 0;
    int r, rc = 1;

    r = kube_get(c->client, &kube_statefulsets, c->ns, a->name, &obj, &kst);
    if (r < 0)
        return kctl_cluster_error(r, &kst, "getting the StatefulSet");
    if (model_set_from_json(obj, &set) < 0) {
        fprintf(stderr, "error: StatefulSet %s/%s: %s\n", c->ns, a->name, be_last_error());
        goto out;
    }
    r = kctl_snap_load(c->client, c->ns, &snap, &kst);
    if (r < 0) {
        rc = kctl_cluster_error(r, &kst, "reading the cluster");
        goto out;
    }
    if ((r = kctl_rows(&set, &snap, &rows, &nrows)) < 0)
        goto fail;
    plans = calloc(set.n_templates ? set.n_templates : 1, sizeof(*plans));
    steps = calloc(MODEL_PLAN_MAX_STEPS * (set.n_templates ? set.n_templates : 1), sizeof(*steps));
    if (!plans || !steps) {
        r = -ENOMEM;
        goto fail;
    }
    for (size_t t = 0; t < set.n_templates; t++) {
        size_t k = 0;
        for (size_t i = 0; i < nrows; i++)
            if (rows[i].tmpl == t)
                st[k++] = rows[i].st;
        r = deleting ? model_plan_delete(&set, a->cascade_orphan, st, k, &plans[t])
                     : model_plan_scale(&set, (int32_t)a->replicas, st, k, &plans[t]);
        if (r < 0) {
            fprintf(stderr, "error: %s\n", be_last_error());
            goto out;
        }
        for (size_t i = 0; i < plans[t].n_steps; i++) {
            const struct model_step *s = &plans[t].steps[i];
            /* pods are per ordinal, not per template: list them once */
            if (t > 0 && (s->kind == MODEL_STEP_DELETE_POD || s->kind == MODEL_STEP_CREATE_POD))
                continue;
            steps[nsteps] = (struct merged_step){*s, t, nsteps};
            nsteps++;
        }
    }
    qsort(steps, nsteps, sizeof(steps[0]), cmp_merged);

    if (a->output == KCTL_OUT_JSON) {
        top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "apiVersion", "ordinal.csi.dev/v1alpha1");
        cJSON_AddStringToObject(top, "kind", "OrdinalPlan");
        cJSON_AddStringToObject(top, "action", deleting ? "delete" : "scale");
        cJSON_AddStringToObject(top, "namespace", set.ns);
        cJSON_AddStringToObject(top, "statefulSet", set.name);
        cJSON_AddNumberToObject(top, "replicas", set.replicas);
        if (!deleting)
            cJSON_AddNumberToObject(top, "targetReplicas", (double)a->replicas);
        else
            cJSON_AddStringToObject(top, "cascade", a->cascade_orphan ? "orphan" : "background");
        cJSON_AddStringToObject(top, "podManagementPolicy",
                                set.pod_management == MODEL_PARALLEL ? "Parallel" : "OrderedReady");
        cJSON_AddStringToObject(top, "whenScaled", model_policy_name(set.when_scaled));
        cJSON_AddStringToObject(top, "whenDeleted", model_policy_name(set.when_deleted));
        jo = cJSON_AddArrayToObject(top, "ordinals");
        js = cJSON_AddArrayToObject(top, "steps");
        if (!jo || !js) {
            r = -ENOMEM;
            goto fail;
        }
    } else {
        static const char *const h[] = {"ORDINAL", "CLAIM",   "POD",  "CLAIM-FATE",
                                        "PV",      "RECLAIM", "DATA", NULL};
        if ((r = kctl_table_init(&table, h)) < 0)
            goto fail;
    }
    for (size_t t = 0; t < set.n_templates; t++)
        for (size_t i = 0; i < plans[t].n_outcomes; i++) {
            const struct model_outcome *o = &plans[t].outcomes[i];
            const struct kctl_row *row = row_of(rows, nrows, t, o->ordinal);
            const char *pv = pv_of(rows, nrows, t, o->ordinal);
            const char *reclaim =
                row && row->reclaim_known ? model_policy_name(row->st.reclaim) : "-";
            char claim[MODEL_NAME_MAX + 1] = "?", ord[16];

            model_claim_name(claim, sizeof(claim), &set, t, o->ordinal);
            snprintf(ord, sizeof(ord), "%d", (int)o->ordinal);
            if (jo) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddItemToArray(jo, x);
                cJSON_AddNumberToObject(x, "ordinal", o->ordinal);
                cJSON_AddStringToObject(x, "template", set.templates[t]);
                cJSON_AddStringToObject(x, "claim", claim);
                cJSON_AddStringToObject(x, "pod", model_pod_fate_name(o->pod));
                cJSON_AddStringToObject(x, "claimFate", model_claim_fate_name(o->claim));
                cJSON_AddStringToObject(x, "persistentVolume", pv ? pv : "");
                cJSON_AddStringToObject(x, "reclaimPolicy",
                                        row && row->reclaim_known ? reclaim : "");
                cJSON_AddStringToObject(x, "data", model_data_fate_name(o->data));
            } else {
                const char *cells[] = {
                    ord, claim,   model_pod_fate_name(o->pod),  model_claim_fate_name(o->claim),
                    pv,  reclaim, model_data_fate_name(o->data)};
                if ((r = kctl_table_add(&table, cells)) < 0)
                    goto fail;
            }
        }
    if (!jo) {
        if (deleting)
            printf("Plan: delete statefulset %s/%s (%s; whenDeleted=%s, whenScaled=%s).\n", set.ns,
                   set.name, a->cascade_orphan ? "--cascade=orphan" : "cascade background",
                   model_policy_name(set.when_deleted), model_policy_name(set.when_scaled));
        else
            printf("Plan: scale statefulset %s/%s from %d to %ld replicas (%s; whenScaled=%s, "
                   "whenDeleted=%s).\n",
                   set.ns, set.name, (int)set.replicas, a->replicas,
                   set.pod_management == MODEL_PARALLEL ? "Parallel" : "OrderedReady",
                   model_policy_name(set.when_scaled), model_policy_name(set.when_deleted));
        printf("Nothing has been changed.\n\n");
        kctl_table_print(&table, stdout);
        printf("\n");
        if (nsteps == 0)
            printf("Nothing would happen.\n");
        else
            printf("In order (steps of one number may happen together):\n");
    }
    for (size_t i = 0, num = 0; i < nsteps; i++) {
        char text[700];

        if (i == 0 || steps[i].s.wave != steps[i - 1].s.wave)
            num++;
        step_text(&set, deleting, rows, nrows, steps[i].tmpl, &steps[i].s, text, sizeof(text));
        if (js) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(js, x);
            cJSON_AddNumberToObject(x, "step", (double)num);
            cJSON_AddStringToObject(x, "action", model_step_kind_name(steps[i].s.kind));
            cJSON_AddNumberToObject(x, "ordinal", steps[i].s.ordinal);
            cJSON_AddStringToObject(x, "template", set.templates[steps[i].tmpl]);
            cJSON_AddStringToObject(x, "description", text);
        } else {
            if (i == 0 || steps[i].s.wave != steps[i - 1].s.wave)
                printf("%3zu. %s\n", num, text);
            else
                printf("     %s\n", text);
        }
    }
    if (top)
        print_json(top);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "error: %s\n",
            r == -E2BIG ? "more ordinals than kubectl-ordinal plans (1024)" : strerror(-r));
out:
    if (table.cells)
        kctl_table_release(&table);
    cJSON_Delete(top);
    cJSON_Delete(obj);
    kctl_snap_release(&snap);
    return rc;
}
