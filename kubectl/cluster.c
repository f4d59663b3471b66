/* The cluster snapshot and per-ordinal rows of kubectl-ordinal; see cluster.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "util.h"

const struct kube_resource kctl_ordinalvolumes = {
    .group = "ordinal.csi.dev",
    .version = "v1alpha1",
    .plural = "ordinalvolumes",
    .kind = "OrdinalVolume",
    .namespaced = false,
};

const cJSON *kctl_get(const cJSON *o, const char *path)
{
    char key[128];

    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);

        if (n >= sizeof(key) || !cJSON_IsObject(o))
            return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        path += n + (dot ? 1 : 0);
    }
    return o;
}

const char *kctl_str(const cJSON *o, const char *path)
{
    const cJSON *v = kctl_get(o, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An item's string field compared with s (false when absent). */
static bool str_eq(const cJSON *o, const char *path, const char *s)
{
    const char *v = kctl_str(o, path);
    return v && s && strcmp(v, s) == 0;
}

int kctl_snap_load(struct kube_client *c, const char *ns, struct kctl_snap *s,
                   struct kube_status *st)
{
    int r;

    memset(s, 0, sizeof(*s));
    if ((r = kube_list_all(c, &kube_pods, ns, NULL, &s->pods, st)) < 0 ||
        (r = kube_list_all(c, &kube_persistentvolumeclaims, ns, NULL, &s->pvcs, st)) < 0 ||
        (r = kube_list_all(c, &kube_persistentvolumes, NULL, NULL, &s->pvs, st)) < 0 ||
        (r = kube_list_all(c, &kube_storageclasses, NULL, NULL, &s->scs, st)) < 0 ||
        (r = kube_list_all(c, &kube_events, ns, NULL, &s->events, st)) < 0)
        goto fail;
    r = kube_list_all(c, &kctl_ordinalvolumes, NULL, NULL, &s->ovs, st);
    if (r == -ENOENT) {
        s->have_ovs = false; /* the CRD is not installed: no store columns */
    } else if (r < 0) {
        goto fail;
    } else {
        s->have_ovs = true;
    }
    return 0;
fail:
    kctl_snap_release(s);
    return r;
}

void kctl_snap_release(struct kctl_snap *s)
{
    cJSON_Delete(s->pods);
    cJSON_Delete(s->pvcs);
    cJSON_Delete(s->pvs);
    cJSON_Delete(s->scs);
    cJSON_Delete(s->ovs);
    cJSON_Delete(s->events);
    memset(s, 0, sizeof(*s));
}

static const cJSON *items(const cJSON *list)
{
    const cJSON *i = kctl_get(list, "items");
    return cJSON_IsArray(i) ? i->child : NULL;
}

static const cJSON *find_named(const cJSON *list, const char *ns, const char *name)
{
    for (const cJSON *o = items(list); o; o = o->next)
        if (str_eq(o, "metadata.name", name) && (!ns || str_eq(o, "metadata.namespace", ns)))
            return o;
    return NULL;
}

/* The controller owner reference of o: its kind and uid, or NULL. */
static const cJSON *controller_ref(const cJSON *o)
{
    const cJSON *refs = kctl_get(o, "metadata.ownerReferences");

    for (const cJSON *r = cJSON_IsArray(refs) ? refs->child : NULL; r; r = r->next)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "controller")))
            return r;
    return NULL;
}

const char *kctl_pod_ready(const cJSON *pod)
{
    const cJSON *conds = kctl_get(pod, "status.conditions");

    if (kctl_str(pod, "metadata.deletionTimestamp"))
        return "Terminating";
    for (const cJSON *c = cJSON_IsArray(conds) ? conds->child : NULL; c; c = c->next)
        if (str_eq(c, "type", "Ready"))
            return str_eq(c, "status", "True") ? "true" : "false";
    return "false";
}

static const char *event_time(const cJSON *ev)
{
    const char *t = kctl_str(ev, "lastTimestamp");
    if (!t)
        t = kctl_str(ev, "eventTime");
    if (!t)
        t = kctl_str(ev, "metadata.creationTimestamp");
    return t ? t : "";
}

void kctl_event_text(const cJSON *ev, char *buf, size_t n)
{
    const char *reason = kctl_str(ev, "reason"), *msg = kctl_str(ev, "message");

    snprintf(buf, n, "%s: %s", reason ? reason : "?", msg ? msg : "");
}

