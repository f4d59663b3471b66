/*
 * The Kubernetes API client (kube_client.h): request building, a pool of curl easy handles,
 * authentication, retries with backoff, the rate limit, and Status decoding.
 *
 * Threading: c->mu guards the handle pool and the cached token file contents and pairs with
 * c->cond for the interruptible sleeps; it is never held across a transfer. The rate limiter has
 * its own leaf mutex, never taken with c->mu held.
 */
#include "kube_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kube_auth.h"
#include "kube_ratelimit.h"
#include "kube_util.h"
#include "log.h"
#include "util.h"

/* Set once by kube_set_observer() before any client exists; read without a lock after. */
static struct kube_observer observer;

void kube_set_observer(const struct kube_observer *obs)
{
    observer = obs ? *obs : (struct kube_observer){0};
}

void kube__watch_restarted(const char *resource)
{
    if (observer.watch_restart)
        observer.watch_restart(resource);
}

#define POOL_MAX 8
#define TOKEN_REREAD_S 60.0
#define BACKOFF_MIN_S 0.25
#define BACKOFF_MAX_S 30.0
#define RETRY_AFTER_MAX_S 60
#define ERROR_BODY_MAX (1024 * 1024)

struct kube_client {
    struct kube_config cfg; /* owned deep copy */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    CURL *pool[POOL_MAX]; /* owned idle handles, npool used */
    size_t npool;
    char *file_token; /* owned secret: last contents of cfg.token_file */
    double file_token_at;
    atomic_bool stopping;
    atomic_ulong requests;
    atomic_int link;  /* enum link: what the last finished request saw */
    char *user_agent; /* owned, NULL = the default */
    bool quiet_link;  /* link changes at debug level (kube_client_set_quiet_link) */
    struct kube_ratelimit rl;
    struct kube_auth *auth;         /* owned exec plugin runner, or NULL */
    char *base_url;                 /* owned: cfg.server, its host replaced by tls-server-name */
    struct curl_slist *connect_to;  /* owned CURLOPT_CONNECT_TO for tls-server-name, or NULL */
    struct curl_slist *host_header; /* owned "Host: <server's host>" for tls-server-name */
};

enum link { LINK_UNKNOWN, LINK_UP, LINK_DOWN };

int kube_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void kube_global_cleanup(void)
{
    curl_global_cleanup();
}

/* ---- resources ---- */

const struct kube_resource kube_pods = {"", "v1", "pods", "Pod", true};
const struct kube_resource kube_nodes = {"", "v1", "nodes", "Node", false};
const struct kube_resource kube_namespaces = {"", "v1", "namespaces", "Namespace", false};
const struct kube_resource kube_events = {"", "v1", "events", "Event", true};
const struct kube_resource kube_persistentvolumeclaims = {"", "v1", "persistentvolumeclaims",
                                                          "PersistentVolumeClaim", true};
const struct kube_resource kube_persistentvolumes = {"", "v1", "persistentvolumes",
                                                     "PersistentVolume", false};
const struct kube_resource kube_statefulsets = {"apps", "v1", "statefulsets", "StatefulSet", true};
const struct kube_resource kube_storageclasses = {"storage.k8s.io", "v1", "storageclasses",
                                                  "StorageClass", false};
const struct kube_resource kube_csinodes = {"storage.k8s.io", "v1", "csinodes", "CSINode", false};
const struct kube_resource kube_leases = {"coordination.k8s.io", "v1", "leases", "Lease", true};
/* Ordinal's own inventory (deploy/kubernetes/base/crd-ordinalvolume.yaml). */
const struct kube_resource kube_ordinalvolumes = {"ordinal.csi.dev", "v1alpha1", "ordinalvolumes",
                                                  "OrdinalVolume", false};

static const struct kube_resource *const all_resources[] = {
    &kube_pods,
    &kube_nodes,
    &kube_namespaces,
    &kube_events,
    &kube_persistentvolumeclaims,
    &kube_persistentvolumes,
    &kube_statefulsets,
    &kube_storageclasses,
    &kube_csinodes,
    &kube_leases,
    &kube_ordinalvolumes,
};

const struct kube_resource *kube_resource_find(const char *plural)
{
    for (size_t i = 0; i < ARRAY_SIZE(all_resources); i++)
        if (strcmp(all_resources[i]->plural, plural) == 0)
            return all_resources[i];
    return NULL;
}

