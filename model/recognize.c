/*
 * Ordinal recognition: a StatefulSet parsed into struct model_set, and which set, template and
 * ordinal a claim or pod name belongs to (reference/kubernetes.md 3.1: claim `T-S-N`, pod
 * `S-N`, selector labels copied onto every claim). Pure functions; see model.h.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "util.h"

static const cJSON *obj_get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *str_get(const cJSON *o, const char *key)
{
    const cJSON *v = obj_get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A DNS subdomain (1..max of [a-z0-9.-], alphanumeric at both ends). */
static bool name_ok(const char *s, size_t max)
{
    size_t n;

    if (!s)
        return false;
    n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.')
            return false;
        if ((i == 0 || i == n - 1) && !alnum)
            return false;
    }
    return true;
}

/* An int32 field in [0, max], or def when absent; -EINVAL otherwise. */
static int int_field(const cJSON *o, const char *key, int32_t def, int32_t max, const char *what,
                     int32_t *ret)
{
    const cJSON *v = obj_get(o, key);

    if (!v || cJSON_IsNull(v)) {
        *ret = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > max ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return be_error(-EINVAL, "%s must be an integer in 0..%d", what, (int)max);
    *ret = (int32_t)v->valuedouble;
    return 0;
}

static int policy_field(const cJSON *o, const char *key, enum model_policy *ret)
{
    const cJSON *v = obj_get(o, key);

    if (!v || cJSON_IsNull(v)) {
        *ret = MODEL_RETAIN;
        return 0;
    }
    if (cJSON_IsString(v) && strcmp(v->valuestring, "Retain") == 0)
        *ret = MODEL_RETAIN;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "Delete") == 0)
        *ret = MODEL_DELETE;
    else
        return be_error(-EINVAL, "persistentVolumeClaimRetentionPolicy.%s must be Retain or Delete",
                        key);
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src, const char *what)
{
    size_t n = strlen(src);

    if (n >= cap)
        return be_error(-EINVAL, "%s is longer than %zu bytes", what, cap - 1);
    memcpy(dst, src, n + 1);
    return 0;
}

int model_set_from_json(const cJSON *sts, struct model_set *ret)
{
    struct model_set s;
    const cJSON *meta = obj_get(sts, "metadata"), *spec = obj_get(sts, "spec"), *t, *sel;
    const char *ns = str_get(meta, "namespace"), *name = str_get(meta, "name"),
               *uid = str_get(meta, "uid"), *pmp;
    int r;

    memset(&s, 0, sizeof(s));
    if (!cJSON_IsObject(meta) || !cJSON_IsObject(spec))
        return be_error(-EINVAL, "not a StatefulSet: metadata or spec missing");
    if (!name_ok(name, MODEL_NAME_MAX) || !name_ok(ns, MODEL_NS_MAX))
        return be_error(-EINVAL, "StatefulSet has an invalid name or namespace");
    memcpy(s.name, name, strlen(name) + 1);
    memcpy(s.ns, ns, strlen(ns) + 1);
    if (uid && copy_str(s.uid, sizeof(s.uid), uid, "metadata.uid") < 0)
        return -EINVAL;
    s.deleting = cJSON_IsString(obj_get(meta, "deletionTimestamp"));
    r = int_field(spec, "replicas", 1, MODEL_REPLICAS_MAX, "spec.replicas", &s.replicas);
    if (r < 0)
        return r;
    r = int_field(obj_get(spec, "ordinals"), "start", 0, MODEL_ORDINAL_MAX - MODEL_REPLICAS_MAX,
                  "spec.ordinals.start", &s.start);
    if (r < 0)
        return r;
    pmp = str_get(spec, "podManagementPolicy");
    if (!pmp || strcmp(pmp, "OrderedReady") == 0)
        s.pod_management = MODEL_ORDERED_READY;
    else if (strcmp(pmp, "Parallel") == 0)
        s.pod_management = MODEL_PARALLEL;
    else
        return be_error(-EINVAL, "spec.podManagementPolicy must be OrderedReady or Parallel");
    t = obj_get(spec, "persistentVolumeClaimRetentionPolicy");
    if ((r = policy_field(t, "whenDeleted", &s.when_deleted)) < 0 ||
        (r = policy_field(t, "whenScaled", &s.when_scaled)) < 0)
        return r;

    t = obj_get(spec, "volumeClaimTemplates");
    if (t && !cJSON_IsNull(t) && !cJSON_IsArray(t))
        return be_error(-EINVAL, "spec.volumeClaimTemplates must be a list");
    for (const cJSON *c = t ? t->child : NULL; c; c = c->next) {
        const char *tn = str_get(obj_get(c, "metadata"), "name");
        const char *cls = str_get(obj_get(c, "spec"), "storageClassName");

        if (s.n_templates == MODEL_TEMPLATES_MAX)
            return be_error(-E2BIG, "more than %d volumeClaimTemplates", MODEL_TEMPLATES_MAX);
        if (!name_ok(tn, MODEL_NAME_MAX))
            return be_error(-EINVAL, "a volumeClaimTemplate has an invalid name");
        memcpy(s.templates[s.n_templates], tn, strlen(tn) + 1);
        if (cls && name_ok(cls, MODEL_NAME_MAX))
            memcpy(s.template_class[s.n_templates], cls, strlen(cls) + 1);
        s.n_templates++;
    }

    sel = obj_get(obj_get(spec, "selector"), "matchLabels");
    if (sel && !cJSON_IsNull(sel) && !cJSON_IsObject(sel))
        return be_error(-EINVAL, "spec.selector.matchLabels must be a map");
    for (const cJSON *l = sel ? sel->child : NULL; l; l = l->next) {
        struct model_label *lab = &s.selector[s.n_selector];

        if (s.n_selector == MODEL_SELECTOR_MAX)
            return be_error(-E2BIG, "more than %d selector labels", MODEL_SELECTOR_MAX);
        if (!l->string || !cJSON_IsString(l))
            return be_error(-EINVAL, "spec.selector.matchLabels values must be strings");
        if (copy_str(lab->key, sizeof(lab->key), l->string, "a selector label key") < 0 ||
            copy_str(lab->value, sizeof(lab->value), l->valuestring, "a selector label value") < 0)
            return -EINVAL;
        s.n_selector++;
    }
    *ret = s;
    return 0;
}

