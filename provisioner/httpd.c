/*
 * Health and metrics endpoint (see httpd.h).
 *
 * One thread, one poll() loop. A connection moves through three states: READ (collect the
 * request head into a fixed buffer), WRITE (send the whole answer), DRAIN (our side shut for
 * writing; read and discard until the client closes, so that unread input never turns our close
 * into a reset that would destroy the answer). Every state shares one deadline from accept.
 * When all slots are taken the listening socket is not polled: the kernel's backlog holds
 * newcomers.
 *
 * Locks: `mu` guards `kube` and is held across kube_side_status() (which does not block), so that
 * httpd_set_kube(NULL) returning means the old side is no longer read. `csi_up` is atomic.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dir/dir.h"
#include "log.h"
#include "metrics.h"

#define LIST_PAGE 512
#define HTTPD_DRAIN_MS 1000                /* after the answer, for the client to close */
#define ACCEPT_PAUSE_NS (100 * 1000000ull) /* after EMFILE and the like */

enum conn_state { C_FREE, C_READ, C_WRITE, C_DRAIN };

struct conn {
    enum conn_state state;
    int fd;
    uint64_t deadline; /* metrics_now() ns */
    char in[HTTPD_MAX_REQUEST];
    size_t in_len;
    char *out; /* owned: the whole answer */
    size_t out_len, out_off;
};

struct httpd {
    struct httpd_config cfg;
    int listen_fd;
    int wake[2]; /* pipe: httpd_stop() writes a byte */
    pthread_t thread;
    bool thread_started;
    atomic_bool csi_up;
    pthread_mutex_t mu;
    struct kube_side *kube; /* borrowed; guarded by mu */
    uint64_t accept_paused_until;
    struct conn conns[HTTPD_MAX_CONNS];
};

/* ---- address parsing ---- */

int httpd_parse_addr(const char *s, struct httpd_addr *ret, char *err, size_t n)
{
    struct httpd_addr a = {0};
    char host[64];
    const char *colon, *port;
    size_t hlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, n, "an IPv6 address must be written [ADDR]:PORT");
            return -EINVAL;
        }
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= sizeof(host)) {
            snprintf(err, n, "not an IPv6 address");
            return -EINVAL;
        }
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        port = close + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(err, n, "must be ADDR:PORT");
            return -EINVAL;
        }
        hlen = (size_t)(colon - s);
        if (hlen == 0 || hlen >= sizeof(host) || memchr(s, ':', hlen)) {
            snprintf(err, n, "ADDR must be an IPv4 address, [IPv6] or localhost");
            return -EINVAL;
        }
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        port = colon + 1;
    }

    /* PORT: 1..65535, digits only (no sign, no spaces), at most 5 of them */
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen || atol(port) < 1 ||
        atol(port) > 65535) {
        snprintf(err, n, "PORT must be a number in [1, 65535]");
        return -EINVAL;
    }
    uint16_t p = htons((uint16_t)atol(port));

    if (s[0] == '[') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.sa;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            snprintf(err, n, "not an IPv6 address");
            return -EINVAL;
        }
        in6->sin6_family = AF_INET6;
        in6->sin6_port = p;
        a.len = sizeof(*in6);
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&a.sa;
        if (strcmp(host, "localhost") == 0)
            snprintf(host, sizeof(host), "127.0.0.1");
        /* inet_pton takes exactly four decimal parts: no "1", no "0x7f.1", no host names */
        if (inet_pton(AF_INET, host, &in4->sin_addr) != 1) {
            snprintf(err, n, "ADDR must be an IPv4 address, [IPv6] or localhost");
            return -EINVAL;
        }
        in4->sin_family = AF_INET;
        in4->sin_port = p;
        a.len = sizeof(*in4);
    }
    *ret = a;
    return 0;
}

/* ---- readiness ---- */

static void why_add(char *why, size_t n, const char *line)
{
    size_t len = strlen(why);

    if (len < n)
        snprintf(why + len, n - len, "%s\n", line);
}

