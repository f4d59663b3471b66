/*
 * Exec credential plugins (kube_auth.h): environment, command lookup, the run through exec_run(),
 * the ExecCredential parser and the cache.
 */
#include "kube_auth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"
#include "kube_util.h"
#include "util.h"

extern char **environ;

#define PATH_CAP 4096

struct kube_auth {
    struct kube_exec *exec; /* owned */
    char *exec_info;        /* owned "KUBERNETES_EXEC_INFO=..." */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool running;          /* a thread is running the plugin (mu) */
    bool valid;            /* cred holds a credential (mu) */
    struct kube_cred cred; /* owned (mu) */
    unsigned long gen;     /* bumped at every new credential (mu) */
    unsigned long runs;    /* (mu) */
};

static void wipe(void *p, size_t n)
{
    for (volatile unsigned char *b = p; b && n > 0; n--)
        *b++ = 0;
}

void kube_cred_release(struct kube_cred *c)
{
    if (c->token) {
        wipe(c->token, strlen(c->token));
        free(c->token);
    }
    wipe(c->cert.data, c->cert.len);
    free(c->cert.data);
    wipe(c->key.data, c->key.len);
    free(c->key.data);
    *c = (struct kube_cred){0};
}

static int cred_copy(const struct kube_cred *src, struct kube_cred *dst)
{
    *dst = (struct kube_cred){.expires = src->expires};
    if (src->token && !(dst->token = strdup(src->token)))
        goto fail;
    if (src->cert.data) {
        if (!(dst->cert.data = malloc(src->cert.len + 1)))
            goto fail;
        memcpy(dst->cert.data, src->cert.data, src->cert.len + 1);
        dst->cert.len = src->cert.len;
    }
    if (src->key.data) {
        if (!(dst->key.data = malloc(src->key.len + 1)))
            goto fail;
        memcpy(dst->key.data, src->key.data, src->key.len + 1);
        dst->key.len = src->key.len;
    }
    return 0;
fail:
    kube_cred_release(dst);
    return -ENOMEM;
}

static char *base64_encode(const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);

        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static void cjson_deletep(cJSON **p)
{
    cJSON_Delete(*p);
}

/* "KUBERNETES_EXEC_INFO=" plus the ExecCredential the plugin reads its context from. */
static char *exec_info(const struct kube_config *cfg)
{
    _cleanup_(cjson_deletep) cJSON *root = cJSON_CreateObject();
    cJSON *spec, *cluster;
    char *json, *ret = NULL;

    if (!root || !cJSON_AddStringToObject(root, "apiVersion", cfg->exec->api_version) ||
        !cJSON_AddStringToObject(root, "kind", "ExecCredential") ||
        !(spec = cJSON_AddObjectToObject(root, "spec")) ||
        !cJSON_AddFalseToObject(spec, "interactive"))
        return NULL;
    if (cfg->exec->provide_cluster_info) {
        if (!(cluster = cJSON_AddObjectToObject(spec, "cluster")) ||
            !cJSON_AddStringToObject(cluster, "server", cfg->server))
            return NULL;
        if (cfg->tls_server_name &&
            !cJSON_AddStringToObject(cluster, "tls-server-name", cfg->tls_server_name))
            return NULL;
        if (cfg->insecure_skip_tls_verify &&
            !cJSON_AddTrueToObject(cluster, "insecure-skip-tls-verify"))
            return NULL;
        if (cfg->proxy_url && !cJSON_AddStringToObject(cluster, "proxy-url", cfg->proxy_url))
            return NULL;
        if (cfg->ca.data) {
            _cleanup_free_ char *b64 = base64_encode(cfg->ca.data, cfg->ca.len);

            if (!b64 || !cJSON_AddStringToObject(cluster, "certificate-authority-data", b64))
                return NULL;
        }
    }
    json = cJSON_PrintUnformatted(root);
    if (json && asprintf(&ret, "KUBERNETES_EXEC_INFO=%s", json) < 0)
        ret = NULL;
    free(json);
    return ret;
}

struct kube_auth *kube_auth_new(const struct kube_config *cfg)
{
    struct kube_auth *a;

    if (!cfg->exec)
        return NULL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->exec = kube_exec_dup(cfg->exec);
    a->exec_info = a->exec ? exec_info(cfg) : NULL;
    if (!a->exec_info) {
        kube_exec_free(a->exec);
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cond, NULL);
    return a;
}

