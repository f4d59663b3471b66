/*
 * ordinal-csi: arguments, signals and lifecycle of the daemon.
 *
 * Start-up: parse and check every flag (exit 2 on a bad one), open and recover the backends
 * (finish or roll back what a crash left), then serve. SIGTERM/SIGINT: stop serving, let
 * in-flight calls finish, remove the socket, exit 0.
 *
 * Threading: SIGTERM, SIGINT and SIGPIPE are blocked before any thread starts, so every thread
 * inherits the mask; the main thread takes the termination signals with sigwait().
 */
#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csi.h"
#include "cache.h"
#include "httpd.h"
#include "dir/dir.h"
#include "kube_client.h"
#include "kube_side.h"
#include "lvm/lvm.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define DEFAULT_DRIVER_NAME "ordinal.csi.dev"
#define DEFAULT_DIR_ROOT "/var/lib/ordinal"
#define CQ_THREADS 2
#define DEFAULT_WORKERS 4
#define MAX_WORKERS 64
#define SHUTDOWN_GRACE_MS 10000
#define MAX_LVM_VGS 8

struct options {
    const char *endpoint;
    const char *node_id;
    const char *driver_name;
    const char *dir_root;
    const char *default_backend;
    const char *lvm_vgs[MAX_LVM_VGS]; /* borrowed from argv */
    size_t n_lvm_vgs;
    enum csi_mode mode;
    int64_t max_volumes_per_node;
    int workers;
    struct kube_side_config kube;
    const char *http_endpoint; /* borrowed from argv; NULL = no health endpoint */
    struct httpd_addr http_addr;
    enum log_level log_level;
    enum log_format log_format;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: ordinal-csi [OPTIONS]\n"
        "CSI driver giving every StatefulSet ordinal its own durable volume.\n\n"
        "  --endpoint unix:///PATH      socket to serve CSI on (required)\n"
        "  --node-id ID                 this node's id (default: the host name)\n"
        "  --driver-name NAME           CSI driver name (default %s)\n"
        "  --mode node|controller       node serves Identity, Controller and Node;\n"
        "                               controller serves Identity and Controller (default node)\n"
        "  --dir-root PATH              root of the directory backend\n"
        "                               (default %s in node mode)\n"
        "  --lvm-vg NAME                volume group the LVM backend may use (repeatable,\n"
        "                               up to %d); no LVM backend without it\n"
        "  --default-backend dir|lvm    backend of a request without a backend parameter\n"
        "                               (default dir)\n"
        "  --max-volumes-per-node N     reported by NodeGetInfo (default 0: no limit)\n"
        "  --workers N                  threads running CSI calls (disk work, mounts; 1-64,\n"
        "                               default 4)\n"
        "  --kubeconfig PATH            talk to Kubernetes with this kubeconfig: node mode runs\n"
        "                               the built-in provisioner and the volume inventory,\n"
        "                               controller mode leader election and, while leading,\n"
        "                               the StatefulSet reconciler (in a pod the service\n"
        "                               account is used)\n"
        "  --kube-api-qps N             client-side rate limit, requests/s (default 50)\n"
        "  --kube-api-burst N           client-side burst (default 100)\n"
        "  --leader-election-namespace NS  namespace of the controller's Lease\n"
        "  --http-endpoint ADDR:PORT    serve /healthz, /readyz and /metrics over HTTP\n"
        "                               (IPv4, [IPv6] or localhost; default: off)\n"
        "  --log-level LEVEL            debug, info, warn or error (default info)\n"
        "  --log-format FORMAT          text or json (default text)\n"
        "  --version                    print the version and exit\n"
        "  --help                       print this help and exit\n",
        DEFAULT_DRIVER_NAME, DEFAULT_DIR_ROOT, MAX_LVM_VGS);
}

