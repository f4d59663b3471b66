/*
 * The ordinal model: what Kubernetes' StatefulSet controller, its garbage collector and Ordinal
 * do to each ordinal's pod, claim, PV and data, as pure functions. Shared by the reconciler
 * (provisioner/) and kubectl-ordinal (kubectl/); no I/O, no allocation beyond the caller's
 * structs, no locks: safe from any thread.
 *
 * Three parts:
 *  (a) recognition: which set, template and ordinal a claim (or pod) belongs to;
 *  (b) retention: what "scale to N" and "delete the set" do to every ordinal, in order
 *      (reference/kubernetes.md 3.2 and 3.5);
 *  (c) ordering: which claim of a template may be admitted (provisioned) next and which store
 *      may be released (deleted) next under Ordinal's ordered mode.
 *
 * Errors: -EINVAL with a message in be_last_error() for input that is not a StatefulSet, a name
 * that is not a Kubernetes name, a count out of range. Nothing here logs.
 */
#ifndef ORDINAL_MODEL_H
#define ORDINAL_MODEL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODEL_NAME_MAX 253      /* object names (DNS subdomain) */
#define MODEL_NS_MAX 63         /* namespaces (DNS label) */
#define MODEL_LABEL_KEY_MAX 317 /* prefix (253) + '/' + name (63) */
#define MODEL_LABEL_VALUE_MAX 63
#define MODEL_TEMPLATES_MAX 16 /* volumeClaimTemplates kept per set; more is -E2BIG */
#define MODEL_SELECTOR_MAX 32  /* selector.matchLabels kept per set; more is -E2BIG */
#define MODEL_REPLICAS_MAX 100000
/* Largest ordinal accepted in a name: start + replicas stays far from INT32_MAX. */
#define MODEL_ORDINAL_MAX 999999999

enum model_policy { MODEL_RETAIN = 0, MODEL_DELETE = 1 };
enum model_pod_management { MODEL_ORDERED_READY = 0, MODEL_PARALLEL = 1 };

struct model_label {
    char key[MODEL_LABEL_KEY_MAX + 1];
    char value[MODEL_LABEL_VALUE_MAX + 1];
};

/* A StatefulSet as far as the model needs it. Plain data, no pointers: copy freely. */
struct model_set {
    char ns[MODEL_NS_MAX + 1];
    char name[MODEL_NAME_MAX + 1];
    char uid[64];
    int32_t replicas; /* spec.replicas, default 1 */
    int32_t start;    /* spec.ordinals.start, default 0 */
    enum model_pod_management pod_management;
    enum model_policy when_deleted, when_scaled; /* default Retain/Retain */
    bool deleting;                               /* metadata.deletionTimestamp set */
    size_t n_templates;
    char templates[MODEL_TEMPLATES_MAX][MODEL_NAME_MAX + 1];
    char template_class[MODEL_TEMPLATES_MAX][MODEL_NAME_MAX + 1]; /* storageClassName or "" */
    size_t n_selector;
    struct model_label selector[MODEL_SELECTOR_MAX];
};

/* ---- (a) recognition ---- */

/*
 * Parse a StatefulSet object (borrowed) into *ret (written only on success). Applies the API
 * defaults (reference 3.1). Returns 0, -EINVAL (not a StatefulSet, a bad name, a negative or
 * huge replicas/start, an unknown policy value) or -E2BIG (too many templates or labels).
 */
int model_set_from_json(const cJSON *sts, struct model_set *ret);

/* Where an ordinal lies relative to the set's range [start, start + replicas). */
enum model_range {
    MODEL_IN_RANGE = 0, /* a replica: its pod should exist */
    MODEL_ABOVE = 1,    /* >= start + replicas: scaled down (condemned or retained) */
    MODEL_BELOW = 2,    /* < start: left behind when ordinals.start was raised */
};
enum model_range model_range_of(const struct model_set *set, int32_t ordinal);

/*
 * Parse an ordinal suffix: decimal digits only, no sign, no leading zero (the controller prints
 * "%d"), at most MODEL_ORDINAL_MAX. Returns the ordinal or -EINVAL.
 */
int32_t model_parse_ordinal(const char *s, size_t len);

/*
 * Whether claim name `name` is `T-S-N` for set `set` (its name S) and one of its templates T.
 * On a match writes the template's index and the ordinal and returns 0; -ENOENT when the name is
 * another's (not this set's pattern); -EINVAL for a hostile name (not a Kubernetes name, too
 * long, an ordinal with sign, leading zero or overflow). A template whose name is a prefix of
 * another's cannot cause a wrong match: T and S are both matched exactly around the '-'.
 */
int model_claim_name_match(const struct model_set *set, const char *name, size_t *ret_template,
                           int32_t *ret_ordinal);