static bool alnum_lower(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

bool kube_name_valid(const char *s)
{
    size_t len;

    if (!s)
        return false;
    len = strlen(s);
    if (len == 0 || len > 253 || !alnum_lower(s[0]) || !alnum_lower(s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!alnum_lower(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

int kube_path(char *buf, size_t n, const struct kube_resource *res, const char *ns,
              const char *name, const char *subresource)
{
    int w;

    if (!res || (ns && !kube_name_valid(ns)) || (name && !kube_name_valid(name)))
        return -EINVAL;
    if (ns && !res->namespaced)
        return -EINVAL;
    if (name && res->namespaced && !ns)
        return -EINVAL;
    if (subresource) {
        if (!name || !*subresource)
            return -EINVAL;
        for (const char *p = subresource; *p; p++)
            if (*p < 'a' || *p > 'z')
                return -EINVAL;
    }
    w = snprintf(buf, n, "%s%s/%s%s%s/%s%s%s%s%s", res->group[0] ? "/apis/" : "/api", res->group,
                 res->version, ns ? "/namespaces/" : "", ns ? ns : "", res->plural, name ? "/" : "",
                 name ? name : "", subresource ? "/" : "", subresource ? subresource : "");
    if (w < 0 || (size_t)w >= n)
        return -ENAMETOOLONG;
    return w;
}

/* ---- errors ---- */

int kube_errno_from_http(long http, const char *reason)
{
    if (reason && *reason) {
        if (strcmp(reason, "AlreadyExists") == 0)
            return -EEXIST;
        if (strcmp(reason, "Conflict") == 0)
            return KUBE_ECONFLICT;
        if (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0)
            return KUBE_EGONE;
        if (strcmp(reason, "NotFound") == 0)
            return -ENOENT;
    }
    if (http >= 200 && http < 300)
        return 0;
    switch (http) {
    case 400:
    case 422:
        return -EINVAL;
    case 401:
        return -EACCES;
    case 403:
        return -EPERM;
    case 404:
        return -ENOENT;
    case 405:
        return -EOPNOTSUPP;
    case 409:
        return KUBE_ECONFLICT;
    case 410:
        return KUBE_EGONE;
    case 413:
        return -EMSGSIZE;
    case 429:
        return -EBUSY;
    case 503:
        return -EAGAIN;
    case 504:
        return -ETIMEDOUT;
    default:
        break;
    }
    if (reason && strcmp(reason, "Timeout") == 0)
        return -ETIMEDOUT;
    if (http >= 500 && http < 600)
        return -EIO;
    return -EPROTO;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    size_t i = 0;

    for (; src && src[i] && i + 1 < n; i++)
        dst[i] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
    dst[i] = 0;
}

int kube_status_decode(long http, const cJSON *body, struct kube_status *st)
{
    struct kube_status tmp;
    long eff;

    if (!st)
        st = &tmp;
    memset(st, 0, sizeof(*st));
    st->http = http;
    st->code = (int)http;
    if (cJSON_IsObject(body)) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(body, "kind");
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(body, "reason");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(body, "message");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(body, "code");
        const cJSON *details = cJSON_GetObjectItemCaseSensitive(body, "details");

        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "Status") == 0) {
            if (cJSON_IsString(reason))
                copy_str(st->reason, sizeof(st->reason), reason->valuestring);
            if (cJSON_IsString(msg))
                copy_str(st->message, sizeof(st->message), msg->valuestring);
            if (cJSON_IsNumber(code) && code->valuedouble >= 100 && code->valuedouble < 600)
                st->code = (int)code->valuedouble;
            if (cJSON_IsObject(details)) {
                const cJSON *ra = cJSON_GetObjectItemCaseSensitive(details, "retryAfterSeconds");

                if (cJSON_IsNumber(ra) && ra->valuedouble > 0 && ra->valuedouble <= 3600)
                    st->retry_after = (int)ra->valuedouble;
            }
        }
    }
    eff = http ? http : st->code;
    if (http >= 200 && http < 300)
        return 0;
    if (!st->message[0])
        snprintf(st->message, sizeof(st->message), "HTTP %ld", eff);
    return kube_errno_from_http(eff, st->reason);
}

const char *kube_obj_name(const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, "name");

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *kube_obj_namespace(const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, "namespace");

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *kube_obj_rv(const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- client lifecycle ---- */

static int blob_dup(struct kube_blob *dst, const struct kube_blob *src)
{
    dst->data = NULL;
    dst->len = 0;
    if (!src->data)
        return 0;
    dst->data = malloc(src->len + 1);
    if (!dst->data)
        return -ENOMEM;
    memcpy(dst->data, src->data, src->len);
    dst->data[src->len] = 0;
    dst->len = src->len;
    return 0;
}

static int strdup_opt(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -ENOMEM : 0;
}

/*
 * tls-server-name: libcurl takes the name for SNI and for the certificate check from the URL's
 * host and has no option to set it apart, so the URL names tls-server-name and CURLOPT_CONNECT_TO
 * sends the connection to the server's real host and port; a Host header keeps what the API
 * server sees the same as without the option.
 */
static int tls_route(struct kube_client *c)
{
    const char *server = c->cfg.server, *auth, *host_end, *rest;
    _cleanup_free_ char *host = NULL, *port = NULL, *ct = NULL, *hh = NULL;
    bool https = strncmp(server, "https://", 8) == 0;
    struct curl_slist *l;

    if (!c->cfg.tls_server_name)
        return asprintf(&c->base_url, "%s", server) < 0 ? -ENOMEM : 0;
    auth = server + (https ? 8 : 7);
    rest = auth + strcspn(auth, "/");
    if (*auth == '[') {
        host_end = memchr(auth, ']', (size_t)(rest - auth));
        if (!host_end)
            return be_error(-EINVAL, "kube client: bad IPv6 address in the server URL");
        host_end++;
    } else {
        host_end = auth + strcspn(auth, ":/");
    }
    host = strndup(auth, (size_t)(host_end - auth));
    port = *host_end == ':' ? strndup(host_end + 1, (size_t)(rest - host_end - 1))
                            : strdup(https ? "443" : "80");
    if (!host || !port)
        return -ENOMEM;
    if (asprintf(&c->base_url, "%s://%s:%s%s", https ? "https" : "http", c->cfg.tls_server_name,
                 port, rest) < 0 ||
        asprintf(&ct, "%s:%s:%s:%s", c->cfg.tls_server_name, port, host, port) < 0 ||
        asprintf(&hh, "Host: %.*s", (int)(rest - auth), auth) < 0) {
        c->base_url = NULL;
        return -ENOMEM;
    }
    if (!(l = curl_slist_append(NULL, ct)))
        return -ENOMEM;
    c->connect_to = l;
    if (!(l = curl_slist_append(NULL, hh)))
        return -ENOMEM;
    c->host_header = l;
    return 0;
}

struct kube_client *kube_client_new(const struct kube_config *cfg)
{
    struct kube_client *c;

    if (!cfg->server) {
        be_error(-EINVAL, "kube client: no server configured");
        return NULL;
    }
    if (kube_config_check_transport(cfg) < 0)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    kube_config_init(&c->cfg);
    c->cfg.qps = cfg->qps;
    c->cfg.burst = cfg->burst;
    c->cfg.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    c->cfg.connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    c->cfg.max_retries = cfg->max_retries >= 0 ? cfg->max_retries : 0;
    c->cfg.insecure_skip_tls_verify = cfg->insecure_skip_tls_verify;
    if (strdup_opt(&c->cfg.server, cfg->server) < 0 ||
        strdup_opt(&c->cfg.namespace, cfg->namespace ? cfg->namespace : "default") < 0 ||
        strdup_opt(&c->cfg.context, cfg->context) < 0 ||
        strdup_opt(&c->cfg.token, cfg->token) < 0 ||
        strdup_opt(&c->cfg.token_file, cfg->token_file) < 0 || blob_dup(&c->cfg.ca, &cfg->ca) < 0 ||
        blob_dup(&c->cfg.client_cert, &cfg->client_cert) < 0 ||
        blob_dup(&c->cfg.client_key, &cfg->client_key) < 0 ||
        strdup_opt(&c->cfg.proxy_url, cfg->proxy_url) < 0 ||
        strdup_opt(&c->cfg.tls_server_name, cfg->tls_server_name) < 0 ||
        (cfg->exec && !(c->cfg.exec = kube_exec_dup(cfg->exec))) ||
        (cfg->exec && !(c->auth = kube_auth_new(&c->cfg))) || tls_route(c) < 0) {
        kube_auth_free(c->auth);
        free(c->base_url);
        curl_slist_free_all(c->connect_to);
        curl_slist_free_all(c->host_header);
        kube_config_release(&c->cfg);
        free(c);
        return NULL;
    }
    if (kube_ratelimit_init(&c->rl, cfg->qps, cfg->burst) < 0) {
        be_error(-EINVAL, "kube client: burst must be at least 1");
        kube_auth_free(c->auth);
        free(c->base_url);
        curl_slist_free_all(c->connect_to);
        curl_slist_free_all(c->host_header);
        kube_config_release(&c->cfg);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    kube__cond_init(&c->cond);
    atomic_init(&c->stopping, false);
    atomic_init(&c->requests, 0);
    atomic_init(&c->link, LINK_UNKNOWN);
    return c;
}

void kube_client_free(struct kube_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->file_token) {
        memset(c->file_token, 0, strlen(c->file_token));
        free(c->file_token);
    }
    kube_ratelimit_release(&c->rl);
    kube_auth_free(c->auth);
    free(c->base_url);
    curl_slist_free_all(c->connect_to);
    curl_slist_free_all(c->host_header);
    free(c->user_agent);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    kube_config_release(&c->cfg);
    free(c);
}

void kube_client_shutdown(struct kube_client *c)
{
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stopping, true);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

bool kube_client_stopping(const struct kube_client *c)
{
    return atomic_load(&c->stopping);
}

const char *kube_client_namespace(const struct kube_client *c)
{
    return c->cfg.namespace;
}

unsigned long kube_client_request_count(struct kube_client *c)
{
    return atomic_load(&c->requests);
}

bool kube_client_connected(const struct kube_client *c)
{
    return atomic_load(&c->link) == LINK_UP;
}

int kube_client_set_user_agent(struct kube_client *c, const char *ua)
{
    char *copy = strdup(ua);

    if (!copy)
        return -ENOMEM;
    free(c->user_agent);
    c->user_agent = copy;
    return 0;
}

void kube_client_set_quiet_link(struct kube_client *c, bool quiet)
{
    c->quiet_link = quiet;
}

/* Record what a finished transfer saw; the one thread that changes the state logs it, so a
 * server that stays away costs one line, not one per retry. */
static void link_note(struct kube_client *c, bool answered, const char *why)
{
    int now = answered ? LINK_UP : LINK_DOWN;
    int was = atomic_exchange(&c->link, now);

    if (was == now)
        return;
    if (c->quiet_link)
        log_debug("kube: link to %s %s (client %s)", c->cfg.server, answered ? "up" : "down",
                  c->user_agent ? c->user_agent : "");
    else if (answered)
        log_info("kube: API server %s answers", c->cfg.server);
    else
        log_warn("kube: API server %s not reachable (%s); retrying in the background",
                 c->cfg.server, why);
}

bool kube__sleep(struct kube_client *c, double seconds, const atomic_bool *stop)
{
    double deadline = kube__now() + seconds;
    bool ok = true;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (atomic_load(&c->stopping) || (stop && atomic_load(stop))) {
            ok = false;
            break;
        }
        if (kube__now() >= deadline)
            break;
        kube__cond_wait_until(&c->cond, &c->mu, deadline);
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

void kube__wake(struct kube_client *c)
{
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* ---- transfers ---- */

static CURL *handle_get(struct kube_client *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->mu);
    if (c->npool > 0)
        h = c->pool[--c->npool];
    pthread_mutex_unlock(&c->mu);
    return h ? h : curl_easy_init();
}

static void handle_put(struct kube_client *c, CURL *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->npool < POOL_MAX) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* The bearer token to send (owned copy, caller wipes and frees), or NULL for none. */
static char *token_get(struct kube_client *c)
{
    char *tok = NULL;

    if (!c->cfg.token_file)
        return c->cfg.token ? strdup(c->cfg.token) : NULL;
    pthread_mutex_lock(&c->mu);
    if (!c->file_token || kube__now() - c->file_token_at > TOKEN_REREAD_S) {
        char *buf;
        size_t len;
        int r = kube__read_file(c->cfg.token_file, 64 * 1024, &buf, &len);

        if (r == 0) {
            while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
                buf[--len] = 0;
            if (c->file_token) {
                memset(c->file_token, 0, strlen(c->file_token));
                free(c->file_token);
            }
            c->file_token = buf;
            c->file_token_at = kube__now();
        } else {
            log_warn("kube: cannot read token file %s: %s%s", c->cfg.token_file, strerror(-r),
                     c->file_token ? "; keeping the previous token" : "");
            c->file_token_at = kube__now();
        }
    }
    if (c->file_token && *c->file_token)
        tok = strdup(c->file_token);
    else if (c->cfg.token)
        tok = strdup(c->cfg.token);
    pthread_mutex_unlock(&c->mu);
    return tok;
}

struct xfer {
    struct kube_client *c;
    CURL *h;
    const atomic_bool *stop;
    char *body; /* owned, NUL-terminated */
    size_t len, cap, max;
    bool overflow;
    int retry_after;
    int (*on_data)(void *ud, const char *data, size_t n);
    void *ud;
    int stream_r;           /* the -errno that on_data aborted with */
    long http;              /* known once the body starts */
    bool exec_cred;         /* the credential came from the exec plugin */
    unsigned long exec_gen; /* which one, for kube_auth_invalidate() after a 401 */
};

static void xfer_release(struct xfer *x)
{
    free(x->body);
}

static int xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const struct xfer *x = ud;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&x->c->stopping) || (x->stop && atomic_load(x->stop)) ? 1 : 0;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;

    if (len > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
        long v = 0;
        size_t i = 12;

        while (i < len && buf[i] == ' ')
            i++;
        for (; i < len && buf[i] >= '0' && buf[i] <= '9' && v < 100000; i++)
            v = v * 10 + (buf[i] - '0');
        x->retry_after = (int)(v > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : v);
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;

    if (x->http == 0)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http);
    if (x->on_data && x->http == 200) {
        int r = x->on_data(x->ud, data, len);

        if (r < 0) {
            x->stream_r = r;
            return 0; /* anything but len aborts with CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (x->overflow || x->len + len > x->max) {
        x->overflow = true;
        return len; /* keep reading; the caller reports -EMSGSIZE */
    }
    if (x->len + len + 1 > x->cap) {
        size_t ncap = x->cap ? x->cap : 16384;
        char *nb;

        while (ncap < x->len + len + 1)
            ncap *= 2;
        nb = realloc(x->body, ncap);
        if (!nb) {
            x->overflow = true;
            return len;
        }
        x->body = nb;
        x->cap = ncap;
    }
    memcpy(x->body + x->len, data, len);
    x->len += len;
    x->body[x->len] = 0;
    return len;
}

static int curl_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_ABORTED_BY_CALLBACK:
        return -ECANCELED;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
        return -EKEYREJECTED;
    case CURLE_WRITE_ERROR:
        return -ECONNABORTED;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    default:
        return -EIO;
    }
}

/* Set every option of one transfer on h (freshly reset). headers is filled for the caller to
 * free after the transfer. */
static int setup(struct kube_client *c, struct xfer *x, const char *method, const char *url,
                 const char *body, const char *ctype, long timeout_ms, struct curl_slist **headers,
                 char *errbuf)
{
    CURL *h = x->h;
    char *tok;
    struct curl_slist *hl = NULL, *t;
    char ct[128];

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT,
                     c->user_agent ? c->user_agent : "ordinal/" ORDINAL_VERSION);
    if (c->cfg.ca.data) {
        struct curl_blob b = {c->cfg.ca.data, c->cfg.ca.len, CURL_BLOB_COPY};

        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    }
    if (c->cfg.client_cert.data) {
        struct curl_blob cb = {c->cfg.client_cert.data, c->cfg.client_cert.len, CURL_BLOB_COPY};
        struct curl_blob kb = {c->cfg.client_key.data, c->cfg.client_key.len, CURL_BLOB_COPY};

        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (c->cfg.insecure_skip_tls_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->cfg.proxy_url)
        curl_easy_setopt(h, CURLOPT_PROXY, c->cfg.proxy_url);
    if (c->connect_to)
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to);
    if (c->auth) {
        struct kube_cred cred;
        int r = kube_auth_get(c->auth, &cred, &x->exec_gen);

        if (r < 0)
            return r;
        x->exec_cred = true;
        if (cred.cert.data) {
            struct curl_blob cb = {cred.cert.data, cred.cert.len, CURL_BLOB_COPY};
            struct curl_blob kb = {cred.key.data, cred.key.len, CURL_BLOB_COPY};

            curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
            curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
            curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
            curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (cred.token) {
            curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
            curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, cred.token); /* curl copies it */
        }
        kube_cred_release(&cred);
    }
    tok = c->auth ? NULL : token_get(c);
    if (tok) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, tok); /* curl copies it */
        memset(tok, 0, strlen(tok));
        free(tok);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
    }
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
    t = curl_slist_append(hl, "Accept: application/json");
    if (t)
        hl = t;
    if (t && body)
        t = curl_slist_append(hl, ct);
    if (t)
        t = curl_slist_append(hl, "Expect:");
    if (t && c->host_header)
        t = curl_slist_append(hl, c->host_header->data);
    if (!t) {
        curl_slist_free_all(hl);
        return -ENOMEM;
    }
    *headers = hl;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    return 0;
}