void kube_auth_free(struct kube_auth *a)
{
    if (!a)
        return;
    kube_cred_release(&a->cred);
    kube_exec_free(a->exec);
    free(a->exec_info);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static const char *get_string(const cJSON *obj, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);

    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static int set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -EBADMSG;
}

static int pem_blob(const char *pem, struct kube_blob *b)
{
    size_t n = strlen(pem);

    b->data = malloc(n + 1);
    if (!b->data)
        return -ENOMEM;
    memcpy(b->data, pem, n + 1);
    b->len = n;
    return 0;
}

int kube_auth__parse(const char *json, size_t len, const char *api_version, struct kube_cred *ret,
                     char *err, size_t errlen)
{
    _cleanup_(cjson_deletep) cJSON *root = cJSON_ParseWithLength(json, len);
    struct kube_cred c = {0};
    const cJSON *status;
    const char *s, *cert, *key, *exp;
    int r;

    if (!cJSON_IsObject(root))
        return set_err(err, errlen, "output is not a JSON object");
    if (!(s = get_string(root, "kind")) || strcmp(s, "ExecCredential") != 0)
        return set_err(err, errlen, "output is not an ExecCredential");
    if (!(s = get_string(root, "apiVersion")) || strcmp(s, api_version) != 0)
        return set_err(err, errlen, "output's apiVersion is not the one the kubeconfig names");
    status = cJSON_GetObjectItemCaseSensitive(root, "status");
    if (!cJSON_IsObject(status))
        return set_err(err, errlen, "output has no status");
    cert = get_string(status, "clientCertificateData");
    key = get_string(status, "clientKeyData");
    if (!cert != !key)
        return set_err(err, errlen,
                       "status has one of clientCertificateData and clientKeyData without the "
                       "other");
    s = get_string(status, "token");
    if (!s && !cert)
        return set_err(err, errlen, "status has neither a token nor a client certificate");
    exp = get_string(status, "expirationTimestamp");
    if (exp && kube__parse_time(exp, &c.expires) < 0)
        return set_err(err, errlen, "status.expirationTimestamp is not an RFC 3339 time");
    if (s) {
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p == 0x7f)
                return set_err(err, errlen, "status.token has a space or control character");
        if (!(c.token = strdup(s)))
            return -ENOMEM;
    }
    if (cert && ((r = pem_blob(cert, &c.cert)) < 0 || (r = pem_blob(key, &c.key)) < 0)) {
        kube_cred_release(&c);
        return r;
    }
    *ret = c;
    return 0;
}

/* The plugin's command as an absolute path: itself when it has a '/', else looked up in the
 * daemon's $PATH as kubectl does. */