bool httpd_ready(bool csi_up, bool kube_wanted, enum csi_mode mode,
                 const struct kube_side_status *st, char *why, size_t n)
{
    if (n)
        why[0] = '\0';
    if (!csi_up)
        why_add(why, n, "csi: not serving");
    if (kube_wanted || st->configured) {
        if (!st->configured || !st->connected)
            why_add(why, n, "kubernetes: API server not reached yet");
        else if (!st->synced)
            why_add(why, n,
                    mode == CSI_MODE_CONTROLLER ? "kubernetes: leader state not known yet"
                                                : "kubernetes: caches not synced yet");
    }
    return n == 0 || why[0] == '\0';
}

/* ---- answers ---- */

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* Queue the answer on c: takes body (owned, may be NULL for a fixed text in text). */
static void answer(struct conn *c, int code, const char *ctype, char *body, const char *text)
{
    const char *b = body ? body : text;
    size_t blen = strlen(b);
    char *out = NULL;
    int len =
        asprintf(&out,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "%sCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                 code, reason_phrase(code), ctype, blen, code == 405 ? "Allow: GET\r\n" : "", b);
    free(body);
    if (len < 0) {
        c->out = NULL;
        c->out_len = 0;
    } else {
        c->out = out;
        c->out_len = (size_t)len;
    }
    c->out_off = 0;
    c->state = C_WRITE;
}

#define TEXT "text/plain; charset=utf-8"
#define PROM "text/plain; version=0.0.4; charset=utf-8"

static void kube_status_locked(struct httpd *h, struct kube_side_status *st)
{
    pthread_mutex_lock(&h->mu);
    kube_side_status(h->kube, st);
    pthread_mutex_unlock(&h->mu);
}

static void serve_readyz(struct httpd *h, struct conn *c)
{
    struct kube_side_status st;
    char why[512];

    kube_status_locked(h, &st);
    if (httpd_ready(atomic_load(&h->csi_up), h->cfg.kube_wanted, h->cfg.svc->mode, &st, why,
                    sizeof(why)))
        answer(c, 200, TEXT, NULL, "ok\n");
    else
        answer(c, 503, TEXT, strdup(why), "not ready\n");
}

/* Count every backend's volumes by state into counts (2 per backend). Returns the entries. */
static size_t count_volumes(struct httpd *h, struct metrics_volume_count *counts)
{
    struct csi_service *svc = h->cfg.svc;
    size_t n = 0;

    for (size_t i = 0; i < svc->n_backends; i++) {
        struct backend *b = svc->backends[i];
        char after[BE_ID_MAX + 1] = "";
        uint64_t normal = 0, abnormal = 0;
        int r = 0;

        if (!b->ops->list)
            continue;
        for (;;) {
            struct be_volume_page page = {0};
            r = b->ops->list(b, after, LIST_PAGE, &page);
            if (r < 0)
                break;
            for (size_t k = 0; k < page.n; k++) {
                if (page.items[k].abnormal)
                    abnormal++;
                else
                    normal++;
            }
            bool more = page.more && page.n > 0;
            if (more)
                snprintf(after, sizeof(after), "%s", page.items[page.n - 1].id);
            be_volume_page_free(&page);
            if (!more)
                break;
        }
        if (r < 0) {
            log_debug("http: /metrics: listing the %s backend failed: %s", b->ops->name,
                      strerror(-r));
            continue; /* an unknown count is left out, not reported as 0 */
        }
        counts[n++] = (struct metrics_volume_count){b->ops->name, "normal", normal};
        counts[n++] = (struct metrics_volume_count){b->ops->name, "abnormal", abnormal};
    }
    return n;
}

static size_t durability(struct httpd *h, struct metrics_durability *ret)
{
    struct csi_service *svc = h->cfg.svc;
    size_t n = 0;

    for (size_t i = 0; i < svc->n_backends; i++) {
        struct backend *b = svc->backends[i];

        if (!b->ops->durability_stats)
            continue;
        ret[n].backend = b->ops->name;
        b->ops->durability_stats(b, &ret[n].waits, &ret[n].flushes);
        n++;
    }
    return n;
}

static void serve_metrics(struct httpd *h, struct conn *c)
{
    struct metrics_volume_count counts[2 * CSI_MAX_BACKENDS];
    struct metrics_durability dur[CSI_MAX_BACKENDS];
    struct kube_side_status st;
    char *text = NULL;
    size_t len;

    size_t nv = count_volumes(h, counts);
    kube_status_locked(h, &st);
    struct metrics_extra x = {
        .version = ORDINAL_VERSION,
        .kube_configured = st.configured || h->cfg.kube_wanted,
        .controller = h->cfg.svc->mode == CSI_MODE_CONTROLLER,
        .leader = st.leader,
        .events_dropped = st.events_dropped,
        .volumes = counts,
        .n_volumes = nv,
        .dir_capacity_enforced = -1,
        .durability = dur,
        .n_durability = durability(h, dur),
    };
    struct backend *dir = csi_backend_named(h->cfg.svc, "dir");
    if (dir)
        x.dir_capacity_enforced = be_dir_quota_enforced(dir, NULL, 0) ? 1 : 0;
    int r = metrics_render(&x, &text, &len);
    if (r < 0) {
        log_warn("http: /metrics: %s", strerror(-r));
        answer(c, 500, TEXT, NULL, "cannot render the metrics\n");
        return;
    }
    answer(c, 200, PROM, text, NULL);
}

static bool token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch))
            return false;
    }
    return true;
}

