/*
 * kubectl ordinal volumes (the OrdinalVolume inventory) and reclaim (delete a store no PV
 * refers to, through the node plugin that owns it).
 *
 * reclaim never deletes anything itself: it annotates the OrdinalVolume
 * ordinal.csi.dev/reclaim=requested with the resourceVersion it checked (a merge patch carrying
 * metadata.resourceVersion: a change in between, e.g. a PV naming it, is a 409 and the checks
 * run again) and watches until the node plugin has deleted the store and the object. The node
 * plugin re-checks that no PV refers to the store before deleting it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "kube_watch.h"
#include "table.h"
#include "util.h"
#include "verbs.h"

static int ov_api_missing(void)
{
    fprintf(stderr, "error: the server doesn't have a resource type \"ordinalvolumes\" "
                    "(ordinalvolumes.ordinal.csi.dev): is Ordinal's CRD installed?\n");
    return 1;
}

static const char *num_bytes(const cJSON *o, const char *path, char *buf, size_t n)
{
    const cJSON *v = kctl_get(o, path);

    if (!cJSON_IsNumber(v))
        return "-";
    kctl_bytes(v->valuedouble, buf, n);
    return buf;
}

int kctl_volumes(const struct kctl_ctx *c)
{
    const struct kctl_args *a = c->args;
    struct kube_status st;
    struct kctl_table t = {0};
    cJSON *list = NULL, *out_items = NULL, *top = NULL;
    const cJSON *items;
    size_t shown = 0;
    int r;

    r = kube_list_all(c->client, &kctl_ordinalvolumes, NULL, NULL, &list, &st);
    if (r == -ENOENT)
        return ov_api_missing();
    if (r < 0)
        return kctl_cluster_error(r, &st, "listing OrdinalVolumes");
    if (a->output == KCTL_OUT_JSON) {
        top = cJSON_CreateObject();
        cJSON_AddStringToObject(top, "apiVersion", "v1");
        cJSON_AddStringToObject(top, "kind", "List");
        out_items = cJSON_AddArrayToObject(top, "items");
    } else {
        static const char *const base[] = {"NAME", "STATE", "KEY", "NODE", "BACKEND",
                                           "SIZE", "USED",  "PV",  NULL};
        static const char *const wide[] = {
            "NAME", "STATE", "KEY", "NODE",    "BACKEND",       "SIZE",      "USED",
            "PV",   "STORE", "SET", "ORDINAL", "VOLUME-HANDLE", "LAST-USED", NULL};
        if ((r = kctl_table_init(&t, a->output == KCTL_OUT_WIDE ? wide : base)) < 0)
            goto fail;
    }
    items = kctl_get(list, "items");
    for (const cJSON *o = cJSON_IsArray(items) ? items->child : NULL; o; o = o->next) {
        const char *state = kctl_str(o, "status.state");
        char size[32], used[32], ord[16] = "-";
        const cJSON *on = kctl_get(o, "status.ordinal");

        if (a->node &&
            !(kctl_str(o, "spec.node") && strcmp(kctl_str(o, "spec.node"), a->node) == 0))
            continue;
        if (a->orphaned && !(state && strcmp(state, "Orphaned") == 0))
            continue;
        shown++;
        if (out_items) {
            cJSON *dup = cJSON_Duplicate(o, 1);
            if (!dup) {
                r = -ENOMEM;
                goto fail;
            }
            cJSON_AddItemToArray(out_items, dup);
            continue;
        }
        if (cJSON_IsNumber(on))
            snprintf(ord, sizeof(ord), "%d", (int)on->valuedouble);
        {
            const char *cells[] = {kctl_str(o, "metadata.name"),
                                   state,
                                   kctl_str(o, "spec.key"),
                                   kctl_str(o, "spec.node"),
                                   kctl_str(o, "spec.backend"),
                                   num_bytes(o, "spec.capacityBytes", size, sizeof(size)),
                                   num_bytes(o, "status.usedBytes", used, sizeof(used)),
                                   kctl_str(o, "status.persistentVolume"),
                                   kctl_str(o, "spec.store"),
                                   kctl_str(o, "status.statefulSet"),
                                   ord,
                                   kctl_str(o, "spec.volumeHandle"),
                                   kctl_str(o, "status.lastUsedAt")};
            if ((r = kctl_table_add(&t, cells)) < 0)
                goto fail;
        }
    }
    if (top) {
        char *s = cJSON_Print(top);
        if (s)
            puts(s);
        free(s);
    } else if (shown == 0) {
        fprintf(stderr, "No OrdinalVolumes found.\n");
    } else {
        kctl_table_print(&t, stdout);
    }
    kctl_table_release(&t);
    cJSON_Delete(top);
    cJSON_Delete(list);
    return 0;
fail:
    fprintf(stderr, "error: %s\n", strerror(-r));
    if (t.cells)
        kctl_table_release(&t);
    cJSON_Delete(top);
    cJSON_Delete(list);
    return 1;
}

/* ---- reclaim ---- */