static int find_command(const char *command, char *ret, size_t cap)
{
    const char *path = getenv("PATH");
    struct stat st;

    if (strchr(command, '/')) {
        if (command[0] != '/' || strlen(command) >= cap)
            return -ENOENT;
        snprintf(ret, cap, "%s", command);
        return stat(ret, &st) == 0 && S_ISREG(st.st_mode) && access(ret, X_OK) == 0 ? 0 : -ENOENT;
    }
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        int w;

        if (n > 0 && path[0] == '/') {
            w = snprintf(ret, cap, "%.*s/%s", (int)n, path, command);
            if (w > 0 && (size_t)w < cap && stat(ret, &st) == 0 && S_ISREG(st.st_mode) &&
                access(ret, X_OK) == 0)
                return 0;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return -ENOENT;
}

/* The plugin's environment: the daemon's, minus the names the kubeconfig sets, plus those, plus
 * KUBERNETES_EXEC_INFO. The strings are borrowed; *ret is an owned array. */
static int build_env(const struct kube_auth *a, char ***ret)
{
    size_t n = 0, cap = a->exec->nenv + 2;
    char **env;

    for (char **e = environ; e && *e; e++)
        cap++;
    env = calloc(cap, sizeof(*env));
    if (!env)
        return -ENOMEM;
    for (char **e = environ; e && *e; e++) {
        size_t name = strcspn(*e, "=");
        bool overridden = strncmp(*e, "KUBERNETES_EXEC_INFO=", 21) == 0;

        for (size_t i = 0; i < a->exec->nenv && !overridden; i++)
            overridden = strncmp(*e, a->exec->env[i], name + 1) == 0;
        if (!overridden)
            env[n++] = *e;
    }
    for (size_t i = 0; i < a->exec->nenv; i++)
        env[n++] = a->exec->env[i];
    env[n++] = a->exec_info;
    env[n] = NULL;
    *ret = env;
    return 0;
}

/* Run the plugin once: a new credential in *ret. */
static int run_plugin(struct kube_auth *a, struct kube_cred *ret)
{
    const struct kube_exec *x = a->exec;
    _cleanup_free_ char **env = NULL;
    const char *argv[EXEC_ARGS_MAX + 1];
    char path[PATH_CAP], reason[200], err[160];
    struct exec_result res;
    int r;

    if (find_command(x->command, path, sizeof(path)) < 0)
        return be_error(-ENOENT, "exec plugin %s not found%s%s", x->command,
                        x->install_hint ? ": " : "", x->install_hint ? x->install_hint : "");
    if (x->nargs + 1 > EXEC_ARGS_MAX)
        return be_error(-E2BIG, "exec plugin %s: too many args", x->command);
    argv[0] = path;
    for (size_t i = 0; i < x->nargs; i++)
        argv[i + 1] = x->args[i];
    argv[x->nargs + 1] = NULL;
    r = build_env(a, &env);
    if (r < 0)
        return r;
    r = exec_run(argv,
                 &(struct exec_opts){
                     .timeout_ms = KUBE_EXEC_TIMEOUT_MS, .out_max = KUBE_EXEC_OUT_MAX, .env = env},
                 &res);
    if (r == -ETIMEDOUT) {
        exec_result_release(&res);
        return be_error(r, "exec plugin %s: no answer within %d s", x->command,
                        KUBE_EXEC_TIMEOUT_MS / 1000);
    }
    if (r < 0)
        return be_error(r, "exec plugin %s: cannot run it: %s", x->command, strerror(-r));
    if (res.exit_code != 0) {
        exec_reason(res.err, reason, sizeof(reason));
        if (reason[0])
            r = be_error(-EIO, "exec plugin %s failed (exit %d): %s", x->command, res.exit_code,
                         reason);
        else
            r = be_error(-EIO, "exec plugin %s failed (exit %d)", x->command, res.exit_code);
        exec_result_release(&res);
        return r;
    }
    if (res.out_truncated)
        r = be_error(-EBADMSG, "exec plugin %s: output larger than %d bytes", x->command,
                     KUBE_EXEC_OUT_MAX);
    else if ((r = kube_auth__parse(res.out, res.out_len, x->api_version, ret, err, sizeof(err))) ==
             -EBADMSG)
        be_error(r, "exec plugin %s: %s", x->command, err);
    wipe(res.out, res.out_len);
    exec_result_release(&res);
    return r;
}

static bool usable(const struct kube_auth *a)
{
    return a->valid && (a->cred.expires == 0 || kube__wall() < a->cred.expires);
}

int kube_auth_get(struct kube_auth *a, struct kube_cred *ret, unsigned long *ret_gen)
{
    struct kube_cred fresh = {0};
    int r;

    pthread_mutex_lock(&a->mu);
    while (a->running && !usable(a))
        pthread_cond_wait(&a->cond, &a->mu); /* bounded: the run has a timeout */
    if (!usable(a)) {
        a->running = true;
        a->runs++;
        pthread_mutex_unlock(&a->mu);
        r = run_plugin(a, &fresh);
        pthread_mutex_lock(&a->mu);
        a->running = false;
        pthread_cond_broadcast(&a->cond);
        if (r < 0) {
            pthread_mutex_unlock(&a->mu);
            return r;
        }
        kube_cred_release(&a->cred);
        a->cred = fresh;
        a->valid = true;
        a->gen++;
    }
    r = cred_copy(&a->cred, ret);
    if (r == 0 && ret_gen)
        *ret_gen = a->gen;
    pthread_mutex_unlock(&a->mu);
    return r;
}

void kube_auth_invalidate(struct kube_auth *a, unsigned long gen)
{
    pthread_mutex_lock(&a->mu);
    if (a->valid && a->gen == gen) {
        kube_cred_release(&a->cred);
        a->valid = false;
    }
    pthread_mutex_unlock(&a->mu);
}

unsigned long kube_auth_runs(struct kube_auth *a)
{
    unsigned long n;

    pthread_mutex_lock(&a->mu);
    n = a->runs;
    pthread_mutex_unlock(&a->mu);
    return n;
}