/* The head is complete in c->in (NUL-terminated, head_len bytes up to the blank line). */
static void serve(struct httpd *h, struct conn *c)
{
    char *line = c->in, *eol = strchr(line, '\n');
    bool host = false, body = false;

    *eol = '\0';
    if (eol > line && eol[-1] == '\r')
        eol[-1] = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') || !token_ok(line, (size_t)(sp1 - line)) ||
        sp1[1] != '/') {
        answer(c, 400, TEXT, NULL, "malformed request line\n");
        return;
    }
    *sp1 = *sp2 = '\0';
    const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
    if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
        if (strncmp(version, "HTTP/", 5) == 0)
            answer(c, 505, TEXT, NULL, "HTTP/1.1 only\n");
        else
            answer(c, 400, TEXT, NULL, "malformed request line\n");
        return;
    }
    for (char *l = eol + 1; *l;) {
        char *e = strchr(l, '\n');
        if (!e)
            break;
        *e = '\0';
        if (e > l && e[-1] == '\r')
            e[-1] = '\0';
        if (!*l)
            break; /* the blank line */
        char *colon = strchr(l, ':');
        if (!colon || !token_ok(l, (size_t)(colon - l))) {
            answer(c, 400, TEXT, NULL, "malformed header\n");
            return;
        }
        *colon = '\0';
        const char *v = colon + 1 + strspn(colon + 1, " \t");
        if (strcasecmp(l, "host") == 0)
            host = true;
        else if (strcasecmp(l, "transfer-encoding") == 0 ||
                 (strcasecmp(l, "content-length") == 0 && (!*v || strspn(v, "0") != strlen(v))))
            body = true;
        l = e + 1;
    }
    if (!host && strcmp(version, "HTTP/1.1") == 0) {
        answer(c, 400, TEXT, NULL, "Host header required\n");
        return;
    }
    size_t plen = strcspn(target, "?");
    enum { P_NONE, P_HEALTHZ, P_READYZ, P_METRICS } path = P_NONE;
    if (plen == 8 && strncmp(target, "/healthz", 8) == 0)
        path = P_HEALTHZ;
    else if (plen == 7 && strncmp(target, "/readyz", 7) == 0)
        path = P_READYZ;
    else if (plen == 8 && strncmp(target, "/metrics", 8) == 0)
        path = P_METRICS;
    if (path == P_NONE) {
        answer(c, 404, TEXT, NULL, "not found: try /healthz, /readyz or /metrics\n");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        answer(c, 405, TEXT, NULL, "only GET is served\n");
        return;
    }
    if (body) {
        answer(c, 400, TEXT, NULL, "a GET takes no body\n");
        return;
    }
    switch (path) {
    case P_HEALTHZ:
        if (atomic_load(&h->csi_up))
            answer(c, 200, TEXT, NULL, "ok\n");
        else
            answer(c, 503, TEXT, NULL, "csi: not serving\n");
        break;
    case P_READYZ:
        serve_readyz(h, c);
        break;
    default:
        serve_metrics(h, c);
        break;
    }
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    if (c->state == C_FREE)
        return;
    close(c->fd);
    free(c->out);
    c->out = NULL;
    c->fd = -1;
    c->state = C_FREE;
}

