/*
 * kubeconfig and in-cluster configuration (kube_config.h). Every field read from a kubeconfig is
 * type-checked; a wrong type is -EINVAL naming the field and the entry, never the value (it
 * could be a secret).
 */
#include "kube_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_util.h"
#include "kube_yaml.h"
#include "util.h"

static void wipe_free(void *p, size_t len)
{
    if (!p)
        return;
    /* volatile so the wipe of a secret is not optimised away before free() */
    for (volatile unsigned char *b = p; len > 0; len--)
        *b++ = 0;
    free(p);
}

static void blob_release(struct kube_blob *b)
{
    wipe_free(b->data, b->len);
    b->data = NULL;
    b->len = 0;
}

void kube_config_init(struct kube_config *c)
{
    memset(c, 0, sizeof(*c));
    c->qps = KUBE_DEFAULT_QPS;
    c->burst = KUBE_DEFAULT_BURST;
    c->timeout_ms = 30000;
    c->connect_timeout_ms = 10000;
    c->max_retries = 5;
}

/* Free the connection fields, keep the tuning. */
static void clear_target(struct kube_config *c)
{
    free(c->server);
    free(c->namespace);
    free(c->context);
    blob_release(&c->ca);
    blob_release(&c->client_cert);
    blob_release(&c->client_key);
    if (c->token)
        wipe_free(c->token, strlen(c->token));
    free(c->token_file);
    free(c->proxy_url);
    free(c->tls_server_name);
    kube_exec_free(c->exec);
    c->server = c->namespace = c->context = c->token = c->token_file = NULL;
    c->proxy_url = c->tls_server_name = NULL;
    c->exec = NULL;
    c->insecure_skip_tls_verify = false;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void kube_exec_free(struct kube_exec *e)
{
    if (!e)
        return;
    free(e->command);
    strv_free(e->args, e->nargs);
    /* env values may hold secrets (a plugin's access key): wipe them */
    for (size_t i = 0; i < e->nenv; i++)
        if (e->env[i])
            wipe_free(e->env[i], strlen(e->env[i]));
    free(e->env);
    free(e->api_version);
    free(e->install_hint);
    free(e);
}

static int strv_dup(char **src, size_t n, char ***ret)
{
    char **v = calloc(n ? n : 1, sizeof(*v));

    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(src[i]))) {
            strv_free(v, i);
            return -ENOMEM;
        }
    *ret = v;
    return 0;
}

struct kube_exec *kube_exec_dup(const struct kube_exec *e)
{
    struct kube_exec *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->provide_cluster_info = e->provide_cluster_info;
    d->interactive = e->interactive;
    if (!(d->command = strdup(e->command)) || !(d->api_version = strdup(e->api_version)) ||
        (e->install_hint && !(d->install_hint = strdup(e->install_hint))) ||
        strv_dup(e->args, e->nargs, &d->args) < 0) {
        kube_exec_free(d);
        return NULL;
    }
    d->nargs = e->nargs;
    if (strv_dup(e->env, e->nenv, &d->env) < 0) {
        kube_exec_free(d);
        return NULL;
    }
    d->nenv = e->nenv;
    return d;
}

int kube_config_check_transport(const struct kube_config *c)
{
    if (!c->server || strncmp(c->server, "http://", 7) != 0 || c->insecure_skip_tls_verify)
        return 0;
    if (c->token || c->token_file || c->exec)
        return be_error(-EINVAL,
                        "kubeconfig: refusing to send a bearer token over plain http:// to %s; "
                        "use https, or set insecure-skip-tls-verify on the cluster to accept it",
                        c->server);
    return 0;
}

void kube_config_release(struct kube_config *c)
{
    clear_target(c);
    kube_config_init(c);
}

struct kdoc {
    cJSON *root; /* owned */
    char *dir;   /* owned; NULL = relative to the current directory */
};

