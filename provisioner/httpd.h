/*
 * The health and metrics endpoint (--http-endpoint ADDR:PORT): a small HTTP/1.1 server on its
 * own thread, serving
 *   GET /healthz  200 while the process runs and the CSI server is up;
 *   GET /readyz   200 when CSI serves and, with a Kubernetes side, it is connected and synced
 *                 (and in controller mode the leader state is known); else 503 and a line per
 *                 reason;
 *   GET /metrics  the Prometheus text format (metrics.h).
 * Anything else: 404 (unknown path), 405 (not GET), 400 (malformed), 431 (request head over
 * HTTPD_MAX_REQUEST), 408 (not complete within HTTPD_TIMEOUT_MS). Every answer closes the
 * connection.
 *
 * Threading: one thread polls the listening socket, a wake-up pipe and at most HTTPD_MAX_CONNS
 * connections, all non-blocking; it never takes a lock a CSI thread holds across work (the only
 * shared state is the mutex-guarded kube_side pointer and two flags). Rendering /metrics asks the
 * backends for their volume lists on this thread. httpd_stop() may be called from main() at any
 * time and returns once the thread is gone and every descriptor is closed.
 */
#ifndef ORDINAL_HTTPD_H
#define ORDINAL_HTTPD_H

#include <stdbool.h>
#include <sys/socket.h>

#include "csi.h"
#include "kube_side.h"

#define HTTPD_MAX_CONNS 16
#define HTTPD_MAX_REQUEST 8192 /* request line and headers */
#define HTTPD_TIMEOUT_MS 5000  /* per connection, from accept to the last byte written */

struct httpd_addr {
    struct sockaddr_storage sa;
    socklen_t len;
};

/*
 * Parse ADDR:PORT: ADDR an IPv4 literal (127.0.0.1), a bracketed IPv6 literal ([::1]) or
 * "localhost" (127.0.0.1, no resolver involved); PORT 1..65535 in decimal. 0 or -EINVAL with a
 * message for the user in err (size n).
 */
int httpd_parse_addr(const char *s, struct httpd_addr *ret, char *err, size_t n);

struct httpd_config {
    struct httpd_addr addr;
    const char *text_addr;   /* for log lines; borrowed, lives as long as the server */
    struct csi_service *svc; /* borrowed: mode and backends */
    bool kube_wanted;        /* a Kubernetes side is expected (readiness waits for it) */
};

struct httpd;

/* Bind, listen and start the thread. NULL on failure (logged). */
struct httpd *httpd_start(const struct httpd_config *cfg);
/* The CSI server is (not) serving. */
void httpd_set_csi_up(struct httpd *h, bool up);
/* The Kubernetes side to report (NULL: none yet, or about to be stopped). Once this returns,
 * the endpoint no longer touches the previous one. */
void httpd_set_kube(struct httpd *h, struct kube_side *k);
/* Stop the thread, close everything, free. h may be NULL. */
void httpd_stop(struct httpd *h);

/*
 * Readiness as a pure function: true when ready; otherwise why (size n) holds one line per
 * reason ("csi: not serving\n", "kubernetes: not connected\n", ...).
 */
bool httpd_ready(bool csi_up, bool kube_wanted, enum csi_mode mode,
                 const struct kube_side_status *st, char *why, size_t n);

#endif