/* The end of the request head in in[0..len), or NULL. */
static char *head_end(char *in, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (in[i] == '\n' && in[i + 1] == '\n')
            return in + i + 2;
        if (i + 3 < len && memcmp(in + i, "\r\n\r\n", 4) == 0)
            return in + i + 4;
    }
    return NULL;
}

static void conn_write(struct conn *c)
{
    while (c->out && c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)w;
    }
    shutdown(c->fd, SHUT_WR);
    free(c->out);
    c->out = NULL;
    c->state = C_DRAIN;
    /* a client that keeps the connection open after our close gets a second, not the rest of
     * its deadline: slots are few */
    uint64_t drain_end = metrics_now() + HTTPD_DRAIN_MS * 1000000ull;
    if (drain_end < c->deadline)
        c->deadline = drain_end;
}

static void conn_read(struct httpd *h, struct conn *c)
{
    for (;;) {
        if (c->state == C_DRAIN) {
            char sink[512];
            ssize_t r = recv(c->fd, sink, sizeof(sink), 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (r <= 0) {
                conn_close(c);
                return;
            }
            continue;
        }
        /* C_READ: keep one byte for the terminating NUL */
        if (c->in_len >= sizeof(c->in) - 1) {
            answer(c, 431, TEXT, NULL, "request head too large\n");
            conn_write(c);
            return;
        }
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            conn_close(c); /* the client went away before a whole request */
            return;
        }
        c->in_len += (size_t)r;
        char *end = head_end(c->in, c->in_len);
        if (end) {
            if (memchr(c->in, '\0', (size_t)(end - c->in)))
                answer(c, 400, TEXT, NULL, "NUL byte in the request\n");
            else {
                *end = '\0'; /* anything after the head is never looked at */
                serve(h, c);
            }
            conn_write(c);
            return;
        }
    }
}

static void accept_all(struct httpd *h)
{
    for (;;) {
        struct conn *c = NULL;
        for (size_t i = 0; i < HTTPD_MAX_CONNS && !c; i++)
            if (h->conns[i].state == C_FREE)
                c = &h->conns[i];
        if (!c)
            return;
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_warn("http: accept: %s", strerror(errno));
                h->accept_paused_until = metrics_now() + ACCEPT_PAUSE_NS;
            }
            return;
        }
        c->fd = fd;
        c->state = C_READ;
        c->in_len = 0;
        c->out = NULL;
        c->deadline = metrics_now() + HTTPD_TIMEOUT_MS * 1000000ull;
    }
}