/* Parse one kubeconfig (YAML, or JSON which is YAML too) into *ret (owned). */
static int parse_doc(const char *text, size_t len, const char *name, cJSON **ret)
{
    char err[256];
    int r = kube_yaml_parse(text, len, ret, err, sizeof(err));

    if (r < 0)
        return be_error(r, "kubeconfig %s: %s", name, err[0] ? err : strerror(-r));
    if (!cJSON_IsObject(*ret)) {
        cJSON_Delete(*ret);
        *ret = NULL;
        return be_error(-EINVAL, "kubeconfig %s: top level is not a mapping", name);
    }
    return 0;
}

/* A string field of obj: 0 with *ret borrowed (NULL if absent or null), -EINVAL if not a
 * string. */
static int get_str(const cJSON *obj, const char *field, const char *what, const char **ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);

    *ret = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return be_error(-EINVAL, "kubeconfig: %s: field %s is not a string", what, field);
    if (v->valuestring[0])
        *ret = v->valuestring;
    return 0;
}

static int get_bool(const cJSON *obj, const char *field, const char *what, bool *ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);

    *ret = false;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsBool(v)) {
        *ret = cJSON_IsTrue(v);
        return 0;
    }
    if (cJSON_IsString(v)) {
        /* quoted, or the YAML 1.1 words kubectl's YAML reader also takes as booleans */
        static const char *const yes[] = {"true", "yes", "Yes", "YES", "on", "On", "ON"};
        static const char *const no[] = {"false", "no", "No", "NO", "off", "Off", "OFF"};

        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
            if (strcmp(v->valuestring, yes[i]) == 0)
                return *ret = true, 0;
            if (strcmp(v->valuestring, no[i]) == 0)
                return *ret = false, 0;
        }
    }
    return be_error(-EINVAL, "kubeconfig: %s: field %s is not a boolean", what, field);
}

/* Find the entry named name in the list `list` ("clusters", "users", "contexts") of the first
 * document that has it; its inner object (key `inner`) borrowed in *ret, its doc in *ret_doc. */
static int find_named(const struct kdoc *docs, size_t n, const char *list, const char *inner,
                      const char *name, const cJSON **ret, const struct kdoc **ret_doc)
{
    for (size_t d = 0; d < n; d++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(docs[d].root, list);
        const cJSON *e;

        if (!arr || cJSON_IsNull(arr))
            continue;
        if (!cJSON_IsArray(arr))
            return be_error(-EINVAL, "kubeconfig: %s is not a list", list);
        cJSON_ArrayForEach(e, arr)
        {
            const char *ename;
            const cJSON *in;

            if (!cJSON_IsObject(e))
                return be_error(-EINVAL, "kubeconfig: an entry of %s is not a mapping", list);
            if (get_str(e, "name", list, &ename) < 0)
                return -EINVAL;
            if (!ename || strcmp(ename, name) != 0)
                continue;
            in = cJSON_GetObjectItemCaseSensitive(e, inner);
            if (in && !cJSON_IsNull(in) && !cJSON_IsObject(in))
                return be_error(-EINVAL, "kubeconfig: %s entry %s: %s is not a mapping", list, name,
                                inner);
            *ret = in && cJSON_IsObject(in) ? in : NULL;
            *ret_doc = &docs[d];
            return 0;
        }
    }
    return -ENOENT;
}

static int resolve_path(const char *dir, const char *path, char **ret)
{
    int w;

    if (path[0] == '/' || !dir) {
        *ret = strdup(path);
        return *ret ? 0 : -ENOMEM;
    }
    w = asprintf(ret, "%s/%s", dir, path);
    return w < 0 ? -ENOMEM : 0;
}