void kctl_bytes(double b, char *buf, size_t n)
{
    static const char *const units[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
    size_t u = 0;

    if (b < 0) {
        snprintf(buf, n, "-");
        return;
    }
    /* exact binary multiples as kubectl writes them; else one decimal */
    while (u + 1 < ARRAY_SIZE(units) && b >= 1024) {
        b /= 1024;
        u++;
    }
    if (b == (double)(long long)b)
        snprintf(buf, n, "%lld%s", (long long)b, units[u]);
    else
        snprintf(buf, n, "%.1f%s", b, units[u]);
}

static int cmp_row(const void *a, const void *b)
{
    const struct kctl_row *x = a, *y = b;
    if (x->ordinal != y->ordinal)
        return (x->ordinal > y->ordinal) - (x->ordinal < y->ordinal);
    return (x->tmpl > y->tmpl) - (x->tmpl < y->tmpl);
}

struct rows {
    struct kctl_row *v;
    size_t n, cap;
};

static struct kctl_row *row_find(struct rows *rs, size_t tmpl, int32_t ord)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->v[i].tmpl == tmpl && rs->v[i].ordinal == ord)
            return &rs->v[i];
    return NULL;
}

static struct kctl_row *row_add(struct rows *rs, const struct model_set *set, size_t tmpl,
                                int32_t ord, int *err)
{
    struct kctl_row *r;

    if (rs->n == MODEL_PLAN_MAX_ORDINALS) {
        *err = -E2BIG;
        return NULL;
    }
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        struct kctl_row *v = realloc(rs->v, cap * sizeof(*v));
        if (!v) {
            *err = -ENOMEM;
            return NULL;
        }
        rs->v = v;
        rs->cap = cap;
    }
    r = &rs->v[rs->n++];
    memset(r, 0, sizeof(*r));
    r->tmpl = tmpl;
    r->ordinal = ord;
    r->range = model_range_of(set, ord);
    model_claim_name(r->claim_name, sizeof(r->claim_name), set, tmpl, ord);
    if (snprintf(r->pod_name, sizeof(r->pod_name), "%s-%d", set->name, (int)ord) >=
        (int)sizeof(r->pod_name))
        r->pod_name[0] = 0; /* no pod can have that name */
    return r;
}

/* The ordinal of a "ns/claim" key or claim name that is T-S-N of this set, or -1. */
static int32_t match_name(const struct model_set *set, const char *ns, const char *name,
                          size_t *ret_tmpl)
{
    int32_t ord;

    if (!ns || !name || strcmp(ns, set->ns) != 0)
        return -1;
    if (model_claim_name_match(set, name, ret_tmpl, &ord) < 0)
        return -1;
    return ord;
}

/* Fill the borrowed objects and the model state of r from the snapshot. */
static void row_fill(const struct model_set *set, const struct kctl_snap *s, struct kctl_row *r)
{
    const char *vol, *cls, *handle, *evt_best = "";
    char key[MODEL_NS_MAX + MODEL_NAME_MAX + 2];
    const cJSON *ref;

    /* the pod: S-N, controlled by this set when both carry a uid */
    r->pod = find_named(s->pods, set->ns, r->pod_name);
    if (r->pod && set->uid[0] && (ref = controller_ref(r->pod)) && !str_eq(ref, "uid", set->uid))
        r->pod = NULL;
    /* the PV: the claim's volumeName, else a PV whose claimRef names the claim */
    vol = kctl_str(r->pvc, "spec.volumeName");
    if (vol)
        r->pv = find_named(s->pvs, NULL, vol);
    for (const cJSON *pv = items(s->pvs); !r->pv && pv; pv = pv->next)
        if (str_eq(pv, "spec.claimRef.namespace", set->ns) &&
            str_eq(pv, "spec.claimRef.name", r->claim_name))
            r->pv = pv;
    /* the class: the claim's, else the template's, else the PV's */
    cls = kctl_str(r->pvc, "spec.storageClassName");
    if (!cls && set->template_class[r->tmpl][0])
        cls = set->template_class[r->tmpl];
    if (!cls)
        cls = kctl_str(r->pv, "spec.storageClassName");
    if (cls)
        r->sc = find_named(s->scs, NULL, cls);
    /* the store: by volume handle, else by key */
    handle = kctl_str(r->pv, "spec.csi.volumeHandle");
    snprintf(key, sizeof(key), "%s/%s", set->ns, r->claim_name);
    for (const cJSON *ov = items(s->ovs); ov; ov = ov->next)
        if ((handle && str_eq(ov, "spec.volumeHandle", handle)) || str_eq(ov, "spec.key", key)) {
            r->ov = ov;
            if (handle && str_eq(ov, "spec.volumeHandle", handle))
                break;
        }
    /* the last event of the claim or the pod */
    for (const cJSON *ev = items(s->events); ev; ev = ev->next) {
        const char *kind = kctl_str(ev, "involvedObject.kind");
        const char *name = kctl_str(ev, "involvedObject.name");
        bool mine =
            kind && name &&
            ((strcmp(kind, "PersistentVolumeClaim") == 0 && strcmp(name, r->claim_name) == 0) ||
             (strcmp(kind, "Pod") == 0 && strcmp(name, r->pod_name) == 0));
        if (mine && str_eq(ev, "involvedObject.namespace", set->ns) &&
            strcmp(event_time(ev), evt_best) >= 0) {
            r->event = ev;
            evt_best = event_time(ev);
        }
    }

    r->st.ordinal = r->ordinal;
    r->st.pod = r->pod != NULL;
    r->st.claim = r->pvc != NULL;
    r->st.pv = r->pv != NULL || (r->ov && !r->pvc);
    r->st.ours = str_eq(r->pv, "spec.csi.driver", KCTL_DRIVER) ||
                 str_eq(r->sc, "provisioner", KCTL_DRIVER) || (r->ov != NULL);
    {
        const cJSON *params = kctl_get(r->sc, "parameters");
        const cJSON *o = cJSON_IsObject(params)
                             ? cJSON_GetObjectItemCaseSensitive(params, KCTL_ORDERING_PARAM)
                             : NULL;
        r->st.ordered = cJSON_IsString(o) && strcmp(o->valuestring, "ordered") == 0;
    }
    {
        const char *p = kctl_str(r->pv, "spec.persistentVolumeReclaimPolicy");
        if (!p && r->sc)
            p = kctl_str(r->sc, "reclaimPolicy");
        if (!p && r->sc)
            p = "Delete"; /* a StorageClass without reclaimPolicy means Delete */
        /* a store known only from its OrdinalVolume has no PV whose policy could apply */
        r->reclaim_known = p != NULL && (r->pv || r->pvc);
        r->st.reclaim = (p && strcmp(p, "Retain") == 0) ? MODEL_RETAIN : MODEL_DELETE;
    }
    if (!r->pvc) {
        r->st.owner = MODEL_OWNER_NONE;
    } else if ((ref = controller_ref(r->pvc))) {
        if (str_eq(ref, "kind", "StatefulSet") && (!set->uid[0] || str_eq(ref, "uid", set->uid)))
            r->st.owner = MODEL_OWNER_SET;
        else if (str_eq(ref, "kind", "Pod") && str_eq(ref, "name", r->pod_name))
            r->st.owner = MODEL_OWNER_POD;
        else
            r->st.owner = MODEL_OWNER_NONE; /* a foreign controller: retention ignored (3.5) */
    } else {
        r->st.owner = MODEL_OWNER_NONE;
    }
}