/* One transfer. 0 when an HTTP answer arrived (x->http, x->body), else a transport -errno with
 * st->message set. */
static int perform(struct kube_client *c, struct xfer *x, const char *method,
                   const char *path_query, const char *body, const char *ctype, long timeout_ms,
                   struct kube_status *st)
{
    _cleanup_free_ char *url = NULL;
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc;
    int r;

    if (asprintf(&url, "%s%s", c->base_url, path_query) < 0) {
        url = NULL;
        return -ENOMEM;
    }
    x->h = handle_get(c);
    if (!x->h)
        return -ENOMEM;
    r = setup(c, x, method, url, body, ctype, timeout_ms, &headers, errbuf);
    if (r < 0) {
        handle_put(c, x->h);
        if (st) {
            /* the exec plugin failed: its message (never a secret) says why */
            memset(st, 0, sizeof(*st));
            copy_str(st->message, sizeof(st->message), be_last_error());
        }
        return r;
    }
    atomic_fetch_add(&c->requests, 1);
    rc = curl_easy_perform(x->h);
    if (x->http == 0)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http);
    if (observer.request)
        observer.request(method, path_query, x->http);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    handle_put(c, x->h);
    x->h = NULL;
    if (x->http != 0)
        link_note(c, true, NULL);
    else if (rc != CURLE_ABORTED_BY_CALLBACK)
        link_note(c, false, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (rc == CURLE_WRITE_ERROR && x->stream_r < 0)
        return x->stream_r;
    if (rc != CURLE_OK) {
        r = curl_errno(rc);
        if (st) {
            memset(st, 0, sizeof(*st));
            copy_str(st->message, sizeof(st->message), errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
        return r;
    }
    return 0;
}

static double backoff_s(int attempt)
{
    double d = BACKOFF_MIN_S;

    for (int i = 0; i < attempt && d < BACKOFF_MAX_S; i++)
        d *= 2;
    if (d > BACKOFF_MAX_S)
        d = BACKOFF_MAX_S;
    return d * (0.5 + kube__rand() / 2); /* jitter: [d/2, d) */
}

static bool rate_wait(struct kube_client *c, const atomic_bool *stop)
{
    double wait = kube_ratelimit_reserve(&c->rl, kube__now());

    return wait <= 0 || kube__sleep(c, wait, stop);
}

/* The rate limit's wait, bounded: 0, -ECANCELED (stopped) or -ETIMEDOUT (the wait would end
 * after the deadline, 0 = none). */
static int rate_wait_until(struct kube_client *c, const atomic_bool *stop, double deadline)
{
    double now = kube__now(), wait = kube_ratelimit_reserve(&c->rl, now);

    if (wait <= 0)
        return 0;
    if (deadline > 0 && now + wait >= deadline)
        return -ETIMEDOUT;
    return kube__sleep(c, wait, stop) ? 0 : -ECANCELED;
}

static bool call_stopped(struct kube_client *c, const atomic_bool *stop)
{
    return atomic_load(&c->stopping) || (stop && atomic_load(stop));
}

/* How a 2xx body becomes *out: 0 or -errno (kube_request_opts: cJSON_ParseWithLength). */
typedef int (*body_parse_fn)(void *ud, const char *text, size_t len, cJSON **out);

static int request_parse(struct kube_client *c, const char *method, const char *path_query,
                         const char *body, const char *content_type,
                         const struct kube_call_opts *opts, body_parse_fn parse, void *parse_ud,
                         cJSON **ret_body, struct kube_status *st)
{
    bool idempotent = strcmp(method, "GET") == 0, reauthed = false;
    const atomic_bool *stop = opts ? opts->stop : NULL;
    double deadline = opts ? opts->deadline : 0;
    int max_retries = opts && opts->max_retries >= 0 ? opts->max_retries : c->cfg.max_retries;
    struct kube_status tmp;
    int r = -EIO;

    if (!st)
        st = &tmp;
    for (int attempt = 0;; attempt++) {
        struct xfer x = {.c = c, .stop = stop, .max = KUBE_MAX_BODY};
        long timeout_ms = c->cfg.timeout_ms;
        cJSON *parsed = NULL;
        bool retry;
        double wait;

        if (call_stopped(c, stop)) {
            memset(st, 0, sizeof(*st));
            snprintf(st->message, sizeof(st->message), "client shut down");
            return -ECANCELED;
        }
        r = rate_wait_until(c, stop, deadline);
        if (r == 0 && deadline > 0) {
            double left_ms = (deadline - kube__now()) * 1000;

            if (left_ms < 1)
                r = -ETIMEDOUT;
            else if (left_ms < (double)timeout_ms)
                timeout_ms = (long)left_ms + 1;
        }
        if (r < 0) {
            memset(st, 0, sizeof(*st));
            snprintf(st->message, sizeof(st->message), "%s",
                     r == -ECANCELED ? "client shut down" : "deadline passed");
            return r;
        }
        r = perform(c, &x, method, path_query, body, content_type, timeout_ms, st);
        if (r < 0) {
            xfer_release(&x);
            if (r == -ECANCELED || r == -ENOMEM || !idempotent || attempt >= max_retries)
                return r;
            wait = backoff_s(attempt);
            if (deadline > 0 && kube__now() + wait >= deadline)
                return r;
            log_debug("kube: %s %s: %s; retrying", method, path_query, st->message);
            if (!kube__sleep(c, wait, stop))
                return -ECANCELED;
            continue;
        }
        if (x.overflow) {
            xfer_release(&x);
            memset(st, 0, sizeof(*st));
            st->http = x.http;
            snprintf(st->message, sizeof(st->message), "response larger than %d bytes",
                     KUBE_MAX_BODY);
            return -EMSGSIZE;
        }
        if (parse && x.http >= 200 && x.http < 300 && x.len > 0) {
            r = parse(parse_ud, x.body, x.len, &parsed);
            if (r < 0) {
                xfer_release(&x);
                memset(st, 0, sizeof(*st));
                st->http = x.http;
                snprintf(st->message, sizeof(st->message), "%s",
                         r == -EBADMSG ? "response is not a valid list" : strerror(-r));
                return r;
            }
        } else if (x.len > 0) {
            parsed = cJSON_ParseWithLength(x.body, x.len);
        }
        xfer_release(&x);
        r = kube_status_decode(x.http, parsed, st);
        if (st->retry_after == 0)
            st->retry_after = x.retry_after;
        if (r == 0) {
            if (!parsed) {
                snprintf(st->message, sizeof(st->message), "response is not JSON");
                return -EBADMSG;
            }
            if (ret_body)
                *ret_body = parsed;
            else
                cJSON_Delete(parsed);
            return 0;
        }
        cJSON_Delete(parsed);
        if (x.http == 401 && x.exec_cred) {
            /* the plugin's credential expired early or was revoked: run it again, once */
            kube_auth_invalidate(c->auth, x.exec_gen);
            if (!reauthed) {
                reauthed = true;
                attempt--;
                continue;
            }
        }
        retry = (x.http == 429 || x.http >= 500) && attempt < max_retries;
        if (!retry)
            return r;
        wait = backoff_s(attempt);
        if (st->retry_after > 0)
            wait = st->retry_after > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : st->retry_after;
        if (deadline > 0 && kube__now() + wait >= deadline)
            return r;
        log_debug("kube: %s %s: HTTP %ld %s; retrying in %.1fs", method, path_query, x.http,
                  st->reason, wait);
        if (!kube__sleep(c, wait, stop))
            return -ECANCELED;
    }
}

int kube_request_opts(struct kube_client *c, const char *method, const char *path_query,
                      const char *body, const char *content_type, const struct kube_call_opts *opts,
                      cJSON **ret_body, struct kube_status *st)
{
    return request_parse(c, method, path_query, body, content_type, opts, NULL, NULL, ret_body, st);
}

int kube_request(struct kube_client *c, const char *method, const char *path_query,
                 const char *body, const char *content_type, cJSON **ret_body,
                 struct kube_status *st)
{
    return kube_request_opts(c, method, path_query, body, content_type, NULL, ret_body, st);
}

int kube__stream(struct kube_client *c, const char *path_query, const atomic_bool *stop,
                 long timeout_ms, int (*on_data)(void *ud, const char *data, size_t n), void *ud,
                 struct kube_status *st)
{
    struct xfer x = {.c = c, .stop = stop, .max = ERROR_BODY_MAX, .on_data = on_data, .ud = ud};
    struct kube_status tmp;
    cJSON *parsed = NULL;
    int r;

    if (!st)
        st = &tmp;
    memset(st, 0, sizeof(*st));
    if (atomic_load(&c->stopping) || !rate_wait(c, stop))
        return -ECANCELED;
    r = perform(c, &x, "GET", path_query, NULL, NULL, timeout_ms, st);
    if (r < 0 || x.http == 200) {
        xfer_release(&x);
        st->http = x.http;
        return r;
    }
    if (x.len > 0 && !x.overflow)
        parsed = cJSON_ParseWithLength(x.body, x.len);
    xfer_release(&x);
    r = kube_status_decode(x.http, parsed, st);
    cJSON_Delete(parsed);
    if (x.http == 401 && x.exec_cred)
        kube_auth_invalidate(c->auth, x.exec_gen); /* the watch's next try runs the plugin */
    return r < 0 ? r : -EPROTO;
}

/* ---- verbs ---- */

static int percent_append(char *buf, size_t n, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';

        if (*len + (plain ? 1 : 3) >= n)
            return -ENAMETOOLONG;
        if (plain) {
            buf[(*len)++] = (char)*p;
        } else {
            buf[(*len)++] = '%';
            buf[(*len)++] = hex[*p >> 4];
            buf[(*len)++] = hex[*p & 15];
        }
    }
    buf[*len] = 0;
    return 0;
}

static int param_append(char *buf, size_t n, const char *key, const char *val)
{
    size_t len = strlen(buf);
    int w;

    w = snprintf(buf + len, n - len, "%c%s=", strchr(buf, '?') ? '&' : '?', key);
    if (w < 0 || (size_t)w >= n - len)
        return -ENAMETOOLONG;
    len += (size_t)w;
    return percent_append(buf, n, &len, val);
}

int kube_list_query(char *buf, size_t n, const struct kube_list_opts *opts)
{
    char num[32];
    int r = 0;

    if (!opts)
        return 0;
    if (opts->label_selector && *opts->label_selector)
        r = param_append(buf, n, "labelSelector", opts->label_selector);
    if (r == 0 && opts->field_selector && *opts->field_selector)
        r = param_append(buf, n, "fieldSelector", opts->field_selector);
    if (r == 0 && opts->resource_version)
        r = param_append(buf, n, "resourceVersion", opts->resource_version);
    if (r == 0 && opts->continue_token && *opts->continue_token)
        r = param_append(buf, n, "continue", opts->continue_token);
    if (r == 0 && opts->limit > 0) {
        snprintf(num, sizeof(num), "%ld", opts->limit);
        r = param_append(buf, n, "limit", num);
    }
    return r;
}

#define PATH_MAX_ 4096

int kube_get_opts(struct kube_client *c, const struct kube_resource *res, const char *ns,
                  const char *name, const struct kube_call_opts *opts, cJSON **ret_obj,
                  struct kube_status *st)
{
    char path[PATH_MAX_];
    int r;

    if (!name)
        return -EINVAL;
    r = kube_path(path, sizeof(path), res, ns, name, NULL);
    if (r < 0)
        return r;
    return kube_request_opts(c, "GET", path, NULL, NULL, opts, ret_obj, st);
}

int kube_get(struct kube_client *c, const struct kube_resource *res, const char *ns,
             const char *name, cJSON **ret_obj, struct kube_status *st)
{
    return kube_get_opts(c, res, ns, name, NULL, ret_obj, st);
}

/* The path and query of a list of res (in ns, or all namespaces when NULL). */
static int list_path(char *path, size_t n, const struct kube_resource *res, const char *ns,
                     const struct kube_list_opts *opts)
{
    int r = kube_path(path, n, res, ns, NULL, NULL);

    return r < 0 ? r : kube_list_query(path, n, opts);
}

int kube_list(struct kube_client *c, const struct kube_resource *res, const char *ns,
              const struct kube_list_opts *opts, cJSON **ret_list, struct kube_status *st)
{
    char path[PATH_MAX_];
    cJSON *list = NULL;
    int r;

    r = list_path(path, sizeof(path), res, ns, opts);
    if (r < 0)
        return r;
    r = kube_request(c, "GET", path, NULL, NULL, &list, st);
    if (r < 0)
        return r;
    if (!cJSON_IsObject(list)) {
        cJSON_Delete(list);
        return -EBADMSG;
    }
    if (ret_list)
        *ret_list = list;
    else
        cJSON_Delete(list);
    return 0;
}

/* Whitespace as cJSON skips it (every byte up to ' '), so that a body is read as it was when
 * cJSON parsed it whole. */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (unsigned char)*p <= ' ')
        p++;
    return p;
}