/* Fill blob from a base64 data field or a file field (both set = -EINVAL). */
static int load_blob(const cJSON *obj, const struct kdoc *doc, const char *data_field,
                     const char *file_field, const char *what, struct kube_blob *b)
{
    const char *data, *file;
    int r;

    if (get_str(obj, data_field, what, &data) < 0 || get_str(obj, file_field, what, &file) < 0)
        return -EINVAL;
    if (data && file)
        return be_error(-EINVAL, "kubeconfig: %s: both %s and %s are set", what, data_field,
                        file_field);
    if (data) {
        r = kube__base64_decode(data, strlen(data), &b->data, &b->len);
        if (r < 0)
            return be_error(r, "kubeconfig: %s: %s is not valid base64", what, data_field);
    } else if (file) {
        _cleanup_free_ char *path = NULL;
        char *buf;

        r = resolve_path(doc->dir, file, &path);
        if (r < 0)
            return r;
        r = kube__read_file(path, KUBE_CONFIG_MAX_FILE, &buf, &b->len);
        if (r < 0)
            return be_error(r, "kubeconfig: %s: cannot read %s %s: %s", what, file_field, path,
                            strerror(-r));
        b->data = (unsigned char *)buf;
    }
    if (b->data && b->len == 0)
        return be_error(-EINVAL, "kubeconfig: %s: %s is empty", what,
                        data ? data_field : file_field);
    return 0;
}

static int check_server(const char *server, const char *what)
{
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
        return be_error(-EINVAL, "kubeconfig: %s: server must be an http(s) URL", what);
    for (const char *p = server; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || (unsigned char)*p >= 0x7f)
            return be_error(-EINVAL, "kubeconfig: %s: server URL has a forbidden character", what);
    return 0;
}

static int set_server(struct kube_config *c, const char *server)
{
    size_t len = strlen(server);

    while (len > 0 && server[len - 1] == '/')
        len--;
    c->server = strndup(server, len);
    return c->server ? 0 : -ENOMEM;
}