int kctl_rows(const struct model_set *set, const struct kctl_snap *s, struct kctl_row **ret,
              size_t *ret_n)
{
    struct rows rs = {0};
    struct kctl_row *r;
    size_t t;
    int32_t ord;
    int err = 0;

    /* the set's claims */
    for (const cJSON *pvc = items(s->pvcs); pvc; pvc = pvc->next) {
        struct model_claim_ref ref;
        if (model_claim_match(set, pvc, &ref) < 0)
            continue;
        if (row_find(&rs, ref.template_index, ref.ordinal))
            continue;
        if (!(r = row_add(&rs, set, ref.template_index, ref.ordinal, &err)))
            goto fail;
        r->pvc = pvc;
    }
    /* replicas without a claim yet */
    for (t = 0; t < set->n_templates; t++)
        for (ord = set->start; ord < set->start + set->replicas; ord++)
            if (!row_find(&rs, t, ord) && !(r = row_add(&rs, set, t, ord, &err)))
                goto fail;
    /* claims gone, data retained: a PV whose claimRef names T-S-N, or an OrdinalVolume */
    for (const cJSON *pv = items(s->pvs); pv; pv = pv->next) {
        ord = match_name(set, kctl_str(pv, "spec.claimRef.namespace"),
                         kctl_str(pv, "spec.claimRef.name"), &t);
        if (ord >= 0 && !row_find(&rs, t, ord) && !(r = row_add(&rs, set, t, ord, &err)))
            goto fail;
    }
    for (const cJSON *ov = items(s->ovs); ov; ov = ov->next) {
        const char *key = kctl_str(ov, "spec.key"), *slash = key ? strchr(key, '/') : NULL;
        char ns[MODEL_NS_MAX + 1];

        if (!slash || (size_t)(slash - key) > MODEL_NS_MAX)
            continue;
        memcpy(ns, key, (size_t)(slash - key));
        ns[slash - key] = 0;
        ord = match_name(set, ns, slash + 1, &t);
        if (ord >= 0 && !row_find(&rs, t, ord) && !(r = row_add(&rs, set, t, ord, &err)))
            goto fail;
    }
    for (size_t i = 0; i < rs.n; i++)
        row_fill(set, s, &rs.v[i]);
    qsort(rs.v, rs.n, sizeof(rs.v[0]), cmp_row);
    *ret = rs.v;
    *ret_n = rs.n;
    return 0;
fail:
    free(rs.v);
    return err;
}