static void *httpd_main(void *arg)
{
    struct httpd *h = arg;
    struct pollfd pfd[2 + HTTPD_MAX_CONNS];
    struct conn *who[2 + HTTPD_MAX_CONNS];

    for (;;) {
        uint64_t now = metrics_now(), next = UINT64_MAX;
        size_t n = 0, free_slots = 0;

        /* expire first: a connection past its deadline gets 408 if it never sent a request */
        for (size_t i = 0; i < HTTPD_MAX_CONNS; i++) {
            struct conn *c = &h->conns[i];
            if (c->state == C_FREE) {
                free_slots++;
                continue;
            }
            if (now >= c->deadline) {
                if (c->state == C_READ && c->in_len > 0) {
                    answer(c, 408, TEXT, NULL, "request not complete in time\n");
                    (void)send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                }
                conn_close(c);
                free_slots++;
                continue;
            }
            if (c->deadline < next)
                next = c->deadline;
        }
        pfd[n] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
        who[n++] = NULL;
        if (free_slots > 0 && now >= h->accept_paused_until) {
            pfd[n] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
            who[n++] = NULL;
        } else if (free_slots > 0 && h->accept_paused_until < next) {
            next = h->accept_paused_until;
        }
        for (size_t i = 0; i < HTTPD_MAX_CONNS; i++) {
            struct conn *c = &h->conns[i];
            if (c->state == C_FREE)
                continue;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = c->state == C_WRITE ? POLLOUT : POLLIN};
            who[n++] = c;
        }
        int timeout = next == UINT64_MAX ? -1 : (int)((next - now) / 1000000 + 1);
        int r = poll(pfd, n, timeout);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            log_error("http: poll: %s; the endpoint stops", strerror(errno));
            break;
        }
        if (pfd[0].revents)
            break; /* httpd_stop() */
        for (size_t i = 1; i < n; i++) {
            if (!pfd[i].revents)
                continue;
            if (!who[i]) {
                accept_all(h);
                continue;
            }
            struct conn *c = who[i];
            if (c->state == C_WRITE)
                conn_write(c);
            else if (c->state != C_FREE)
                conn_read(h, c);
        }
    }
    for (size_t i = 0; i < HTTPD_MAX_CONNS; i++)
        conn_close(&h->conns[i]);
    return NULL;
}

/* ---- lifecycle ---- */

static void httpd_free(struct httpd *h)
{
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    if (h->wake[0] >= 0)
        close(h->wake[0]);
    if (h->wake[1] >= 0)
        close(h->wake[1]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

struct httpd *httpd_start(const struct httpd_config *cfg)
{
    struct httpd *h = calloc(1, sizeof(*h));
    int one = 1;

    if (!h) {
        log_error("http: out of memory");
        return NULL;
    }
    h->cfg = *cfg;
    h->listen_fd = h->wake[0] = h->wake[1] = -1;
    pthread_mutex_init(&h->mu, NULL);
    for (size_t i = 0; i < HTTPD_MAX_CONNS; i++)
        h->conns[i] = (struct conn){.state = C_FREE, .fd = -1};
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_error("http: pipe: %s", strerror(errno));
        goto fail;
    }
    h->listen_fd = socket(cfg->addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->listen_fd < 0) {
        log_error("http: socket: %s", strerror(errno));
        goto fail;
    }
    setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(h->listen_fd, (const struct sockaddr *)&cfg->addr.sa, cfg->addr.len) < 0) {
        log_error("--http-endpoint %s: cannot bind: %s", cfg->text_addr, strerror(errno));
        goto fail;
    }
    if (listen(h->listen_fd, 64) < 0) {
        log_error("--http-endpoint %s: cannot listen: %s", cfg->text_addr, strerror(errno));
        goto fail;
    }
    int r = pthread_create(&h->thread, NULL, httpd_main, h);
    if (r != 0) {
        log_error("http: cannot start the thread: %s", strerror(r));
        goto fail;
    }
    h->thread_started = true;
    log_info("serving /healthz, /readyz and /metrics on http://%s", cfg->text_addr);
    return h;
fail:
    httpd_free(h);
    return NULL;
}

void httpd_set_csi_up(struct httpd *h, bool up)
{
    if (h)
        atomic_store(&h->csi_up, up);
}

void httpd_set_kube(struct httpd *h, struct kube_side *k)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->kube = k;
    pthread_mutex_unlock(&h->mu);
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    if (h->thread_started) {
        char b = 1;
        while (write(h->wake[1], &b, 1) < 0 && errno == EINTR)
            ;
        pthread_join(h->thread, NULL);
    }
    httpd_free(h);
}
