/* Unit tests: provisioner/metrics.c (registry, exposition) and the pure parts of httpd.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "httpd.h"
#include "metrics.h"

#define MS 1000000ull

static char *render(const struct metrics_extra *x)
{
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(metrics_render(x, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Whether text holds exactly this line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define assert_line(text, line)                                                                    \
    do {                                                                                           \
        if (!has_line((text), (line)))                                                             \
            fail_msg("missing line: %s\n---\n%s", (line), (text));                                 \
    } while (0)

/* The value of the sample whose line starts with prefix (name and labels), or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);

    for (const char *p = text; (p = strstr(p, prefix)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static int setup(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

static void test_csi_counts(void **state)
{
    (void)state;
    const char *m = "/csi.v1.Node/NodeStageVolume";
    metrics_csi_call(m, 0, metrics_now());
    metrics_csi_call(m, 0, metrics_now());
    metrics_csi_call(m, 5, metrics_now());
    metrics_csi_call(NULL, 12, metrics_now());
    metrics_csi_call("/csi.v1.Identity/Probe", 99, metrics_now()); /* out of range: UNKNOWN */

    char *t = render(NULL);
    assert_line(t, "# TYPE ordinal_csi_calls_total counter");
    assert_line(t,
                "ordinal_csi_calls_total{method=\"/csi.v1.Node/NodeStageVolume\",code=\"OK\"} 2");
    assert_line(t, "ordinal_csi_calls_total{method=\"/csi.v1.Node/NodeStageVolume\","
                   "code=\"NOT_FOUND\"} 1");
    assert_line(t, "ordinal_csi_calls_total{method=\"unknown\",code=\"UNIMPLEMENTED\"} 1");
    assert_line(t, "ordinal_csi_calls_total{method=\"/csi.v1.Identity/Probe\",code=\"UNKNOWN\"} 1");
    assert_line(t, "ordinal_csi_call_duration_seconds_count{method=\"/csi.v1.Node/"
                   "NodeStageVolume\"} 3");
    assert_null(strstr(t, "code=\"ABORTED\"")); /* nothing rendered for codes never seen */
    free(t);
}

static void test_histogram(void **state)
{
    (void)state;
    const char *m = "/csi.v1.Controller/CreateVolume";
    uint64_t now = metrics_now();

    /* durations well inside their buckets: 0.5 ms, 30 ms, 70 s */
    metrics_csi_call(m, 0, now - MS / 2);
    metrics_csi_call(m, 0, now - 30 * MS);
    metrics_csi_call(m, 0, now - 70000 * MS);

    char *t = render(NULL);
#define B(le)                                                                                      \
    "ordinal_csi_call_duration_seconds_bucket{method=\"/csi.v1.Controller/CreateVolume\","         \
    "le=\"" le "\"}"
    assert_int_equal(sample(t, B("0.001")), 1);
    assert_int_equal(sample(t, B("0.025")), 1);
    assert_int_equal(sample(t, B("0.05")), 2);
    assert_int_equal(sample(t, B("60")), 2);
    assert_int_equal(sample(t, B("+Inf")), 3);
#undef B
    assert_line(t, "# TYPE ordinal_csi_call_duration_seconds histogram");
    assert_int_equal(sample(t,
                            "ordinal_csi_call_duration_seconds_count{method=\"/csi.v1.Controller/"
                            "CreateVolume\"}"),
                     3);
    double sum = sample(t, "ordinal_csi_call_duration_seconds_sum{method=\"/csi.v1.Controller/"
                           "CreateVolume\"}");
    assert_true(sum >= 70.0305 && sum < 70.5);

    /* buckets are cumulative: never decreasing, in le order, ending with +Inf */
    const char *p = t;
    double last = -1;
    int buckets = 0;
    while ((p = strstr(p, "ordinal_csi_call_duration_seconds_bucket{method=\"/csi.v1.Controller/"
                          "CreateVolume\""))) {
        const char *sp = strchr(p, ' ');
        double v = strtod(sp + 1, NULL);
        assert_true(v >= last);
        last = v;
        buckets++;
        p = sp;
    }
    assert_int_equal(buckets, 16);
    free(t);
}