/* One JSON value at p (leading whitespace skipped); *next is just after it. NULL if invalid. */
static cJSON *parse_value_at(const char *p, const char *end, const char **next)
{
    return cJSON_ParseWithLengthOpts(p, (size_t)(end - p), next, false);
}

struct item_parse {
    int (*on_item)(void *ud, cJSON *item);
    void *ud;
};

/* The elements of the array whose '[' is at *pp, each parsed alone and handed to on_item;
 * *pp ends just after the ']'. 0, -EBADMSG or on_item's error. */
static int parse_items(const struct item_parse *ip, const char **pp, const char *end)
{
    const char *p = skip_ws(*pp + 1, end);
    int r;

    if (p < end && *p == ']') {
        *pp = p + 1;
        return 0;
    }
    for (;;) {
        cJSON *item = parse_value_at(p, end, &p);

        if (!item)
            return -EBADMSG;
        r = ip->on_item(ip->ud, item);
        if (r < 0)
            return r;
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == ']') {
            *pp = p + 1;
            return 0;
        }
        return -EBADMSG;
    }
}

/* The cJSON tree of a 500-object page is about ten times its text; freed among the objects a
 * cache keeps from it, it was left as fragments the allocator could not give back (issue 13:
 * 9 MB of 33 MiB at 10,000 claims + 10,000 PVs). Hence one item at a time. */