enum model_range model_range_of(const struct model_set *set, int32_t ordinal)
{
    if (ordinal < set->start)
        return MODEL_BELOW;
    if ((int64_t)ordinal >= (int64_t)set->start + set->replicas)
        return MODEL_ABOVE;
    return MODEL_IN_RANGE;
}

int32_t model_parse_ordinal(const char *s, size_t len)
{
    int64_t v = 0;

    if (len == 0 || len > 9 || (len > 1 && s[0] == '0'))
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    return v > MODEL_ORDINAL_MAX ? -EINVAL : (int32_t)v;
}

/* Whether name ends in "-S-N" with S the set's name, and where "-S-N" starts (its '-'). */
static int suffix_match(const char *set_name, const char *name, size_t n, size_t *ret_at,
                        int32_t *ret_ordinal)
{
    size_t dash, sl = strlen(set_name);
    int32_t ord;

    /* the last '-' splits off N */
    for (dash = n; dash > 0 && name[dash - 1] != '-'; dash--)
        ;
    if (dash == 0)
        return -ENOENT;
    dash--;
    if (dash + 1 == n || name[dash + 1] < '0' || name[dash + 1] > '9')
        return -ENOENT; /* no digits after the last '-': not an ordinal name at all */
    ord = model_parse_ordinal(name + dash + 1, n - dash - 1);
    if (ord < 0)
        return be_error(-EINVAL, "ordinal suffix of \"%.*s\" is not a plain decimal number",
                        (int)(n > 300 ? 300 : n), name);
    if (dash < sl || memcmp(name + dash - sl, set_name, sl) != 0)
        return -ENOENT;
    *ret_at = dash - sl; /* index of S; a '-' must precede it for a claim */
    *ret_ordinal = ord;
    return 0;
}

int model_claim_name_match(const struct model_set *set, const char *name, size_t *ret_template,
                           int32_t *ret_ordinal)
{
    size_t n, at;
    int32_t ord;
    int r;

    if (!name_ok(name, MODEL_NAME_MAX))
        return be_error(-EINVAL, "claim name is not a valid Kubernetes object name");
    n = strlen(name);
    r = suffix_match(set->name, name, n, &at, &ord);
    if (r < 0)
        return r;
    if (at < 2 || name[at - 1] != '-')
        return -ENOENT;
    for (size_t i = 0; i < set->n_templates; i++) {
        size_t tl = strlen(set->templates[i]);
        if (tl == at - 1 && memcmp(name, set->templates[i], tl) == 0) {
            *ret_template = i;
            *ret_ordinal = ord;
            return 0;
        }
    }
    return -ENOENT;
}

int model_pod_name_match(const struct model_set *set, const char *name, int32_t *ret_ordinal)
{
    size_t at;
    int32_t ord;
    int r;

    if (!name_ok(name, MODEL_NAME_MAX))
        return be_error(-EINVAL, "pod name is not a valid Kubernetes object name");
    r = suffix_match(set->name, name, strlen(name), &at, &ord);
    if (r < 0)
        return r;
    if (at != 0)
        return -ENOENT;
    *ret_ordinal = ord;
    return 0;
}

int model_claim_match(const struct model_set *set, const cJSON *pvc, struct model_claim_ref *ret)
{
    const cJSON *meta = obj_get(pvc, "metadata"), *labels;
    const char *ns = str_get(meta, "namespace"), *name = str_get(meta, "name");
    size_t ti;
    int32_t ord;
    int r;

    if (!name || !ns)
        return be_error(-EINVAL, "claim has no metadata.name or metadata.namespace");
    if (!name_ok(ns, MODEL_NS_MAX))
        return be_error(-EINVAL, "claim namespace is not a valid namespace");
    if (strcmp(ns, set->ns) != 0)
        return be_error(-ENOENT, "claim is in namespace %s, the set in %s", ns, set->ns);
    r = model_claim_name_match(set, name, &ti, &ord);
    if (r == -ENOENT)
        return be_error(-ENOENT, "claim name is not <template>-%s-<ordinal>", set->name);
    if (r < 0)
        return r;
    labels = obj_get(meta, "labels");
    for (size_t i = 0; i < set->n_selector; i++) {
        const char *v = str_get(labels, set->selector[i].key);
        if (!v || strcmp(v, set->selector[i].value) != 0)
            return be_error(-ENOENT, "claim lacks the set's selector label %s=%s",
                            set->selector[i].key, set->selector[i].value);
    }
    ret->template_index = ti;
    ret->ordinal = ord;
    ret->range = model_range_of(set, ord);
    return 0;
}

int model_claim_name(char *buf, size_t n, const struct model_set *set, size_t template_index,
                     int32_t ordinal)
{
    int k;

    if (template_index >= set->n_templates || ordinal < 0 || ordinal > MODEL_ORDINAL_MAX)
        return -EINVAL;
    k = snprintf(buf, n, "%s-%s-%d", set->templates[template_index], set->name, (int)ordinal);
    if (k < 0)
        return -EINVAL;
    if ((size_t)k >= n || k > MODEL_NAME_MAX)
        return -ENAMETOOLONG;
    return k;
}