static void test_escaping(void **state)
{
    (void)state;
    char buf[64];

    assert_int_equal(metrics_escape_label(buf, sizeof(buf), "a\"b\\c\nd"), 10);
    assert_string_equal(buf, "a\\\"b\\\\c\\nd");
    /* cut on an escape boundary, never half of one */
    assert_int_equal(metrics_escape_label(buf, 3, "a\"b"), 1);
    assert_string_equal(buf, "a");
    assert_int_equal(metrics_escape_label(buf, 4, "a\"b"), 3);
    assert_string_equal(buf, "a\\\"");

    /* through the exposition: a resource from a hostile path, a backend name from extra */
    metrics_kube_request("GET", "/api/v1/we\"ird\\x\ny", 200);
    struct metrics_volume_count v[] = {{"d\"ir", "normal", 3}};
    struct metrics_extra x = {.version = "1.0\"\n", .volumes = v, .n_volumes = 1};
    char *t = render(&x);
    assert_line(t, "ordinal_kube_requests_total{verb=\"list\",resource=\"we\\\"ird\\\\x\\ny\","
                   "code=\"200\"} 1");
    assert_line(t, "ordinal_volumes{backend=\"d\\\"ir\",state=\"normal\"} 3");
    assert_line(t, "ordinal_build_info{version=\"1.0\\\"\\n\"} 1");
    /* no raw newline inside any sample line: each line is a comment or name{...} value */
    for (char *l = t; *l;) {
        char *e = strchr(l, '\n');
        assert_non_null(e);
        assert_true(l[0] == '#' || strncmp(l, "ordinal_", 8) == 0);
        l = e + 1;
    }
    free(t);
}

static void test_kube_verbs(void **state)
{
    (void)state;
    metrics_kube_request("GET", "/api/v1/namespaces/default/persistentvolumeclaims?limit=500", 200);
    metrics_kube_request("GET", "/api/v1/persistentvolumes/pv-1", 404);
    metrics_kube_request("GET",
                         "/apis/storage.k8s.io/v1/storageclasses?allowWatchBookmarks=true"
                         "&watch=true&resourceVersion=5",
                         200);
    metrics_kube_request("POST", "/api/v1/namespaces/default/events", 201);
    metrics_kube_request("PUT", "/api/v1/namespaces/default/persistentvolumeclaims/c1", 409);
    metrics_kube_request("PUT", "/api/v1/namespaces/default/persistentvolumeclaims/c1/status", 200);
    metrics_kube_request("PATCH", "/api/v1/persistentvolumes/pv-1", 200);
    metrics_kube_request("DELETE", "/api/v1/persistentvolumes/pv-1", 200);
    metrics_kube_request("GET", "/api/v1/namespaces/kube-system", 200);
    metrics_kube_request("GET", "/api/v1/namespaces", 200);
    metrics_kube_request("GET", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", 0);
    metrics_kube_request("GET", "/version", 200);

    char *t = render(NULL);
#define K(verb, res, code)                                                                         \
    "ordinal_kube_requests_total{verb=\"" verb "\",resource=\"" res "\",code=\"" code "\"}"
    assert_int_equal(sample(t, K("list", "persistentvolumeclaims", "200")), 1);
    assert_int_equal(sample(t, K("get", "persistentvolumes", "404")), 1);
    assert_int_equal(sample(t, K("watch", "storageclasses", "200")), 1);
    assert_int_equal(sample(t, K("create", "events", "201")), 1);
    assert_int_equal(sample(t, K("update", "persistentvolumeclaims", "409")), 1);
    assert_int_equal(sample(t, K("update", "persistentvolumeclaims", "200")), 1);
    assert_int_equal(sample(t, K("patch", "persistentvolumes", "200")), 1);
    assert_int_equal(sample(t, K("delete", "persistentvolumes", "200")), 1);
    assert_int_equal(sample(t, K("get", "namespaces", "200")), 1);
    assert_int_equal(sample(t, K("list", "namespaces", "200")), 1);
    assert_int_equal(sample(t, K("get", "leases", "error")), 1);
    assert_int_equal(sample(t, K("list", "other", "200")), 1);
#undef K
    free(t);
}

/* Label tables are fixed: values past their capacity share the "other" cell. */
static void test_label_overflow(void **state)
{
    (void)state;
    char path[64];

    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "/api/v1/res%d", i);
        metrics_kube_request("GET", path, 200);
        metrics_watch_restart(path);
    }
    char *t = render(NULL);
    assert_int_equal(sample(t, "ordinal_kube_requests_total{verb=\"list\",resource=\"res0\","
                               "code=\"200\"}"),
                     1);
    assert_int_equal(sample(t, "ordinal_kube_requests_total{verb=\"list\",resource=\"other\","
                               "code=\"200\"}"),
                     100 - 24);
    assert_int_equal(sample(t, "ordinal_kube_watch_restarts_total{resource=\"other\"}"), 100 - 24);
    free(t);
}

