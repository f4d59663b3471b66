/*
 * The verbs of kubectl-ordinal. Each returns the process exit status (0, 1 = an error from the
 * cluster, not found or refused) and prints its own errors on stderr. Single-threaded.
 */
#ifndef ORDINAL_KCTL_VERBS_H
#define ORDINAL_KCTL_VERBS_H

#include "args.h"
#include "kube_client.h"

struct kctl_ctx {
    struct kube_client *client; /* borrowed */
    const struct kctl_args *args;
    const char *ns; /* the namespace to use (flag, else the kubeconfig's) */
};

int kctl_status(const struct kctl_ctx *c);
int kctl_plan(const struct kctl_ctx *c);
int kctl_volumes(const struct kctl_ctx *c);
int kctl_reclaim(const struct kctl_ctx *c);

/* Print a cluster error as kubectl does ("Error from server (NotFound): ...") and return 1. */
int kctl_cluster_error(int r, const struct kube_status *st, const char *what);

#endif
