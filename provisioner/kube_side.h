/*
 * The daemon's Kubernetes side: the API client, and by mode either the built-in provisioner
 * (node mode) or leader election for the controller (controller mode; the StatefulSet reconciler
 * runs while leading).
 *
 * Availability: only a configuration that cannot be used (a malformed kubeconfig) fails the
 * start. An API server that is away is not an error: everything that talks to it starts in the
 * background and retries forever with capped, jittered backoff, logging once per state change,
 * so the CSI services (which do not need Kubernetes) serve from the first instant, and stop is
 * prompt at any moment. Readiness is reported by kube_side_status().
 *
 * Threading: start and stop are called from main() only; kube_side_status() from any thread
 * between them.
 */
#ifndef ORDINAL_KUBE_SIDE_H
#define ORDINAL_KUBE_SIDE_H

#include <stdbool.h>

#include "csi.h"

struct kube_side_config {
    const char *kubeconfig;      /* NULL = $KUBECONFIG, in-cluster, ~/.kube/config */
    double qps;                  /* --kube-api-qps */
    int burst;                   /* --kube-api-burst */
    const char *lease_namespace; /* NULL = the client's namespace */
    const char *identity;        /* leader election identity */
    int workers;                 /* provisioner workers */
};

struct kube_side;

/* Whether the daemon should talk to Kubernetes at all: --kubeconfig given or running in a pod
 * ($KUBERNETES_SERVICE_HOST set). */
bool kube_side_wanted(const struct kube_side_config *cfg);
/* Load the configuration and start in the background; never waits for the API server. NULL on
 * a configuration that cannot be used or a failed allocation (logged). svc is borrowed and must
 * outlive the side. */
struct kube_side *kube_side_start(const struct kube_side_config *cfg, struct csi_service *svc);
/* Stop: release the lease when leading (bounded to a few seconds), abort every request in
 * flight, stop the provisioner, close the client. Returns within a few seconds whatever the API
 * server does. */
void kube_side_stop(struct kube_side *k);

struct kube_side_status {
    bool configured;                   /* a Kubernetes side is wanted (k is not NULL) */
    bool connected;                    /* the last API request got an HTTP answer */
    bool synced;                       /* node: caches synced; controller: lease state known */
    bool leader;                       /* controller: holding the lease */
    unsigned long long events_dropped; /* best-effort events not recorded */
};

/* The readiness of k (NULL: every field false or 0) into *ret. Thread-safe. */
void kube_side_status(const struct kube_side *k, struct kube_side_status *ret);

#endif