static void test_provisioning(void **state)
{
    (void)state;
    metrics_prov_queue_depth(7);
    metrics_claim_seen("uid-1");
    metrics_claim_seen("uid-1"); /* the first sighting counts */
    metrics_claim_provisioned("uid-1");
    metrics_claim_provisioned("uid-1");   /* once */
    metrics_claim_provisioned("uid-404"); /* never seen: not observed */
    metrics_claim_seen(NULL);
    metrics_claim_provisioned(NULL);
    /* a claim seen long ago lands in a high bucket: simulate with many sightings evicting */
    for (int i = 0; i < 5000; i++) {
        char uid[32];
        snprintf(uid, sizeof(uid), "u-%d", i);
        metrics_claim_seen(uid);
    }
    metrics_claim_provisioned("u-4999"); /* the newest survives eviction */
    metrics_watch_restart("persistentvolumes");
    metrics_watch_restart("persistentvolumes");

    char *t = render(NULL);
    assert_line(t, "ordinal_provision_queue_depth 7");
    assert_line(t, "# TYPE ordinal_provision_time_to_bound_seconds histogram");
    assert_line(t, "ordinal_provision_time_to_bound_seconds_bucket{le=\"0.1\"} 2");
    assert_line(t, "ordinal_provision_time_to_bound_seconds_bucket{le=\"+Inf\"} 2");
    assert_line(t, "ordinal_provision_time_to_bound_seconds_count 2");
    assert_true(sample(t, "ordinal_provision_time_to_bound_seconds_sum") >= 0);
    assert_line(t, "ordinal_kube_watch_restarts_total{resource=\"persistentvolumes\"} 2");
    free(t);
}

static void test_extra(void **state)
{
    (void)state;
    struct metrics_extra x = {.version = "0.1.0"};
    char *t = render(&x);
    assert_line(t, "ordinal_build_info{version=\"0.1.0\"} 1");
    assert_null(strstr(t, "ordinal_leader"));
    assert_null(strstr(t, "ordinal_kube_events_dropped_total"));
    free(t);

    x = (struct metrics_extra){
        .kube_configured = true, .controller = true, .leader = true, .events_dropped = 4};
    t = render(&x);
    assert_line(t, "# TYPE ordinal_leader gauge");
    assert_line(t, "ordinal_leader 1");
    assert_line(t, "# TYPE ordinal_kube_events_dropped_total counter");
    assert_line(t, "ordinal_kube_events_dropped_total 4");
    assert_null(strstr(t, "build_info"));
    free(t);
    x.leader = false;
    t = render(&x);
    assert_line(t, "ordinal_leader 0");
    free(t);
}

/* Every family has HELP and TYPE before its samples, exactly once. */
static void test_headers(void **state)
{
    (void)state;
    static const char *const families[] = {
        "csi_calls_total counter",
        "csi_call_duration_seconds histogram",
        "kube_requests_total counter",
        "kube_watch_restarts_total counter",
        "provision_queue_depth gauge",
        "provision_time_to_bound_seconds histogram",
        "volumes gauge",
        "build_info gauge",
    };
    struct metrics_extra x = {.version = "v"};
    char *t = render(&x), want[128];

    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(want, sizeof(want), "# TYPE ordinal_%s", families[i]);
        const char *type = strstr(t, want);
        assert_non_null(type);
        assert_null(strstr(type + 1, want));
        *strchr(want + 7, ' ') = '\0'; /* "# TYPE ordinal_x" -> name */
        char help[160];
        snprintf(help, sizeof(help), "# HELP %s ", want + 7);
        const char *h = strstr(t, help);
        assert_non_null(h);
        assert_true(h < type);
    }
    free(t);
}

#define THREADS 4
#define PER_THREAD 20000

static void *observer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_csi_call(i % 2 ? "/csi.v1.Node/A" : "/csi.v1.Node/B", 0, metrics_now());
        metrics_kube_request("GET", "/api/v1/pods", 200);
        if (i % 100 == 0) {
            char uid[32];
            snprintf(uid, sizeof(uid), "t-%p-%d", (void *)&uid, i);
            metrics_claim_seen(uid);
            metrics_claim_provisioned(uid);
        }
    }
    return NULL;
}

static void *renderer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        char *t = NULL;
        size_t len;
        assert_int_equal(metrics_render(NULL, &t, &len), 0);
        free(t);
    }
    return NULL;
}

