/*
 * Exec credential plugins (users[].user.exec of a kubeconfig), as kubectl runs them: the
 * plugin's command with its args, the daemon's environment plus the kubeconfig's env entries and
 * KUBERNETES_EXEC_INFO (an ExecCredential with spec.interactive false and, with
 * provideClusterInfo, spec.cluster), stdin /dev/null, through exec_run() (posix_spawn, argv only,
 * never a shell, a timeout, capped output). Its stdout is an ExecCredential whose status holds a
 * token, or a client certificate and key (PEM), and maybe an expirationTimestamp.
 *
 * The credential is cached until it expires (never, without an expiry) or until the API server
 * answers 401 to it (kube_auth_invalidate()); then the next request runs the plugin again. One
 * run at a time: other threads that need the credential wait for it instead of starting more.
 *
 * Secrets: the token and the key are wiped when released and never logged; messages name the
 * plugin and quote at most the first line of its stderr.
 *
 * Threading: a struct kube_auth is shared by every thread of one client; its mutex is never
 * held while the plugin runs (a condition variable hands the result to the waiting threads).
 */
#ifndef ORDINAL_KUBE_AUTH_H
#define ORDINAL_KUBE_AUTH_H

#include <stddef.h>

#include "kube_config.h"

#define KUBE_EXEC_TIMEOUT_MS 60000
#define KUBE_EXEC_OUT_MAX (1024 * 1024)

struct kube_cred {
    char *token;           /* owned secret, or NULL */
    struct kube_blob cert; /* owned PEM, or unset */
    struct kube_blob key;  /* owned PEM secret, or unset */
    double expires;        /* wall-clock seconds; 0 = does not expire */
};

void kube_cred_release(struct kube_cred *c);

struct kube_auth;

/* A plugin runner for cfg->exec (must be set) with cfg's cluster for KUBERNETES_EXEC_INFO.
 * NULL on ENOMEM. */
struct kube_auth *kube_auth_new(const struct kube_config *cfg);
void kube_auth_free(struct kube_auth *a);

/*
 * A copy of the current credential in *ret (release with kube_cred_release()), running the
 * plugin first when none is cached, the cached one has expired or was invalidated. *ret_gen
 * identifies the credential for kube_auth_invalidate(). 0 or -errno with be_last_error() set:
 * -ENOENT (command not found; the message carries the installHint), -ETIMEDOUT, -EIO (the plugin
 * failed), -EBADMSG (its output is not a valid ExecCredential).
 */
int kube_auth_get(struct kube_auth *a, struct kube_cred *ret, unsigned long *ret_gen);

/* The API server refused credential gen (401): forget it, unless a newer one already came. */
void kube_auth_invalidate(struct kube_auth *a, unsigned long gen);

/* How many times the plugin has run (tests, diagnostics). */
unsigned long kube_auth_runs(struct kube_auth *a);

/* Parse an ExecCredential (stdout of a plugin) of api_version into *ret. 0, or -EBADMSG with a
 * message in err (never containing the credential). */
int kube_auth__parse(const char *json, size_t len, const char *api_version, struct kube_cred *ret,
                     char *err, size_t errlen);

#endif