int kube_list_parse(const char *text, size_t len, int (*on_item)(void *ud, cJSON *item), void *ud,
                    cJSON **ret_page)
{
    const struct item_parse ipv = {.on_item = on_item, .ud = ud}, *ip = &ipv;
    const char *p = text, *end = text + len;
    cJSON *page = cJSON_CreateObject();
    bool seen_items = false;
    int r = -EBADMSG;

    if (!page)
        return -ENOMEM;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* a UTF-8 byte order mark, as cJSON skips it */
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        goto fail;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        p++;
    else
        for (;;) {
            cJSON *key = parse_value_at(p, end, &p), *val = NULL;

            if (!cJSON_IsString(key) || (p = skip_ws(p, end)) == end || *p != ':') {
                cJSON_Delete(key);
                r = -EBADMSG;
                goto fail;
            }
            p = skip_ws(p + 1, end);
            if (strcmp(key->valuestring, "items") != 0) {
                val = parse_value_at(p, end, &p);
                r = val ? 0 : -EBADMSG;
            } else if (seen_items) {
                r = -EBADMSG; /* a second "items": which one would be the list's? */
            } else if (p < end && *p == '[') {
                seen_items = true;
                r = parse_items(ip, &p, end);
                if (r == 0 && !(val = cJSON_CreateArray()))
                    r = -ENOMEM;
            } else {
                seen_items = true;
                val = parse_value_at(p, end, &p);
                r = cJSON_IsNull(val) ? 0 : -EBADMSG; /* null: no items; else not a list */
            }
            if (r == 0 && !cJSON_AddItemToObject(page, key->valuestring, val))
                r = -ENOMEM;
            cJSON_Delete(key);
            if (r < 0) {
                cJSON_Delete(val);
                goto fail;
            }
            r = -EBADMSG;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            goto fail;
        }
    if (skip_ws(p, end) != end) {
        r = -EBADMSG;
        goto fail;
    }
    *ret_page = page;
    return 0;
fail:
    cJSON_Delete(page);
    return r;
}