static int bad_flag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_flag(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ordinal-csi: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'ordinal-csi --help'.\n");
    return 2;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A topology value (the node id is one): 1..63 chars, alphanumeric at both ends, [-_.] inside. */
static bool topology_value_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

/* A driver name: 1..63 chars, domain style, starting and ending with a letter or digit. */
static bool driver_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* An LVM volume group name as --lvm-vg takes it: 1..32 of [A-Za-z0-9+_.-], not starting with
 * '-', not "." or "..". */
static bool vg_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 32 || s[0] == '-' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '+' && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

/* Returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, struct options *o, char *hostname, size_t hlen)
{
    enum {
        O_ENDPOINT = 1,
        O_NODE_ID,
        O_DRIVER,
        O_MODE,
        O_DIR_ROOT,
        O_LVM_VG,
        O_DEFAULT_BACKEND,
        O_MAXVOL,
        O_WORKERS,
        O_KUBECONFIG,
        O_QPS,
        O_BURST,
        O_LEASE_NS,
        O_HTTP,
        O_LEVEL,
        O_FORMAT,
        O_VERSION,
        O_HELP
    };
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"node-id", required_argument, NULL, O_NODE_ID},
        {"driver-name", required_argument, NULL, O_DRIVER},
        {"mode", required_argument, NULL, O_MODE},
        {"dir-root", required_argument, NULL, O_DIR_ROOT},
        {"lvm-vg", required_argument, NULL, O_LVM_VG},
        {"default-backend", required_argument, NULL, O_DEFAULT_BACKEND},
        {"max-volumes-per-node", required_argument, NULL, O_MAXVOL},
        {"workers", required_argument, NULL, O_WORKERS},
        {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
        {"kube-api-qps", required_argument, NULL, O_QPS},
        {"kube-api-burst", required_argument, NULL, O_BURST},
        {"leader-election-namespace", required_argument, NULL, O_LEASE_NS},
        {"http-endpoint", required_argument, NULL, O_HTTP},
        {"log-level", required_argument, NULL, O_LEVEL},
        {"log-format", required_argument, NULL, O_FORMAT},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct options){.driver_name = DEFAULT_DRIVER_NAME,
                          .mode = CSI_MODE_NODE,
                          .workers = DEFAULT_WORKERS,
                          .log_level = LOG_INFO,
                          .log_format = LOG_TEXT};
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_ENDPOINT:
            o->endpoint = optarg;
            break;
        case O_NODE_ID:
            o->node_id = optarg;
            break;
        case O_DRIVER:
            o->driver_name = optarg;
            break;
        case O_MODE:
            if (strcmp(optarg, "node") == 0)
                o->mode = CSI_MODE_NODE;
            else if (strcmp(optarg, "controller") == 0)
                o->mode = CSI_MODE_CONTROLLER;
            else
                return bad_flag("--mode %s: must be node or controller", optarg);
            break;
        case O_DIR_ROOT:
            o->dir_root = optarg;
            break;
        case O_LVM_VG:
            if (!vg_name_ok(optarg))
                return bad_flag("--lvm-vg %s: must be 1-32 characters of [A-Za-z0-9+_.-], not "
                                "starting with '-'",
                                optarg);
            if (o->n_lvm_vgs == MAX_LVM_VGS)
                return bad_flag("--lvm-vg: at most %d volume groups", MAX_LVM_VGS);
            o->lvm_vgs[o->n_lvm_vgs++] = optarg;
            break;
        case O_DEFAULT_BACKEND:
            if (strcmp(optarg, "dir") != 0 && strcmp(optarg, "lvm") != 0)
                return bad_flag("--default-backend %s: must be dir or lvm", optarg);
            o->default_backend = optarg;
            break;
        case O_MAXVOL: {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 0)
                return bad_flag("--max-volumes-per-node %s: must be a number >= 0", optarg);
            o->max_volumes_per_node = v;
            break;
        }
        case O_WORKERS: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > MAX_WORKERS)
                return bad_flag("--workers %s: must be a number in [1, %d]", optarg, MAX_WORKERS);
            o->workers = (int)v;
            break;
        }
        case O_KUBECONFIG:
            if (!optarg[0])
                return bad_flag("--kubeconfig: a path is required");
            o->kube.kubeconfig = optarg;
            break;
        case O_QPS: {
            char *end;
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(v > 0 && v <= 100000))
                return bad_flag("--kube-api-qps %s: must be a number in (0, 100000]", optarg);
            o->kube.qps = v;
            break;
        }
        case O_BURST: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 100000)
                return bad_flag("--kube-api-burst %s: must be a number in [1, 100000]", optarg);
            o->kube.burst = (int)v;
            break;
        }
        case O_LEASE_NS:
            if (!kube_name_valid(optarg))
                return bad_flag("--leader-election-namespace %s: not a valid namespace", optarg);
            o->kube.lease_namespace = optarg;
            break;
        case O_HTTP: {
            char why[128];
            if (httpd_parse_addr(optarg, &o->http_addr, why, sizeof(why)) < 0)
                return bad_flag("--http-endpoint %s: %s", optarg, why);
            o->http_endpoint = optarg;
            break;
        }
        case O_LEVEL:
            if (log_parse_level(optarg, &o->log_level) < 0)
                return bad_flag("--log-level %s: must be debug, info, warn or error", optarg);
            break;
        case O_FORMAT:
            if (log_parse_format(optarg, &o->log_format) < 0)
                return bad_flag("--log-format %s: must be text or json", optarg);
            break;
        case O_VERSION:
            printf("ordinal-csi %s\n", ORDINAL_VERSION);
            return 0;
        case O_HELP:
            usage(stdout);
            return 0;
        case ':':
            return bad_flag("option %s needs a value", argv[optind - 1]);
        default:
            return bad_flag("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad_flag("unexpected argument %s", argv[optind]);
    if (!o->endpoint)
        return bad_flag("--endpoint is required");
    if (strncmp(o->endpoint, "unix://", 7) != 0 || o->endpoint[7] != '/' ||
        strlen(o->endpoint + 7) >= 108)
        return bad_flag("--endpoint %s: must be unix:///ABSOLUTE/PATH (at most 107 bytes)",
                        o->endpoint);
    if (!o->node_id) {
        if (gethostname(hostname, hlen) < 0 || !hostname[0])
            return bad_flag("--node-id is required: the host name is unknown");
        hostname[hlen - 1] = '\0';
        o->node_id = hostname;
    }
    if (!topology_value_ok(o->node_id))
        return bad_flag("--node-id %s: must be 1-63 characters of [A-Za-z0-9-_.], starting and "
                        "ending with a letter or digit (it is a topology value)",
                        o->node_id);
    if (!driver_name_ok(o->driver_name))
        return bad_flag("--driver-name %s: must be 1-63 characters of [A-Za-z0-9-.], starting "
                        "and ending with a letter or digit",
                        o->driver_name);
    if (o->default_backend && strcmp(o->default_backend, "lvm") == 0 && o->n_lvm_vgs == 0)
        return bad_flag("--default-backend lvm needs --lvm-vg");
    if (!o->dir_root && o->mode == CSI_MODE_NODE)
        o->dir_root = DEFAULT_DIR_ROOT;
    if (o->dir_root && o->dir_root[0] != '/')
        return bad_flag("--dir-root %s: must be an absolute path", o->dir_root);
    return -1;
}

/* server_config.on_serving: /healthz turns 200 before the first CSI call can be answered. */
static void csi_serving(void *ud)
{
    httpd_set_csi_up(ud, true);
}

int main(int argc, char **argv)
{
    struct csi_service svc = {0};
    struct options o;
    char hostname[256] = "";
    sigset_t mask;
    int sig, rc;

    rc = parse_args(argc, argv, &o, hostname, sizeof(hostname));
    if (rc >= 0)
        return rc;
    log_setup(o.log_level, o.log_format);
    /* Memory stays small and returns to the system after a burst (a ListVolumes of 10,000
     * volumes allocates megabytes for a moment): a fixed mmap threshold stops glibc from raising
     * it after such frees, and two arenas stop every worker thread keeping its own free heap. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_ARENA_MAX, 2);
    o.kube.identity = o.node_id;
    o.kube.workers = 4;
    if (kube_global_init() < 0) {
        log_error("libcurl initialisation failed");
        return 1;
    }
    if (cache_install() < 0) {
        log_error("cannot register the cache transforms");
        return 1;
    }

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);

    svc.driver_name = o.driver_name;
    svc.version = ORDINAL_VERSION;
    svc.node_id = o.node_id;
    svc.mode = o.mode;
    svc.max_volumes_per_node = o.max_volumes_per_node;
    svc.default_backend = o.default_backend;
    svc.locks = lock_table_new();
    if (!svc.locks) {
        log_error("out of memory");
        return 1;
    }

    if (o.dir_root) {
        if (mkdir(o.dir_root, 0700) < 0 && errno != EEXIST) {
            log_error("--dir-root %s: cannot create: %s", o.dir_root, strerror(errno));
            return 1;
        }
        be_error_clear();
        struct backend *b = be_dir_new(o.dir_root, o.node_id);
        if (!b) {
            log_error("directory backend at %s: %s", o.dir_root, be_last_error());
            return 1;
        }
        svc.backends[svc.n_backends++] = b;
        rc = b->ops->recover(b);
        if (rc < 0) {
            log_error("directory backend at %s: recovery failed: %s", o.dir_root,
                      be_last_error()[0] ? be_last_error() : strerror(-rc));
            b->ops->free(b);
            return 1;
        }
        log_info("directory backend at %s recovered", o.dir_root);
        {
            char why[BE_MSG_MAX];
            (void)be_dir_quota_enforced(b, why, sizeof(why));
            log_info("directory backend capacity %s", why);
        }
    }

    if (o.n_lvm_vgs > 0) {
        be_error_clear();
        struct backend *b = be_lvm_new(o.lvm_vgs, o.n_lvm_vgs, o.node_id);
        if (!b) {
            log_error("LVM backend: %s", be_last_error());
            for (size_t i = 0; i < svc.n_backends; i++)
                svc.backends[i]->ops->free(svc.backends[i]);
            lock_table_free(svc.locks);
            return 1;
        }
        rc = b->ops->recover(b);
        if (rc < 0) {
            log_error("LVM backend: recovery failed: %s",
                      be_last_error()[0] ? be_last_error() : strerror(-rc));
            b->ops->free(b);
            for (size_t i = 0; i < svc.n_backends; i++)
                svc.backends[i]->ops->free(svc.backends[i]);
            lock_table_free(svc.locks);
            return 1;
        }
        /* keep svc.backends sorted by name ("dir" < "lvm") */
        size_t at = svc.n_backends;
        while (at > 0 && strcmp(svc.backends[at - 1]->ops->name, b->ops->name) > 0) {
            svc.backends[at] = svc.backends[at - 1];
            at--;
        }
        svc.backends[at] = b;
        svc.n_backends++;
        log_info("LVM backend recovered: %zu volume group(s), %zu half-made LV(s) removed",
                 o.n_lvm_vgs, be_lvm_removed_count(b));
    }

    struct httpd *http = NULL;
    if (o.http_endpoint) {
        struct httpd_config hc = {.addr = o.http_addr,
                                  .text_addr = o.http_endpoint,
                                  .svc = &svc,
                                  .kube_wanted = kube_side_wanted(&o.kube)};
        http = httpd_start(&hc);
        if (!http) {
            for (size_t i = 0; i < svc.n_backends; i++)
                svc.backends[i]->ops->free(svc.backends[i]);
            lock_table_free(svc.locks);
            return 1;
        }
    }

    /* Last publish/unpublish per volume, for the inventory (node mode with Kubernetes). */
    if (o.mode == CSI_MODE_NODE && kube_side_wanted(&o.kube))
        svc.uses = csi_uses_new();
    grpc_init();
    struct server_config cfg = {
        .endpoint = o.endpoint,
        .cq_threads = CQ_THREADS,
        .workers = (size_t)o.workers,
        .methods = csi_methods,
        .n_methods = csi_n_methods,
        .ctx = &svc,
        .on_serving = csi_serving,
        .on_serving_ud = http,
    };
    struct server *srv = server_start(&cfg);
    if (!srv) {
        httpd_stop(http);
        grpc_shutdown();
        for (size_t i = 0; i < svc.n_backends; i++)
            svc.backends[i]->ops->free(svc.backends[i]);
        lock_table_free(svc.locks);
        csi_uses_free(svc.uses);
        return 1;
    }
    struct kube_side *kube = NULL;
    if (kube_side_wanted(&o.kube)) {
        kube = kube_side_start(&o.kube, &svc);
        httpd_set_kube(http, kube);
        if (!kube) {
            httpd_stop(http);
            server_stop(srv, 1000);
            grpc_shutdown();
            for (size_t i = 0; i < svc.n_backends; i++)
                svc.backends[i]->ops->free(svc.backends[i]);
            lock_table_free(svc.locks);
            csi_uses_free(svc.uses);
            kube_global_cleanup();
            return 1;
        }
    }
    log_info("ordinal-csi %s ready: driver %s, node %s, mode %s", ORDINAL_VERSION, o.driver_name,
             o.node_id, o.mode == CSI_MODE_NODE ? "node" : "controller");

    sigdelset(&mask, SIGPIPE);
    do {
        rc = sigwait(&mask, &sig);
    } while (rc != 0);
    log_info("signal %d: shutting down", sig);

    httpd_stop(http); /* first: it reads the Kubernetes side and the backends */
    kube_side_stop(kube);
    server_stop(srv, SHUTDOWN_GRACE_MS);
    grpc_shutdown();
    for (size_t i = 0; i < svc.n_backends; i++)
        svc.backends[i]->ops->free(svc.backends[i]);
    lock_table_free(svc.locks);
    csi_uses_free(svc.uses);
    kube_global_cleanup();
    log_info("stopped");
    return 0;
}
