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
    c->server = c->namespace = c->context = c->token = c->token_file = NULL;
    c->insecure_skip_tls_verify = false;
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

static int parse_doc(const char *text, size_t len, const char *name, cJSON **ret)
{
    char err[256];
    size_t k = 0;
    int r;

    while (k < len && (text[k] == ' ' || text[k] == '\n' || text[k] == '\r' || text[k] == '\t'))
        k++;
    if (k < len && text[k] == '{') {
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);

        if (!root)
            return be_error(-EINVAL, "kubeconfig %s: invalid JSON", name);
        for (; end && (size_t)(end - text) < len; end++)
            if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t' && *end != 0) {
                cJSON_Delete(root);
                return be_error(-EINVAL, "kubeconfig %s: trailing data after JSON", name);
            }
        *ret = root;
    } else {
        r = kube_yaml_parse(text, len, ret, err, sizeof(err));
        if (r < 0)
            return be_error(r, "kubeconfig %s: %s", name, err);
    }
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
    if (cJSON_IsString(v) &&
        (strcmp(v->valuestring, "true") == 0 || strcmp(v->valuestring, "false") == 0)) {
        *ret = strcmp(v->valuestring, "true") == 0;
        return 0;
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

static int load_docs(struct kube_config *c, const struct kdoc *docs, size_t n, const char *context)
{
    const cJSON *ctx = NULL, *cluster = NULL, *user = NULL;
    const struct kdoc *ctx_doc, *cluster_doc, *user_doc = NULL;
    const char *cluster_name, *user_name, *ns, *server, *token, *token_file;
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
    if (!user)
        return 0;
    if (cJSON_GetObjectItemCaseSensitive(user, "exec") ||
        cJSON_GetObjectItemCaseSensitive(user, "auth-provider"))
        return be_error(-EOPNOTSUPP,
                        "kubeconfig: user %s: exec and auth-provider credentials "
                        "are not supported",
                        user_name);
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
    return 0;
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