static int parse_list_body(void *ud, const char *text, size_t len, cJSON **out)
{
    const struct item_parse *ip = ud;

    return kube_list_parse(text, len, ip->on_item, ip->ud, out);
}

int kube_list_each(struct kube_client *c, const struct kube_resource *res, const char *ns,
                   const struct kube_list_opts *opts, int (*on_item)(void *ud, cJSON *item),
                   void *ud, cJSON **ret_page, struct kube_status *st)
{
    struct item_parse ip = {.on_item = on_item, .ud = ud};
    char path[PATH_MAX_];
    cJSON *page = NULL;
    int r;

    r = list_path(path, sizeof(path), res, ns, opts);
    if (r < 0)
        return r;
    r = request_parse(c, "GET", path, NULL, NULL, NULL, parse_list_body, &ip, &page, st);
    if (r < 0)
        return r;
    if (ret_page)
        *ret_page = page;
    else
        cJSON_Delete(page);
    return 0;
}

static const char *list_continue(const cJSON *list)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(list, "metadata");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, "continue");

    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Check a list page: an object with an items array (null = empty) of objects with a name. */
static int list_check(cJSON *page)
{
    cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items");
    const cJSON *it;

    if (!items || cJSON_IsNull(items)) {
        cJSON_DeleteItemFromObjectCaseSensitive(page, "items");
        return cJSON_AddItemToObject(page, "items", cJSON_CreateArray()) ? 0 : -ENOMEM;
    }
    if (!cJSON_IsArray(items))
        return -EBADMSG;
    cJSON_ArrayForEach(it, items) if (!cJSON_IsObject(it) || !kube_obj_name(it)) return -EBADMSG;
    return 0;
}