/* The result of matching a claim object against a set. */
struct model_claim_ref {
    size_t template_index;
    int32_t ordinal;
    enum model_range range;
};

/*
 * Whether claim object `pvc` (borrowed) belongs to `set`: same namespace, name `T-S-N`, and its
 * labels carry every selector.matchLabels pair of the set (the StatefulSet controller copies
 * them onto every claim it makes: a claim without them was not made by this set). Returns 0 and
 * *ret on a match, -ENOENT when it does not belong (message in be_last_error() says why:
 * namespace, name, or the label that is missing/different), -EINVAL for a hostile claim.
 */
int model_claim_match(const struct model_set *set, const cJSON *pvc, struct model_claim_ref *ret);

/* Whether pod name `name` is `S-N` of this set: 0 and the ordinal, -ENOENT, or -EINVAL. */
int model_pod_name_match(const struct model_set *set, const char *name, int32_t *ret_ordinal);

/* Write the claim name T-S-N into buf (size n): length, or -ENAMETOOLONG / -EINVAL. */
int model_claim_name(char *buf, size_t n, const struct model_set *set, size_t template_index,
                     int32_t ordinal);

/* ---- (b) retention ---- */

/* A claim's controller owner reference as it is now. UNKNOWN: derive it from the retention
 * policy (the 3.5 table), as the StatefulSet controller will have set it. */
enum model_owner {
    MODEL_OWNER_UNKNOWN = 0,
    MODEL_OWNER_NONE,
    MODEL_OWNER_SET, /* controller ref to the StatefulSet */
    MODEL_OWNER_POD, /* controller ref to the ordinal's pod */
};

/* What one ordinal looks like now (filled by the caller from the cluster). */
struct model_ordinal_state {
    int32_t ordinal;
    bool pod;                  /* a pod object exists */
    bool claim;                /* the claim exists (of the template the plan is about) */
    bool pv;                   /* a PV is bound to the claim (or Released with our data) */
    bool ordered;              /* the claim's class has ordinal.csi.dev/ordering: ordered */
    bool ours;                 /* provisioned by ordinal.csi.dev (ordered release applies) */
    enum model_policy reclaim; /* the PV's persistentVolumeReclaimPolicy, else the class's */
    enum model_owner owner;    /* the claim's controller owner reference now */
};

/* What happens to each of an ordinal's objects. */
enum model_pod_fate {
    MODEL_POD_KEPT = 0,
    MODEL_POD_DELETED, /* by the StatefulSet controller (scale) or the GC (set deletion) */
    MODEL_POD_CREATED, /* scale up */
    MODEL_POD_NONE,    /* no pod before or after */
};
enum model_claim_fate {
    MODEL_CLAIM_KEPT = 0, /* stays, bound: the pod (or a later one) reuses it */
    MODEL_CLAIM_DELETED,  /* retention Delete: the GC deletes it after the pod is gone */
    MODEL_CLAIM_CREATED,  /* scale up of an ordinal without a claim */
    MODEL_CLAIM_REUSED,   /* scale up of an ordinal whose claim was retained */
    MODEL_CLAIM_NONE,
};
enum model_data_fate {
    MODEL_DATA_KEPT = 0, /* the claim stays, its data with it */
    MODEL_DATA_DELETED,  /* claim deleted, reclaim Delete: store and PV deleted */
    MODEL_DATA_RETAINED, /* claim deleted, reclaim Retain: PV Released, store kept for
                            re-adoption by a claim of the same name */
    MODEL_DATA_NEW,      /* scale up: a fresh volume is provisioned */
    MODEL_DATA_REUSED,   /* scale up: the retained claim and its data come back */
    MODEL_DATA_NONE,
};

struct model_outcome {
    int32_t ordinal;
    enum model_pod_fate pod;
    enum model_claim_fate claim;
    enum model_data_fate data;
};

/* One step of a plan, in the order it happens. */
enum model_step_kind {
    MODEL_STEP_DELETE_POD = 0,
    MODEL_STEP_CREATE_CLAIM,
    MODEL_STEP_PROVISION, /* a new store and PV for the claim */
    MODEL_STEP_CREATE_POD,
    MODEL_STEP_DELETE_CLAIM, /* by the GC, once the pod is gone */
    MODEL_STEP_RELEASE_PV,   /* the PV turns Released (reclaim Retain: the step stops there) */
    MODEL_STEP_DELETE_STORE, /* reclaim Delete: store, then PV */
};
struct model_step {
    enum model_step_kind kind;
    int32_t ordinal;
    /* Steps of equal `wave` may happen at the same time (Parallel, the GC); a higher wave only
     * after every lower one. */
    int wave;
    int seq_; /* internal: emission order, keeps the sort stable */
};