/* Why ov may not be reclaimed (a PV refers to it), into why; false when it may. */
static bool in_use(const cJSON *ov, const cJSON *pvs, char *why, size_t n)
{
    const char *pv = kctl_str(ov, "status.persistentVolume");
    const char *handle = kctl_str(ov, "spec.volumeHandle");
    const cJSON *items = kctl_get(pvs, "items");

    if (pv && *pv) {
        snprintf(why, n, "PersistentVolume %s refers to it (status.persistentVolume)", pv);
        return true;
    }
    for (const cJSON *p = cJSON_IsArray(items) ? items->child : NULL; handle && p; p = p->next) {
        const char *h = kctl_str(p, "spec.csi.volumeHandle");
        if (h && strcmp(h, handle) == 0) {
            snprintf(why, n, "PersistentVolume %s has its volumeHandle %s",
                     kctl_str(p, "metadata.name") ? kctl_str(p, "metadata.name") : "?", handle);
            return true;
        }
    }
    return false;
}

struct wait_ctx {
    const char *name;
    bool gone;
    char last_state[64];
};

static int on_event(void *ud, struct kube_event *ev)
{
    struct wait_ctx *w = ud;
    const char *name = kube_obj_name(ev->object);
    const char *state = kctl_str(ev->object, "status.state");

    if (!name || strcmp(name, w->name) != 0)
        return 0;
    if (ev->type == KUBE_EVENT_DELETED) {
        w->gone = true;
        return -EALREADY; /* ends the watch: done */
    }
    if (state && strcmp(state, w->last_state) != 0) {
        snprintf(w->last_state, sizeof(w->last_state), "%s", state);
        fprintf(stderr, "ordinalvolume/%s: %s\n", w->name, w->last_state);
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int kctl_reclaim(const struct kctl_ctx *c)
{
    const struct kctl_args *a = c->args;
    struct kube_status st;
    cJSON *ov = NULL, *pvs = NULL, *patched = NULL;
    char why[600], rv[64] = "", node[256] = "?", store[512] = "?";
    struct wait_ctx w = {.name = a->name};
    double deadline = now_s() + (double)a->timeout_seconds;
    int r, attempt;

    for (attempt = 0;; attempt++) {
        cJSON *patch, *meta, *ann;
        const char *v;

        cJSON_Delete(ov);
        cJSON_Delete(pvs);
        ov = pvs = NULL;
        r = kube_get(c->client, &kctl_ordinalvolumes, NULL, a->name, &ov, &st);
        if (r == -ENOENT && st.http == 404 && strstr(st.message, "ordinalvolumes") == NULL &&
            strstr(st.message, a->name) == NULL) {
            r = ov_api_missing();
            goto out;
        }
        if (r < 0) {
            r = kctl_cluster_error(r, &st, "getting the OrdinalVolume");
            goto out;
        }
        r = kube_list_all(c->client, &kube_persistentvolumes, NULL, NULL, &pvs, &st);
        if (r < 0) {
            r = kctl_cluster_error(r, &st, "listing PersistentVolumes");
            goto out;
        }
        if (in_use(ov, pvs, why, sizeof(why))) {
            fprintf(stderr,
                    "error: ordinalvolume %s is in use and cannot be reclaimed: %s. Delete that "
                    "PV (or let its reclaim policy do it) first.\n",
                    a->name, why);
            r = 1;
            goto out;
        }
        if ((v = kctl_str(ov, "spec.node")))
            snprintf(node, sizeof(node), "%s", v);
        if ((v = kctl_str(ov, "spec.store")))
            snprintf(store, sizeof(store), "%s", v);
        /* the patch carries the resourceVersion checked: any change since is a conflict */
        patch = cJSON_CreateObject();
        meta = cJSON_AddObjectToObject(patch, "metadata");
        ann = cJSON_AddObjectToObject(meta, "annotations");
        if (!ann || !cJSON_AddStringToObject(ann, KCTL_RECLAIM_ANNOTATION, "requested") ||
            !cJSON_AddStringToObject(meta, "resourceVersion",
                                     kube_obj_rv(ov) ? kube_obj_rv(ov) : "")) {
            cJSON_Delete(patch);
            r = kctl_cluster_error(-ENOMEM, NULL, "memory");
            goto out;
        }
        r = kube_patch(c->client, &kctl_ordinalvolumes, NULL, a->name, NULL, patch, &patched, &st);
        cJSON_Delete(patch);
        if (r == KUBE_ECONFLICT && attempt < 5)
            continue;
        if (r < 0) {
            r = kctl_cluster_error(r, &st, "annotating the OrdinalVolume");
            goto out;
        }
        break;
    }
    snprintf(rv, sizeof(rv), "%s", kube_obj_rv(patched) ? kube_obj_rv(patched) : "");
    fprintf(stderr, "ordinalvolume/%s: reclaim requested; waiting for the node plugin on %s\n",
            a->name, node);

    while (!w.gone) {
        char fs[300];
        double left = deadline - now_s();
        struct kube_watch_opts wo = {0};

        if (left <= 0) {
            fprintf(stderr,
                    "error: timed out after %lds waiting for the node plugin on node %s to delete "
                    "ordinalvolume %s (the request stays: annotation %s=requested)\n",
                    a->timeout_seconds, node, a->name, KCTL_RECLAIM_ANNOTATION);
            r = 1;
            goto out;
        }
        snprintf(fs, sizeof(fs), "metadata.name=%s", a->name);
        wo.field_selector = fs;
        wo.resource_version = rv;
        wo.timeout_seconds = left < 1 ? 1 : (int)left;
        r = kube_watch(c->client, &kctl_ordinalvolumes, NULL, &wo, on_event, &w, &st);
        if (w.gone)
            break;
        if (r < 0 && r != KUBE_EGONE) {
            struct timespec pause = {0, 200 * 1000 * 1000}; /* do not spin on a failing watch */
            nanosleep(&pause, NULL);
        }
        {
            /* the stream ended or broke: is the object still there? */
            cJSON *cur = NULL;
            int g = kube_get(c->client, &kctl_ordinalvolumes, NULL, a->name, &cur, &st);
            if (g == -ENOENT) {
                w.gone = true;
                break;
            }
            if (g < 0) {
                r = kctl_cluster_error(g, &st, "watching the OrdinalVolume");
                goto out;
            }
            snprintf(rv, sizeof(rv), "%s", kube_obj_rv(cur) ? kube_obj_rv(cur) : "");
            cJSON_Delete(cur);
        }
    }
    printf("ordinalvolume/%s reclaimed: store %s deleted on node %s\n", a->name, store, node);
    r = 0;
out:
    cJSON_Delete(ov);
    cJSON_Delete(pvs);
    cJSON_Delete(patched);
    return r;
}