int kube_list_all(struct kube_client *c, const struct kube_resource *res, const char *ns,
                  const struct kube_list_opts *opts, cJSON **ret_list, struct kube_status *st)
{
    struct kube_list_opts o = {0};
    bool restarted = false;
    cJSON *first, *items;
    char *token;
    int r;

    if (opts)
        o = *opts;
    if (o.limit <= 0)
        o.limit = 500;
restart:
    first = NULL;
    o.continue_token = NULL;
    r = kube_list(c, res, ns, &o, &first, st);
    if (r == 0)
        r = list_check(first);
    if (r < 0) {
        cJSON_Delete(first);
        return r;
    }
    items = cJSON_GetObjectItemCaseSensitive(first, "items");
    token = list_continue(first) ? strdup(list_continue(first)) : NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(first, "metadata"),
                                            "continue");
    while (token) {
        cJSON *page = NULL, *pitems, *it;

        o.continue_token = token;
        r = kube_list(c, res, ns, &o, &page, st);
        if (r == KUBE_EGONE && !restarted) {
            /* the continue token expired: the pages would not be one snapshot */
            free(token);
            cJSON_Delete(first);
            restarted = true;
            goto restart;
        }
        if (r == 0)
            r = list_check(page);
        free(token);
        if (r < 0) {
            cJSON_Delete(page);
            cJSON_Delete(first);
            return r;
        }
        pitems = cJSON_GetObjectItemCaseSensitive(page, "items");
        while ((it = cJSON_DetachItemFromArray(pitems, 0)))
            cJSON_AddItemToArray(items, it);
        token = list_continue(page) ? strdup(list_continue(page)) : NULL;
        cJSON_Delete(page);
    }
    if (ret_list)
        *ret_list = first;
    else
        cJSON_Delete(first);
    return 0;
}

static int write_obj_opts(struct kube_client *c, const char *method, const char *path,
                          const cJSON *obj, const char *ctype, const struct kube_call_opts *opts,
                          cJSON **ret_obj, struct kube_status *st)
{
    _cleanup_free_ char *body = NULL;

    if (obj) {
        body = cJSON_PrintUnformatted(obj);
        if (!body)
            return -ENOMEM;
    }
    return kube_request_opts(c, method, path, body, ctype, opts, ret_obj, st);
}

static int write_obj(struct kube_client *c, const char *method, const char *path, const cJSON *obj,
                     const char *ctype, cJSON **ret_obj, struct kube_status *st)
{
    return write_obj_opts(c, method, path, obj, ctype, NULL, ret_obj, st);
}

int kube_create_opts(struct kube_client *c, const struct kube_resource *res, const char *ns,
                     const cJSON *obj, const struct kube_call_opts *opts, cJSON **ret_obj,
                     struct kube_status *st)
{
    char path[PATH_MAX_];
    int r;

    if (!cJSON_IsObject(obj))
        return -EINVAL;
    r = kube_path(path, sizeof(path), res, ns, NULL, NULL);
    if (r < 0)
        return r;
    return write_obj_opts(c, "POST", path, obj, NULL, opts, ret_obj, st);
}

int kube_create(struct kube_client *c, const struct kube_resource *res, const char *ns,
                const cJSON *obj, cJSON **ret_obj, struct kube_status *st)
{
    return kube_create_opts(c, res, ns, obj, NULL, ret_obj, st);
}

int kube_update_opts(struct kube_client *c, const struct kube_resource *res, const char *ns,
                     const char *subresource, const cJSON *obj, const struct kube_call_opts *opts,
                     cJSON **ret_obj, struct kube_status *st)
{
    const char *name = kube_obj_name(obj), *ons = kube_obj_namespace(obj);
    char path[PATH_MAX_];
    int r;

    if (!name || (ons && ns && strcmp(ons, ns) != 0))
        return -EINVAL;
    r = kube_path(path, sizeof(path), res, ns, name, subresource);
    if (r < 0)
        return r;
    return write_obj_opts(c, "PUT", path, obj, NULL, opts, ret_obj, st);
}

int kube_update(struct kube_client *c, const struct kube_resource *res, const char *ns,
                const char *subresource, const cJSON *obj, cJSON **ret_obj, struct kube_status *st)
{
    return kube_update_opts(c, res, ns, subresource, obj, NULL, ret_obj, st);
}