/* Observations from many threads while rendering: nothing lost, nothing torn. */
static void test_threads(void **state)
{
    (void)state;
    pthread_t th[THREADS + 1];

    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, observer, NULL), 0);
    assert_int_equal(pthread_create(&th[THREADS], NULL, renderer, NULL), 0);
    for (int i = 0; i <= THREADS; i++)
        pthread_join(th[i], NULL);

    char *t = render(NULL);
    assert_int_equal(sample(t, "ordinal_csi_calls_total{method=\"/csi.v1.Node/A\",code=\"OK\"}"),
                     THREADS * PER_THREAD / 2);
    assert_int_equal(sample(t, "ordinal_csi_calls_total{method=\"/csi.v1.Node/B\",code=\"OK\"}"),
                     THREADS * PER_THREAD / 2);
    assert_int_equal(sample(t, "ordinal_kube_requests_total{verb=\"list\",resource=\"pods\","
                               "code=\"200\"}"),
                     THREADS * PER_THREAD);
    assert_int_equal(sample(t, "ordinal_provision_time_to_bound_seconds_count"),
                     THREADS * PER_THREAD / 100);
    free(t);
}

static void test_ready(void **state)
{
    (void)state;
    struct kube_side_status none = {0}, connected = {.configured = true, .connected = true},
                            synced = {.configured = true, .connected = true, .synced = true};
    char why[256];

    assert_true(httpd_ready(true, false, CSI_MODE_NODE, &none, why, sizeof(why)));
    assert_string_equal(why, "");
    assert_false(httpd_ready(false, false, CSI_MODE_NODE, &none, why, sizeof(why)));
    assert_string_equal(why, "csi: not serving\n");
    assert_false(httpd_ready(true, true, CSI_MODE_NODE, &none, why, sizeof(why)));
    assert_string_equal(why, "kubernetes: API server not reached yet\n");
    assert_false(httpd_ready(false, true, CSI_MODE_NODE, &connected, why, sizeof(why)));
    assert_string_equal(why, "csi: not serving\nkubernetes: caches not synced yet\n");
    assert_false(httpd_ready(true, true, CSI_MODE_CONTROLLER, &connected, why, sizeof(why)));
    assert_string_equal(why, "kubernetes: leader state not known yet\n");
    assert_true(httpd_ready(true, true, CSI_MODE_NODE, &synced, why, sizeof(why)));
    assert_true(httpd_ready(true, true, CSI_MODE_CONTROLLER, &synced, why, sizeof(why)));
    /* a side that exists reports even when it was not expected (in-cluster) */
    assert_false(httpd_ready(true, false, CSI_MODE_NODE, &connected, why, sizeof(why)));
}

static void test_parse_addr(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        ":8080",
        "1.2.3:80",
        "0x7f.0.0.1:1",
        "host.local:80",
        "127.0.0.1:+80",
        "::1:80",
        "[::1]",
        "[::1]80",
        "[]:80",
        "[zz::1]:80",
        "[::1]:-1",
        "127.0.0.1:8 0",
        "localhost",
        "127.0.0.1:08080x",
        " 127.0.0.1:80",
    };
    struct httpd_addr a;
    char err[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (httpd_parse_addr(bad[i], &a, err, sizeof(err)) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
    }

    assert_int_equal(httpd_parse_addr("127.0.0.1:9808", &a, err, sizeof(err)), 0);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&a.sa;
    assert_int_equal(in4->sin_family, AF_INET);
    assert_int_equal(ntohs(in4->sin_port), 9808);
    assert_int_equal(a.len, sizeof(*in4));

    assert_int_equal(httpd_parse_addr("localhost:1", &a, err, sizeof(err)), 0);
    assert_int_equal(ntohl(in4->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(httpd_parse_addr("0.0.0.0:65535", &a, err, sizeof(err)), 0);
    assert_int_equal(ntohs(in4->sin_port), 65535);

    assert_int_equal(httpd_parse_addr("[::1]:9808", &a, err, sizeof(err)), 0);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.sa;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 9808);
    assert_int_equal(a.len, sizeof(*in6));
    assert_int_equal(httpd_parse_addr("[::]:80", &a, err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_csi_counts, setup),
        cmocka_unit_test_setup(test_histogram, setup),
        cmocka_unit_test_setup(test_escaping, setup),
        cmocka_unit_test_setup(test_kube_verbs, setup),
        cmocka_unit_test_setup(test_label_overflow, setup),
        cmocka_unit_test_setup(test_provisioning, setup),
        cmocka_unit_test_setup(test_extra, setup),
        cmocka_unit_test_setup(test_headers, setup),
        cmocka_unit_test_setup(test_threads, setup),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_parse_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