#define MODEL_PLAN_MAX_ORDINALS 1024
#define MODEL_PLAN_MAX_STEPS (MODEL_PLAN_MAX_ORDINALS * 4)

struct model_plan {
    size_t n_outcomes;
    struct model_outcome outcomes[MODEL_PLAN_MAX_ORDINALS]; /* ascending ordinal */
    size_t n_steps;
    struct model_step steps[MODEL_PLAN_MAX_STEPS];
};

/*
 * The plan of scaling `set` to `replicas` for one template: every ordinal in `now` (the
 * caller's view, any order, at most MODEL_PLAN_MAX_ORDINALS, ordinals unique) plus the ordinals
 * a scale-up adds. Pods of condemned ordinals go highest first, one per wave, under
 * OrderedReady, all in one wave under Parallel; whenScaled Delete then has the GC delete each
 * claim after its pod; stores of released claims with reclaim Delete go highest ordinal first,
 * one per wave, when the claim is ours and its class is ordered, else with their claim. Scale up:
 * claims and pods ascending, one ordinal per wave under OrderedReady (or an ordered class).
 * Returns 0, -EINVAL (bad replicas) or -E2BIG (too many ordinals). *ret is caller storage.
 */
int model_plan_scale(const struct model_set *set, int32_t replicas,
                     const struct model_ordinal_state *now, size_t n_now, struct model_plan *ret);

/*
 * The plan of deleting `set` (propagation background, the apps/v1 default; orphan = true for
 * --cascade=orphan, which deletes no claim). The GC deletes all pods at once (no order:
 * reference 3.2); whenDeleted Delete deletes every claim of the set once the pods are gone;
 * stores as in model_plan_scale.
 */
int model_plan_delete(const struct model_set *set, bool orphan,
                      const struct model_ordinal_state *now, size_t n_now, struct model_plan *ret);

/* The fate of one ordinal's data, as a short word for tables: "kept", "deleted",
 * "retained", "new", "reused", "-". Static strings. */
const char *model_data_fate_name(enum model_data_fate f);
const char *model_pod_fate_name(enum model_pod_fate f);
const char *model_claim_fate_name(enum model_claim_fate f);
const char *model_step_kind_name(enum model_step_kind k);
const char *model_policy_name(enum model_policy p);

/*
 * The data fate of an ordinal that exists now on scale-down (its ordinal condemned) and on set
 * deletion, for the status table: the 3.5 table with the reclaim policy applied.
 */
enum model_data_fate model_fate_on_scale_down(const struct model_set *set,
                                              enum model_policy reclaim);
enum model_data_fate model_fate_on_delete(const struct model_set *set, enum model_policy reclaim);

/* ---- (c) ordering ---- */

enum model_phase {
    MODEL_PHASE_ABSENT = 0, /* no claim of this ordinal */
    MODEL_PHASE_PENDING,
    MODEL_PHASE_BOUND,
    MODEL_PHASE_LOST,
};

struct model_slot {
    int32_t ordinal;
    enum model_phase phase;
};

/* Why an ordinal may not be admitted yet. */
struct model_wait {
    int32_t blocker;        /* the lowest ordinal in [start, ordinal) not Bound, or -1 */
    enum model_phase phase; /* its phase */
};

/*
 * Ordered admission: a Pending claim of ordinal N of one template may be provisioned when every
 * ordinal in [start, N) of that template has a Bound claim (reference: issue 11). `slots` are
 * the template's claims (any order, ordinals unique; missing ordinals are ABSENT). Ordinals
 * below start are not waited for. Returns true when N may go; otherwise false and *ret_wait
 * (may be NULL) names the blocker.
 */
bool model_may_admit(int32_t start, const struct model_slot *slots, size_t n, int32_t ordinal,
                     struct model_wait *ret_wait);

/* A store waiting for, or in, release. */
enum model_release_state {
    MODEL_REL_WAITING = 0, /* claim gone, PV Released, reclaim Delete: wants deletion */
    MODEL_REL_APPROVED,    /* approved, deletion in progress */
};
struct model_release {
    int32_t ordinal;
    enum model_release_state state;
    bool in_use; /* still published or staged on some node */
};

/*
 * Ordered release within one set: the stores that may be approved now. The highest WAITING
 * ordinal goes next, and only when no APPROVED store is still in progress (one ordinal at a
 * time, ties of equal ordinal from several templates together) and none of that ordinal is
 * in use. Writes the indexes (into `rel`) of the approvable entries to ret (capacity cap) and
 * returns how many; 0 = nothing now.
 */
size_t model_release_next(const struct model_release *rel, size_t n, size_t *ret, size_t cap);

#endif