int kube_merge_patch_diff(const cJSON *from, const cJSON *to, cJSON **ret_patch)
{
    cJSON *patch, *e;

    if (!cJSON_IsObject(from) || !cJSON_IsObject(to))
        return -EINVAL;
    patch = cJSON_CreateObject();
    if (!patch)
        return -ENOMEM;
    cJSON_ArrayForEach(e, to)
    {
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(from, e->string);
        cJSON *v = NULL;

        if (was && cJSON_Compare(was, e, true))
            continue;
        if (was && cJSON_IsObject(was) && cJSON_IsObject(e)) {
            int r = kube_merge_patch_diff(was, e, &v);

            if (r < 0) {
                cJSON_Delete(patch);
                return r;
            }
        } else if (cJSON_IsNull(e)) {
            /* null in a merge patch means "remove": a field set to null is unset */
            if (!was)
                continue;
            v = cJSON_CreateNull();
        } else {
            v = cJSON_Duplicate(e, true);
        }
        if (!v || !cJSON_AddItemToObject(patch, e->string, v)) {
            cJSON_Delete(v);
            cJSON_Delete(patch);
            return -ENOMEM;
        }
    }
    cJSON_ArrayForEach(e, from)
    {
        if (cJSON_GetObjectItemCaseSensitive(to, e->string) || cJSON_IsNull(e))
            continue;
        if (!cJSON_AddNullToObject(patch, e->string)) {
            cJSON_Delete(patch);
            return -ENOMEM;
        }
    }
    *ret_patch = patch;
    return 0;
}

/* The merge patch that turns orig into obj, carrying orig's resourceVersion: the API server
 * refuses it with 409 Conflict when the object changed since (a compare-and-swap, like a PUT),
 * and it touches no field the mutation left alone (a trimmed cached copy erases nothing). */
static int patch_from_edit(struct kube_client *c, const struct kube_resource *res, const char *ns,
                           const char *name, const char *subresource, const cJSON *orig,
                           const cJSON *obj, cJSON **ret_obj, struct kube_status *st)
{
    const char *rv = kube_obj_rv(orig);
    cJSON *patch = NULL, *md;
    int r;

    if (!rv)
        return -EBADMSG; /* no precondition to write under */
    r = kube_merge_patch_diff(orig, obj, &patch);
    if (r < 0)
        return r;
    md = cJSON_GetObjectItemCaseSensitive(patch, "metadata");
    if (!md)
        md = cJSON_AddObjectToObject(patch, "metadata");
    if (!cJSON_IsObject(md)) {
        cJSON_Delete(patch);
        return md ? -EINVAL : -ENOMEM; /* the mutation removed metadata */
    }
    cJSON_DeleteItemFromObjectCaseSensitive(md, "resourceVersion");
    if (!cJSON_AddStringToObject(md, "resourceVersion", rv)) {
        cJSON_Delete(patch);
        return -ENOMEM;
    }
    r = kube_patch(c, res, ns, name, subresource, patch, ret_obj, st);
    cJSON_Delete(patch);
    return r;
}

int kube_update_retry_from(struct kube_client *c, const struct kube_resource *res, const char *ns,
                           const char *name, const char *subresource, const cJSON *base,
                           kube_mutate_fn mutate, void *ud, cJSON **ret_obj, struct kube_status *st)
{
    int r = KUBE_ECONFLICT;

    for (int attempt = 0; attempt < 10 && r == KUBE_ECONFLICT; attempt++) {
        cJSON *obj = NULL, *orig = NULL;

        if (attempt == 0 && base) {
            /* A cached copy saves the GET; a stale one costs a 409 and a fresh read. */
            obj = cJSON_Duplicate(base, true);
            if (!obj)
                return -ENOMEM;
            r = 0;
        } else {
            r = kube_get(c, res, ns, name, &obj, st);
        }
        if (r < 0)
            return r;
        orig = cJSON_Duplicate(obj, true);
        if (!orig) {
            cJSON_Delete(obj);
            return -ENOMEM;
        }
        r = mutate(obj, ud);
        if (r == KUBE_MUTATE_SKIP) {
            cJSON_Delete(orig);
            if (ret_obj)
                *ret_obj = obj;
            else
                cJSON_Delete(obj);
            return 0;
        }
        if (r == 0)
            r = patch_from_edit(c, res, ns, name, subresource, orig, obj, ret_obj, st);
        cJSON_Delete(orig);
        cJSON_Delete(obj);
    }
    return r;
}

int kube_update_retry(struct kube_client *c, const struct kube_resource *res, const char *ns,
                      const char *name, const char *subresource, kube_mutate_fn mutate, void *ud,
                      cJSON **ret_obj, struct kube_status *st)
{
    return kube_update_retry_from(c, res, ns, name, subresource, NULL, mutate, ud, ret_obj, st);
}

int kube_patch(struct kube_client *c, const struct kube_resource *res, const char *ns,
               const char *name, const char *subresource, const cJSON *patch, cJSON **ret_obj,
               struct kube_status *st)
{
    char path[PATH_MAX_];
    int r;

    if (!name || !cJSON_IsObject(patch))
        return -EINVAL;
    r = kube_path(path, sizeof(path), res, ns, name, subresource);
    if (r < 0)
        return r;
    return write_obj(c, "PATCH", path, patch, "application/merge-patch+json", ret_obj, st);
}

int kube_delete(struct kube_client *c, const struct kube_resource *res, const char *ns,
                const char *name, const struct kube_delete_opts *opts, cJSON **ret_obj,
                struct kube_status *st)
{
    char path[PATH_MAX_];
    cJSON *o = NULL;
    int r;

    if (!name)
        return -EINVAL;
    r = kube_path(path, sizeof(path), res, ns, name, NULL);
    if (r < 0)
        return r;
    o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "kind", "DeleteOptions") ||
        !cJSON_AddStringToObject(o, "apiVersion", "v1"))
        goto nomem;
    if (opts && opts->propagation_policy &&
        !cJSON_AddStringToObject(o, "propagationPolicy", opts->propagation_policy))
        goto nomem;
    if (opts && opts->grace_period_seconds >= 0 &&
        !cJSON_AddNumberToObject(o, "gracePeriodSeconds", (double)opts->grace_period_seconds))
        goto nomem;
    if (opts && (opts->precondition_uid || opts->precondition_rv)) {
        cJSON *pre = cJSON_AddObjectToObject(o, "preconditions");

        if (!pre || (opts->precondition_uid &&
                     !cJSON_AddStringToObject(pre, "uid", opts->precondition_uid)))
            goto nomem;
        if (opts->precondition_rv &&
            !cJSON_AddStringToObject(pre, "resourceVersion", opts->precondition_rv))
            goto nomem;
    }
    r = write_obj(c, "DELETE", path, o, NULL, ret_obj, st);
    cJSON_Delete(o);
    return r;
nomem:
    cJSON_Delete(o);
    return -ENOMEM;
}