/* A list of strings (args): a copy in *ret, n entries. */
static int get_strv(const cJSON *obj, const char *field, const char *what, char ***ret,
                    size_t *ret_n)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, field), *e;
    size_t n = 0;
    char **v;

    *ret = NULL;
    *ret_n = 0;
    if (!arr || cJSON_IsNull(arr))
        return 0;
    if (!cJSON_IsArray(arr))
        return be_error(-EINVAL, "kubeconfig: %s: %s is not a list", what, field);
    if (cJSON_GetArraySize(arr) > KUBE_EXEC_MAX_ARGS)
        return be_error(-EINVAL, "kubeconfig: %s: more than %d %s", what, KUBE_EXEC_MAX_ARGS,
                        field);
    v = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsString(e)) {
            strv_free(v, n);
            return be_error(-EINVAL, "kubeconfig: %s: an entry of %s is not a string", what, field);
        }
        if (!(v[n++] = strdup(e->valuestring))) {
            strv_free(v, n);
            return -ENOMEM;
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

static bool env_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s == '=' || (unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* users[].user.exec into a new struct kube_exec (*ret). */
static int parse_exec(const cJSON *x, const struct kdoc *doc, const char *user_name,
                      struct kube_exec **ret)
{
    _cleanup_(kube_exec_freep) struct kube_exec *e = calloc(1, sizeof(*e));
    const char *command, *api, *hint, *mode;
    const cJSON *env, *item;
    size_t n = 0;
    int r;

    if (!e)
        return -ENOMEM;
    if (!cJSON_IsObject(x))
        return be_error(-EINVAL, "kubeconfig: user %s: exec is not a mapping", user_name);
    if (get_str(x, "command", "exec", &command) < 0 || get_str(x, "apiVersion", "exec", &api) < 0 ||
        get_str(x, "installHint", "exec", &hint) < 0 ||
        get_str(x, "interactiveMode", "exec", &mode) < 0 ||
        get_bool(x, "provideClusterInfo", "exec", &e->provide_cluster_info) < 0)
        return -EINVAL;
    if (!command)
        return be_error(-EINVAL, "kubeconfig: user %s: exec has no command", user_name);
    if (!api || (strcmp(api, KUBE_EXEC_API_V1) != 0 && strcmp(api, KUBE_EXEC_API_V1BETA1) != 0))
        return be_error(-EINVAL,
                        "kubeconfig: user %s: exec apiVersion must be " KUBE_EXEC_API_V1
                        " or " KUBE_EXEC_API_V1BETA1,
                        user_name);
    if (!mode && strcmp(api, KUBE_EXEC_API_V1) == 0)
        return be_error(
            -EINVAL, "kubeconfig: user %s: exec interactiveMode is required with " KUBE_EXEC_API_V1,
            user_name);
    if (!mode || strcmp(mode, "IfAvailable") == 0) {
        e->interactive = KUBE_EXEC_IF_AVAILABLE; /* v1beta1's default */
    } else if (strcmp(mode, "Never") == 0) {
        e->interactive = KUBE_EXEC_NEVER;
    } else if (strcmp(mode, "Always") == 0) {
        return be_error(-EOPNOTSUPP,
                        "kubeconfig: user %s: exec interactiveMode Always needs a terminal, "
                        "which a daemon does not have",
                        user_name);
    } else {
        return be_error(-EINVAL,
                        "kubeconfig: user %s: exec interactiveMode must be Never, IfAvailable "
                        "or Always",
                        user_name);
    }
    /* a command with a '/' and not absolute is relative to the kubeconfig's directory */
    if (strchr(command, '/'))
        r = resolve_path(doc->dir, command, &e->command);
    else
        r = (e->command = strdup(command)) ? 0 : -ENOMEM;
    if (r < 0)
        return r;
    if (!(e->api_version = strdup(api)) || (hint && !(e->install_hint = strdup(hint))))
        return -ENOMEM;
    r = get_strv(x, "args", "exec", &e->args, &e->nargs);
    if (r < 0)
        return r;
    env = cJSON_GetObjectItemCaseSensitive(x, "env");
    if (env && !cJSON_IsNull(env)) {
        if (!cJSON_IsArray(env))
            return be_error(-EINVAL, "kubeconfig: user %s: exec env is not a list", user_name);
        if (cJSON_GetArraySize(env) > KUBE_EXEC_MAX_ARGS)
            return be_error(-EINVAL, "kubeconfig: user %s: exec env has more than %d entries",
                            user_name, KUBE_EXEC_MAX_ARGS);
        e->env = calloc((size_t)cJSON_GetArraySize(env) + 1, sizeof(*e->env));
        if (!e->env)
            return -ENOMEM;
        cJSON_ArrayForEach(item, env)
        {
            const char *name, *value;

            if (!cJSON_IsObject(item) || get_str(item, "name", "exec env", &name) < 0 ||
                get_str(item, "value", "exec env", &value) < 0 || !name || !env_name_ok(name))
                return be_error(-EINVAL,
                                "kubeconfig: user %s: an exec env entry needs a name (no '=') "
                                "and a string value",
                                user_name);
            if (asprintf(&e->env[n], "%s=%s", name, value ? value : "") < 0)
                return -ENOMEM;
            e->nenv = ++n;
        }
    }
    *ret = TAKE_PTR(e);
    return 0;
}

static int check_proxy(const char *proxy, const char *what)
{
    if (strncmp(proxy, "http://", 7) != 0 && strncmp(proxy, "https://", 8) != 0 &&
        strncmp(proxy, "socks5://", 9) != 0)
        return be_error(-EINVAL,
                        "kubeconfig: %s: proxy-url must be an http://, https:// or socks5:// URL",
                        what);
    for (const char *p = proxy; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return be_error(-EINVAL, "kubeconfig: %s: proxy-url has a forbidden character", what);
    return 0;
}

static int check_host_name(const char *name, const char *what)
{
    if (strlen(name) > 253)
        return be_error(-EINVAL, "kubeconfig: %s: tls-server-name is too long", what);
    for (const char *p = name; *p; p++)
        if (!(*p == '.' || *p == '-' || *p == '_' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return be_error(-EINVAL, "kubeconfig: %s: tls-server-name is not a host name", what);
    return 0;
}

static int load_docs(struct kube_config *c, const struct kdoc *docs, size_t n, const char *context)
{
    const cJSON *ctx = NULL, *cluster = NULL, *user = NULL;
    const struct kdoc *ctx_doc, *cluster_doc, *user_doc = NULL;
    const char *cluster_name, *user_name, *ns, *server, *token, *token_file, *proxy, *tls_name;
    const cJSON *exec;
    int r;

    if (!context)
        for (size_t d = 0; d < n && !context; d++)
            if (get_str(docs[d].root, "current-context", "config", &context) < 0)
                return -EINVAL;
    if (!context)
        return be_error(-EINVAL, "kubeconfig: no current-context set and no context given");
    r = find_named(docs, n, "contexts", "context", context, &ctx, &ctx_doc);
    if (r == -ENOENT)
        return be_error(-EINVAL, "kubeconfig: context %s not found", context);
    if (r < 0)
        return r;
    if (!ctx)
        return be_error(-EINVAL, "kubeconfig: context %s is empty", context);
    if (get_str(ctx, "cluster", "context", &cluster_name) < 0 ||
        get_str(ctx, "user", "context", &user_name) < 0 ||
        get_str(ctx, "namespace", "context", &ns) < 0)
        return -EINVAL;
    if (!cluster_name)
        return be_error(-EINVAL, "kubeconfig: context %s names no cluster", context);
    r = find_named(docs, n, "clusters", "cluster", cluster_name, &cluster, &cluster_doc);
    if (r == -ENOENT)
        return be_error(-EINVAL, "kubeconfig: cluster %s not found", cluster_name);
    if (r < 0)
        return r;
    if (!cluster || get_str(cluster, "server", "cluster", &server) < 0 || !server)
        return be_error(-EINVAL, "kubeconfig: cluster %s has no server", cluster_name);
    r = check_server(server, cluster_name);
    if (r < 0)
        return r;
    if (user_name) {
        r = find_named(docs, n, "users", "user", user_name, &user, &user_doc);
        if (r == -ENOENT)
            return be_error(-EINVAL, "kubeconfig: user %s not found", user_name);
        if (r < 0)
            return r;
    }

    if (set_server(c, server) < 0)
        return -ENOMEM;
    c->namespace = strdup(ns ? ns : "default");
    c->context = strdup(context);
    if (!c->namespace || !c->context)
        return -ENOMEM;
    if (get_bool(cluster, "insecure-skip-tls-verify", "cluster", &c->insecure_skip_tls_verify) < 0)
        return -EINVAL;
    r = load_blob(cluster, cluster_doc, "certificate-authority-data", "certificate-authority",
                  "cluster", &c->ca);
    if (r < 0)
        return r;
    if (c->insecure_skip_tls_verify && c->ca.data)
        return be_error(-EINVAL,
                        "kubeconfig: cluster %s: a certificate authority and "
                        "insecure-skip-tls-verify are both set",
                        cluster_name);
    if (get_str(cluster, "proxy-url", "cluster", &proxy) < 0 ||
        get_str(cluster, "tls-server-name", "cluster", &tls_name) < 0)
        return -EINVAL;
    if (proxy) {
        r = check_proxy(proxy, cluster_name);
        if (r < 0)
            return r;
        /* a socks5:// proxy of kubectl resolves names at the proxy: curl calls that socks5h */
        if (strncmp(proxy, "socks5://", 9) == 0)
            r = asprintf(&c->proxy_url, "socks5h://%s", proxy + 9) < 0 ? -ENOMEM : 0;
        else
            r = (c->proxy_url = strdup(proxy)) ? 0 : -ENOMEM;
        if (r < 0) {
            c->proxy_url = NULL;
            return r;
        }
    }
    if (tls_name) {
        r = check_host_name(tls_name, cluster_name);
        if (r < 0)
            return r;
        if (!(c->tls_server_name = strdup(tls_name)))
            return -ENOMEM;
    }
    if (!user)
        return kube_config_check_transport(c);
    if (cJSON_GetObjectItemCaseSensitive(user, "auth-provider"))
        return be_error(-EOPNOTSUPP,
                        "kubeconfig: user %s: auth-provider credentials are not supported; "
                        "use an exec plugin",
                        user_name);
    exec = cJSON_GetObjectItemCaseSensitive(user, "exec");
    if (exec && !cJSON_IsNull(exec)) {
        r = parse_exec(exec, user_doc, user_name, &c->exec);
        if (r < 0)
            return r;
    }
    if (cJSON_GetObjectItemCaseSensitive(user, "username") ||
        cJSON_GetObjectItemCaseSensitive(user, "password"))
        return be_error(-EOPNOTSUPP, "kubeconfig: user %s: basic authentication is not supported",
                        user_name);
    r = load_blob(user, user_doc, "client-certificate-data", "client-certificate", "user",
                  &c->client_cert);
    if (r < 0)
        return r;
    r = load_blob(user, user_doc, "client-key-data", "client-key", "user", &c->client_key);
    if (r < 0)
        return r;
    if (!c->client_cert.data != !c->client_key.data)
        return be_error(-EINVAL,
                        "kubeconfig: user %s: a client certificate needs a client key "
                        "and vice versa",
                        user_name);
    if (get_str(user, "token", "user", &token) < 0 ||
        get_str(user, "tokenFile", "user", &token_file) < 0)
        return -EINVAL;
    if (token && !(c->token = strdup(token)))
        return -ENOMEM;
    if (token_file) {
        r = resolve_path(user_doc->dir, token_file, &c->token_file);
        if (r < 0)
            return r;
    }
    return kube_config_check_transport(c);
}

static void docs_free(struct kdoc *docs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(docs[i].root);
        free(docs[i].dir);
    }
    free(docs);
}

static int finish(struct kube_config *c, int r)
{
    if (r < 0)
        clear_target(c);
    return r;
}

int kube_config_parse(struct kube_config *c, const char *text, size_t len, const char *dir,
                      const char *context)
{
    struct kdoc doc = {0};
    int r;

    clear_target(c);
    r = parse_doc(text, len, "(text)", &doc.root);
    if (r < 0)
        return r;
    if (dir && !(doc.dir = strdup(dir))) {
        cJSON_Delete(doc.root);
        return -ENOMEM;
    }
    r = load_docs(c, &doc, 1, context);
    cJSON_Delete(doc.root);
    free(doc.dir);
    return finish(c, r);
}

int kube_config_load_files(struct kube_config *c, const char *const *paths, size_t n,
                           const char *context)
{
    struct kdoc *docs = calloc(n ? n : 1, sizeof(*docs));
    size_t nd = 0;
    int r = 0;

    clear_target(c);
    if (!docs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *text = NULL;
        const char *slash;
        size_t len;

        r = kube__read_file(paths[i], KUBE_CONFIG_MAX_FILE, &text, &len);
        if (r == -ENOENT && n > 1)
            continue; /* kubectl skips missing files in a $KUBECONFIG list */
        if (r < 0) {
            be_error(r, "kubeconfig %s: %s", paths[i], strerror(-r));
            goto out;
        }
        r = parse_doc(text, len, paths[i], &docs[nd].root);
        if (r < 0)
            goto out;
        slash = strrchr(paths[i], '/');
        if (slash &&
            !(docs[nd].dir = strndup(paths[i], (size_t)(slash - paths[i]) + (slash == paths[i])))) {
            r = -ENOMEM;
            goto out;
        }
        nd++;
    }
    if (nd == 0) {
        r = be_error(-ENOENT, "no kubeconfig file found");
        goto out;
    }
    r = load_docs(c, docs, nd, context);
out:
    docs_free(docs, n);
    return finish(c, r);
}

int kube_config_incluster(struct kube_config *c, const char *dir)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    _cleanup_free_ char *ca_path = NULL, *ns_path = NULL, *ns = NULL;
    size_t ns_len;
    char *buf;
    int r;

    clear_target(c);
    if (!dir)
        dir = KUBE_INCLUSTER_DIR;
    if (!host || !*host || !port || !*port)
        return be_error(-ENOENT, "in-cluster: KUBERNETES_SERVICE_HOST/PORT not set");
    for (const char *p = host; *p; p++)
        if (!(*p == '.' || *p == ':' || *p == '-' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return be_error(-EINVAL, "in-cluster: bad KUBERNETES_SERVICE_HOST");
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9' || p - port > 5)
            return be_error(-EINVAL, "in-cluster: bad KUBERNETES_SERVICE_PORT");
    if (asprintf(&c->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) <
        0) {
        c->server = NULL;
        return -ENOMEM;
    }
    if (asprintf(&c->token_file, "%s/token", dir) < 0 || asprintf(&ca_path, "%s/ca.crt", dir) < 0 ||
        asprintf(&ns_path, "%s/namespace", dir) < 0) {
        c->token_file = NULL;
        return finish(c, -ENOMEM);
    }
    r = kube__read_file(c->token_file, KUBE_CONFIG_MAX_FILE, &buf, &ns_len);
    if (r < 0)
        return finish(c,
                      be_error(r, "in-cluster: cannot read %s: %s", c->token_file, strerror(-r)));
    wipe_free(buf, ns_len);
    r = kube__read_file(ca_path, KUBE_CONFIG_MAX_FILE, &buf, &c->ca.len);
    if (r < 0)
        return finish(c, be_error(r, "in-cluster: cannot read %s: %s", ca_path, strerror(-r)));
    c->ca.data = (unsigned char *)buf;
    if (kube__read_file(ns_path, 256, &ns, &ns_len) == 0) {
        while (ns_len > 0 && (ns[ns_len - 1] == '\n' || ns[ns_len - 1] == ' '))
            ns[--ns_len] = 0;
    }
    c->namespace = strdup(ns && *ns ? ns : "default");
    return finish(c, c->namespace ? 0 : -ENOMEM);
}

int kube_config_load(struct kube_config *c, const char *kubeconfig, const char *context)
{
    const char *env = getenv("KUBECONFIG");
    const char *home = getenv("HOME");
    _cleanup_free_ char *list = NULL, *path = NULL;

    if (kubeconfig && *kubeconfig)
        return kube_config_load_files(c, &kubeconfig, 1, context);
    if (env && *env) {
        const char *paths[64];
        size_t n = 0;
        char *save = NULL;

        list = strdup(env);
        if (!list)
            return -ENOMEM;
        for (char *tok = strtok_r(list, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
            if (n == ARRAY_SIZE(paths))
                return be_error(-EINVAL, "KUBECONFIG lists more than %zu files", ARRAY_SIZE(paths));
            paths[n++] = tok;
        }
        if (n > 0)
            return kube_config_load_files(c, paths, n, context);
    }
    if (getenv("KUBERNETES_SERVICE_HOST") && getenv("KUBERNETES_SERVICE_PORT"))
        return kube_config_incluster(c, NULL);
    if (!home || !*home)
        return be_error(-ENOENT, "no kubeconfig: set --kubeconfig or KUBECONFIG");
    if (asprintf(&path, "%s/.kube/config", home) < 0) {
        path = NULL;
        return -ENOMEM;
    }
    return kube_config_load_files(c, (const char *const *)&path, 1, context);
}
