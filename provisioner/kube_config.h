/*
 * Where the Kubernetes API server is and how to authenticate to it: a kubeconfig file (or a
 * list of them, merged as kubectl does) or the in-cluster service account.
 *
 * Resolution order of kube_config_load(): an explicit --kubeconfig path, else $KUBECONFIG
 * (colon-separated; the first file that sets a field wins), else in-cluster when
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are set, else ~/.kube/config.
 *
 * Files named by the kubeconfig (certificate-authority, client-certificate, client-key) are read
 * at load time into memory, so the client hands every credential to libcurl as a blob; relative
 * paths are resolved against the directory of the kubeconfig that names them. A token file
 * (tokenFile, or the in-cluster token) is kept as a path and re-read by the client as it rotates.
 * exec and auth-provider credentials are not supported (-EOPNOTSUPP).
 *
 * Errors are -errno with an explanation in be_last_error() (util.h); the explanation never
 * contains a secret. Threading: a struct kube_config is plain data, not locked.
 */
#ifndef ORDINAL_KUBE_CONFIG_H
#define ORDINAL_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define KUBE_INCLUSTER_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBE_DEFAULT_QPS 50.0
#define KUBE_DEFAULT_BURST 100
/* Cap on any file a kubeconfig names, and on the kubeconfig itself. */
#define KUBE_CONFIG_MAX_FILE (4 * 1024 * 1024)

struct kube_blob {
    unsigned char *data; /* owned, NUL-terminated for convenience; NULL when unset */
    size_t len;
};

struct kube_config {
    char *server;        /* owned: "https://host:port[/prefix]" without a trailing slash */
    char *namespace;     /* owned: the context's namespace or the pod's; "default" otherwise */
    char *context;       /* owned: the kubeconfig context used; NULL in-cluster */
    struct kube_blob ca; /* owned PEM; unset = the system's CAs */
    struct kube_blob client_cert; /* owned PEM */
    struct kube_blob client_key;  /* owned PEM; secret */
    char *token;                  /* owned bearer token; secret */
    char *token_file;             /* owned path; re-read every 60 s, wins over token */
    bool insecure_skip_tls_verify;

    /* Client tuning (the daemon's --kube-api-qps / --kube-api-burst). */
    double qps;              /* steady requests per second; <= 0 disables the limit */
    int burst;               /* bucket size, >= 1 */
    long timeout_ms;         /* whole non-watch request, default 30 s */
    long connect_timeout_ms; /* default 10 s */
    int max_retries;         /* retries after 429, 5xx or a transport error; default 5 */
};

/* Zero c and set the tuning defaults (qps 50, burst 100, ...). */
void kube_config_init(struct kube_config *c);
/* Free every owned field (secrets are wiped first) and re-init. Safe on an init'ed config. */
void kube_config_release(struct kube_config *c);

/*
 * Fill c (after kube_config_init) by the resolution order above. kubeconfig and context may be
 * NULL (context NULL = current-context). 0 or -errno: -ENOENT when nothing is configured,
 * -EINVAL for a malformed file, -EOPNOTSUPP for exec/auth-provider users. On failure c keeps
 * only its tuning fields.
 */
int kube_config_load(struct kube_config *c, const char *kubeconfig, const char *context);

/* Load from the n kubeconfig files in paths, merged (first definition wins). */
int kube_config_load_files(struct kube_config *c, const char *const *paths, size_t n,
                           const char *context);

/* Load from one kubeconfig text (YAML or JSON) of len bytes; relative file names resolve against
 * dir (NULL = the current directory). */
int kube_config_parse(struct kube_config *c, const char *text, size_t len, const char *dir,
                      const char *context);

/* In-cluster: server from $KUBERNETES_SERVICE_HOST/_PORT, token file, CA and namespace from
 * dir (NULL = KUBE_INCLUSTER_DIR). -ENOENT when the environment or token is missing. */
int kube_config_incluster(struct kube_config *c, const char *dir);

#endif
