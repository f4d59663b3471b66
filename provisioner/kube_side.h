/*
 * The daemon's Kubernetes side: the API client, and by mode either the built-in provisioner
 * (node mode) or leader election for the controller (controller mode; the StatefulSet reconciler
 * runs while leading).
 *
 * Threading: start and stop are called from main() only.
 */
#ifndef ORDINAL_KUBE_SIDE_H
#define ORDINAL_KUBE_SIDE_H

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
/* Connect and start. NULL on failure (logged). svc is borrowed and must outlive the side. */
struct kube_side *kube_side_start(const struct kube_side_config *cfg, struct csi_service *svc);
/* Stop the provisioner or release the lease, then close the client. */
void kube_side_stop(struct kube_side *k);

/* What the health endpoint reports. configured: a Kubernetes side exists; connected: the API
 * server answered; synced: the caches have listed once (node mode) or, in controller mode, the
 * leader state is known; leader: this instance holds the Lease; events_dropped: Events given up
 * under pressure. */
struct kube_side_status {
    bool configured;
    bool connected;
    bool synced;
    bool leader;
    unsigned long long events_dropped;
};

/* Fill *ret without blocking (any thread). k may be NULL: all false. */
void kube_side_status(const struct kube_side *k, struct kube_side_status *ret);

#endif
