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
 * An exec credential plugin (users[].user.exec, client.authentication.k8s.io/v1 or v1beta1) is
 * kept as its description (struct kube_exec) and run by the client (kube_auth.h). auth-provider
 * and basic authentication are not supported (-EOPNOTSUPP). A bearer token, a token file or an
 * exec plugin with a plain http:// server is refused unless the cluster says
 * insecure-skip-tls-verify: the token would cross the network in clear text.
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

enum kube_exec_interactive {
    KUBE_EXEC_NEVER,        /* the plugin must never read stdin */
    KUBE_EXEC_IF_AVAILABLE, /* it may; a daemon has no terminal, so it runs as Never */
    KUBE_EXEC_ALWAYS,       /* refused at load time: a daemon cannot answer a prompt */
};

/* users[].user.exec of a kubeconfig. */
struct kube_exec {
    char *command; /* owned: absolute, relative to the kubeconfig (has a '/'), or a name
                      looked up in $PATH when the plugin runs */
    char **args;   /* owned, nargs entries */
    size_t nargs;
    char **env; /* owned "NAME=value" entries added to the plugin's environment */
    size_t nenv;
    char *api_version;  /* owned: client.authentication.k8s.io/v1 or /v1beta1 */
    char *install_hint; /* owned, or NULL: shown when the command is not found */
    bool provide_cluster_info;
    enum kube_exec_interactive interactive;
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
    char *proxy_url;        /* owned: http://, https:// or socks5:// proxy, or NULL */
    char *tls_server_name;  /* owned: the name for SNI and certificate checks, or NULL */
    struct kube_exec *exec; /* owned credential plugin, or NULL */

    /* Client tuning (the daemon's --kube-api-qps / --kube-api-burst). */
    double qps;              /* steady requests per second; <= 0 disables the limit */
    int burst;               /* bucket size, >= 1 */
    long timeout_ms;         /* whole non-watch request, default 30 s */
    long connect_timeout_ms; /* default 10 s */
    int max_retries;         /* retries after 429, 5xx or a transport error; default 5 */
};

#define KUBE_EXEC_API_V1 "client.authentication.k8s.io/v1"
#define KUBE_EXEC_API_V1BETA1 "client.authentication.k8s.io/v1beta1"
#define KUBE_EXEC_MAX_ARGS 48 /* args and env entries each */

/* Deep copies of an exec description (NULL on ENOMEM) and its release. */
struct kube_exec *kube_exec_dup(const struct kube_exec *e);
void kube_exec_free(struct kube_exec *e);
static inline void kube_exec_freep(struct kube_exec **e)
{
    kube_exec_free(*e);
}

/* -EINVAL (with a message) when c would send a bearer credential over plain http:// without
 * insecure-skip-tls-verify; 0 otherwise. */
int kube_config_check_transport(const struct kube_config *c);

/* Zero c and set the tuning defaults (qps 50, burst 100, ...). */
void kube_config_init(struct kube_config *c);
/* Free every owned field (secrets are wiped first) and re-init. Safe on an init'ed config. */
void kube_config_release(struct kube_config *c);

/*
 * Fill c (after kube_config_init) by the resolution order above. kubeconfig and context may be
 * NULL (context NULL = current-context). 0 or -errno: -ENOENT when nothing is configured,
 * -EINVAL for a malformed file, -EOPNOTSUPP for auth-provider or basic-auth users. On failure c
 * keeps only its tuning fields.
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
