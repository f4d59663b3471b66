/* Unit tests: provisioner/kube_yaml.c and kube_config.c (kubeconfig subset, in-cluster). */
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kube_config.h"
#include "kube_util.h"
#include "kube_yaml.h"
#include "util.h"

/* "-----BEGIN CERTIFICATE-----\nCA\n" and friends, base64 */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="

static const char kubectl_yaml[] = "apiVersion: v1\n"
                                   "clusters:\n"
                                   "- cluster:\n"
                                   "    certificate-authority-data: " CA_B64 "\n"
                                   "    server: https://127.0.0.1:6443\n"
                                   "  name: kind\n"
                                   "- cluster:\n"
                                   "    insecure-skip-tls-verify: true\n"
                                   "    server: 'https://10.0.0.1:443/'\n"
                                   "  name: other\n"
                                   "contexts:\n"
                                   "- context:\n"
                                   "    cluster: kind\n"
                                   "    user: admin\n"
                                   "    namespace: storage\n"
                                   "  name: kind-ctx\n"
                                   "- context:\n"
                                   "    cluster: other\n"
                                   "    user: \"tok-user\"\n"
                                   "  name: other-ctx\n"
                                   "current-context: kind-ctx # the default\n"
                                   "kind: Config\n"
                                   "preferences: {}\n"
                                   "users:\n"
                                   "- name: admin\n"
                                   "  user:\n"
                                   "    client-certificate-data: Y2VydAo=\n"
                                   "    client-key-data: a2V5Cg==\n"
                                   "- name: tok-user\n"
                                   "  user:\n"
                                   "    token: s3cr3t\n";

static void test_yaml_kubectl_shape(void **state)
{
    cJSON *root = NULL;
    char err[256];
    const cJSON *clusters, *c0;

    (void)state;
    assert_int_equal(kube_yaml_parse(kubectl_yaml, strlen(kubectl_yaml), &root, err, sizeof(err)),
                     0);
    clusters = cJSON_GetObjectItemCaseSensitive(root, "clusters");
    assert_true(cJSON_IsArray(clusters));
    assert_int_equal(cJSON_GetArraySize(clusters), 2);
    c0 = cJSON_GetArrayItem(clusters, 0);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c0, "cluster"), "server")
            ->valuestring,
        "https://127.0.0.1:6443");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "current-context")->valuestring,
                        "kind-ctx");
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "preferences")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(clusters, 1), "cluster"),
        "insecure-skip-tls-verify")));
    cJSON_Delete(root);
}

static void test_yaml_scalars(void **state)
{
    static const char y[] = "---\n"
                            "a: \"x\\ty \\\"q\\\" \\u00e9\"\n"
                            "b: 'it''s # not a comment'\n"
                            "c: plain value # comment\n"
                            "d:\n"
                            "e: ~\n"
                            "f: []\n"
                            "g:\n"
                            "  - one\n"
                            "  -\n"
                            "    nested: yes\n"
                            "  - - deep\n"
                            "h: 0123\n"
                            "\"quoted key\": v\r\n";
    cJSON *root = NULL;
    char err[256];
    const cJSON *g;

    (void)state;
    assert_int_equal(kube_yaml_parse(y, strlen(y), &root, err, sizeof(err)), 0);
    assert_string_equal(cJSON_GetObjectItem(root, "a")->valuestring, "x\ty \"q\" \xc3\xa9");
    assert_string_equal(cJSON_GetObjectItem(root, "b")->valuestring, "it's # not a comment");
    assert_string_equal(cJSON_GetObjectItem(root, "c")->valuestring, "plain value");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "d")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "e")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(root, "f")));
    g = cJSON_GetObjectItem(root, "g");
    assert_int_equal(cJSON_GetArraySize(g), 3);
    assert_string_equal(cJSON_GetArrayItem(g, 0)->valuestring, "one");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(g, 1), "nested")->valuestring,
                        "yes");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(g, 2), 0)->valuestring, "deep");
    assert_string_equal(cJSON_GetObjectItem(root, "h")->valuestring, "0123");
    assert_string_equal(cJSON_GetObjectItem(root, "quoted key")->valuestring, "v");
    cJSON_Delete(root);
}

static void expect_yaml_error(const char *y, size_t len, const char *needle)
{
    cJSON *root = NULL;
    char err[256];
    int r = kube_yaml_parse(y, len, &root, err, sizeof(err));

    if (r != -EINVAL || !strstr(err, needle))
        fail_msg("yaml %.40s: r=%d err=%s (want %s)", y, r, err, needle);
    assert_null(root);
}

static void test_yaml_hostile(void **state)
{
    static const char nul[] = "a: b\0c\n";
    char *huge;
    char deep[4096];
    size_t o = 0;

    (void)state;
    expect_yaml_error("a:\n\tb: c\n", 9, "line 2: tab");
    expect_yaml_error("a: 1\nb: 2\na: 3\n", 15, "line 3: duplicate key");
    expect_yaml_error("a: &anchor x\n", 13, "unsupported YAML");
    expect_yaml_error("a: *alias\n", 10, "unsupported YAML");
    expect_yaml_error("a: !!str x\n", 11, "unsupported YAML");
    expect_yaml_error("a: |\n  text\n", 12, "unsupported YAML");
    expect_yaml_error("a: {b: c}\n", 10, "flow collections");
    expect_yaml_error("a: [b]\n", 7, "flow collections");
    expect_yaml_error("a: b\n---\nc: d\n", 14, "one YAML document");
    expect_yaml_error("a: b\n  c: d\n", 12, "line 2: unexpected indentation");
    expect_yaml_error("a: \"open\n", 9, "unterminated");
    expect_yaml_error("a: b: c\n", 8, "unexpected ':'");
    expect_yaml_error("a:\n- x\n  y: z\n", 14, "unexpected");
    expect_yaml_error("just a scalar\nanother\n", 22, "unexpected");
    expect_yaml_error("a: \"bad \\q escape\"\n", 19, "escape");
    expect_yaml_error(nul, sizeof(nul) - 1, "NUL");
    expect_yaml_error("%YAML 1.2\na: b\n", 15, "directives");

    huge = malloc(KUBE_YAML_MAX_LINE + 16);
    assert_non_null(huge);
    memcpy(huge, "a: ", 3);
    memset(huge + 3, 'x', KUBE_YAML_MAX_LINE + 4);
    huge[KUBE_YAML_MAX_LINE + 7] = '\n';
    expect_yaml_error(huge, KUBE_YAML_MAX_LINE + 8, "longer than");
    free(huge);

    for (int d = 0; d < 40; d++) {
        for (int i = 0; i < d * 2; i++)
            deep[o++] = ' ';
        o += (size_t)sprintf(deep + o, "k%d:\n", d);
    }
    expect_yaml_error(deep, o, "nesting deeper");
}

static void test_yaml_empty(void **state)
{
    cJSON *root = NULL;

    (void)state;
    assert_int_equal(kube_yaml_parse("# only a comment\n\n", 18, &root, NULL, 0), 0);
    assert_true(cJSON_IsObject(root));
    assert_null(root->child);
    cJSON_Delete(root);
}

static void test_config_current_context(void **state)
{
    struct kube_config c;

    (void)state;
    kube_config_init(&c);
    assert_int_equal(kube_config_parse(&c, kubectl_yaml, strlen(kubectl_yaml), NULL, NULL), 0);
    assert_string_equal(c.server, "https://127.0.0.1:6443");
    assert_string_equal(c.namespace, "storage");
    assert_string_equal(c.context, "kind-ctx");
    assert_int_equal(c.ca.len, 31);
    assert_memory_equal(c.ca.data, "-----BEGIN CERTIFICATE-----\nCA\n", 31);
    assert_string_equal((char *)c.client_cert.data, "cert\n");
    assert_string_equal((char *)c.client_key.data, "key\n");
    assert_null(c.token);
    assert_false(c.insecure_skip_tls_verify);
    assert_true(c.qps == KUBE_DEFAULT_QPS);
    assert_int_equal(c.burst, KUBE_DEFAULT_BURST);
    kube_config_release(&c);
}

static void test_config_other_context(void **state)
{
    struct kube_config c;

    (void)state;
    kube_config_init(&c);
    assert_int_equal(kube_config_parse(&c, kubectl_yaml, strlen(kubectl_yaml), NULL, "other-ctx"),
                     0);
    assert_string_equal(c.server, "https://10.0.0.1:443"); /* trailing slash dropped */
    assert_string_equal(c.namespace, "default");
    assert_true(c.insecure_skip_tls_verify);
    assert_null(c.ca.data);
    assert_string_equal(c.token, "s3cr3t");
    kube_config_release(&c);
    kube_config_init(&c);
    assert_int_equal(kube_config_parse(&c, kubectl_yaml, strlen(kubectl_yaml), NULL, "nope"),
                     -EINVAL);
    assert_non_null(strstr(be_last_error(), "context nope not found"));
    assert_null(c.server);
    kube_config_release(&c);
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f)
        return -errno;
    fputs(text, f);
    fclose(f);
    return 0;
}

static void test_config_files_relative(void **state)
{
    char dir[] = "/tmp/kube-config-XXXXXX";
    char path[600];
    const char *paths[1] = {path};
    struct kube_config c;
    static const char y[] = "apiVersion: v1\n"
                            "kind: Config\n"
                            "current-context: c\n"
                            "contexts:\n"
                            "- name: c\n"
                            "  context: {}\n";
    static const char y2[] = "current-context: c\n"
                             "contexts:\n"
                             "- name: c\n"
                             "  context:\n"
                             "    cluster: k\n"
                             "    user: u\n"
                             "clusters:\n"
                             "- name: k\n"
                             "  cluster:\n"
                             "    server: https://example:6443\n"
                             "    certificate-authority: pki/ca.crt\n"
                             "users:\n"
                             "- name: u\n"
                             "  user:\n"
                             "    client-certificate: pki/u.crt\n"
                             "    client-key: pki/u.key\n"
                             "    tokenFile: token\n";

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/pki", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(write_file(dir, "pki/ca.crt", "CA-PEM\n"), 0);
    assert_int_equal(write_file(dir, "pki/u.crt", "CERT-PEM\n"), 0);
    assert_int_equal(write_file(dir, "pki/u.key", "KEY-PEM\n"), 0);
    assert_int_equal(write_file(dir, "token", "tok\n"), 0);
    assert_int_equal(write_file(dir, "config", y2), 0);
    assert_int_equal(write_file(dir, "empty-ctx", y), 0);
    snprintf(path, sizeof(path), "%s/config", dir);

    kube_config_init(&c);
    assert_int_equal(kube_config_load_files(&c, paths, 1, NULL), 0);
    assert_string_equal((char *)c.ca.data, "CA-PEM\n");
    assert_string_equal((char *)c.client_cert.data, "CERT-PEM\n");
    assert_string_equal((char *)c.client_key.data, "KEY-PEM\n");
    snprintf(path, sizeof(path), "%s/token", dir);
    assert_string_equal(c.token_file, path);
    kube_config_release(&c);

    /* $KUBECONFIG with a missing file first, then explicit --kubeconfig */
    {
        char env[1300];

        snprintf(env, sizeof(env), "%s/missing:%s/config", dir, dir);
        setenv("KUBECONFIG", env, 1);
        kube_config_init(&c);
        assert_int_equal(kube_config_load(&c, NULL, NULL), 0);
        assert_string_equal(c.server, "https://example:6443");
        kube_config_release(&c);
        unsetenv("KUBECONFIG");
    }

    snprintf(path, sizeof(path), "%s/empty-ctx", dir);
    kube_config_init(&c);
    assert_int_equal(kube_config_load(&c, path, NULL), -EINVAL);
    assert_non_null(strstr(be_last_error(), "names no cluster"));
    kube_config_release(&c);

    /* a missing referenced file */
    snprintf(path, sizeof(path), "%s/pki/ca.crt", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/config", dir);
    kube_config_init(&c);
    assert_int_equal(kube_config_load(&c, path, NULL), -ENOENT);
    assert_non_null(strstr(be_last_error(), "certificate-authority"));
    kube_config_release(&c);

    snprintf(path, sizeof(path), "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

static void expect_config_error(const char *y, int want, const char *needle)
{
    struct kube_config c;
    int r;

    kube_config_init(&c);
    r = kube_config_parse(&c, y, strlen(y), NULL, NULL);
    if (r != want || !strstr(be_last_error(), needle))
        fail_msg("config %.60s: r=%d msg=%s (want %d %s)", y, r, be_last_error(), want, needle);
    assert_null(c.server);
    assert_null(c.token);
    kube_config_release(&c);
}

#define CTX "current-context: c\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"

static void test_config_errors(void **state)
{
    (void)state;
    expect_config_error("kind: Config\n", -EINVAL, "no current-context");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: ftp://x\n", -EINVAL,
                        "http(s) URL");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster: {}\n", -EINVAL, "has no server");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n", -EINVAL,
                        "user u not found");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "    certificate-authority-data: " CA_B64 "\n"
                            "    certificate-authority: /etc/ca\n"
                            "users:\n- name: u\n  user: {}\n",
                        -EINVAL, "both");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "    certificate-authority-data: '!!notbase64'\n"
                            "users:\n- name: u\n  user: {}\n",
                        -EINVAL, "not valid base64");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "    certificate-authority-data: " CA_B64 "\n"
                            "    insecure-skip-tls-verify: true\n"
                            "users:\n- name: u\n  user: {}\n",
                        -EINVAL, "insecure-skip-tls-verify are both set");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    exec:\n      command: aws\n",
                        -EOPNOTSUPP, "exec");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    client-certificate-data: Y2VydAo=\n",
                        -EINVAL, "client key");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "    insecure-skip-tls-verify: maybe\n"
                            "users:\n- name: u\n  user: {}\n",
                        -EINVAL, "not a boolean");
    /* wrong types in a JSON kubeconfig */
    expect_config_error("{\"current-context\": 7}", -EINVAL, "not a string");
    expect_config_error("{\"current-context\": \"c\", \"contexts\": {\"c\": 1}}", -EINVAL,
                        "not a list");
    expect_config_error("{\"current-context\": \"c\"} trailing", -EINVAL, "trailing");
    expect_config_error("[1, 2]", -EINVAL, "flow collections");
    expect_config_error("- a\n- b\n", -EINVAL, "not a mapping");
    expect_config_error("a:\n\tb: c\n", -EINVAL, "tab");
}

static void test_config_json(void **state)
{
    static const char j[] =
        "{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"current-context\":\"c\","
        "\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"k\",\"user\":\"u\"}}],"
        "\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"http://127.0.0.1:8080\","
        "\"insecure-skip-tls-verify\":false}}],"
        "\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"abc\"}}]}";
    struct kube_config c;

    (void)state;
    kube_config_init(&c);
    assert_int_equal(kube_config_parse(&c, j, strlen(j), NULL, NULL), 0);
    assert_string_equal(c.server, "http://127.0.0.1:8080");
    assert_string_equal(c.token, "abc");
    kube_config_release(&c);
}

static void test_incluster(void **state)
{
    char dir[] = "/tmp/kube-sa-XXXXXX";
    char cmd[600];
    struct kube_config c;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(write_file(dir, "token", "satoken\n"), 0);
    assert_int_equal(write_file(dir, "ca.crt", "SA-CA\n"), 0);
    assert_int_equal(write_file(dir, "namespace", "kube-system\n"), 0);

    unsetenv("KUBERNETES_SERVICE_HOST");
    kube_config_init(&c);
    assert_int_equal(kube_config_incluster(&c, dir), -ENOENT);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_config_incluster(&c, dir), 0);
    assert_string_equal(c.server, "https://[fd00::1]:443");
    assert_string_equal(c.namespace, "kube-system");
    assert_string_equal((char *)c.ca.data, "SA-CA\n");
    assert_non_null(strstr(c.token_file, "/token"));
    assert_null(c.token); /* read per request, not kept */
    setenv("KUBERNETES_SERVICE_HOST", "evil/host", 1);
    assert_int_equal(kube_config_incluster(&c, dir), -EINVAL);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    kube_config_release(&c);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_base64_and_time(void **state)
{
    unsigned char *out;
    size_t len;
    double t;
    char buf[32];

    (void)state;
    assert_int_equal(kube__base64_decode("aGVs\nbG8=", 9, &out, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);
    assert_int_equal(kube__base64_decode("aGVsbG8", 7, &out, &len), 0); /* no padding */
    free(out);
    assert_int_equal(kube__base64_decode("a=b", 3, &out, &len), -EINVAL);
    assert_int_equal(kube__base64_decode("a", 1, &out, &len), -EINVAL);

    assert_int_equal(kube__parse_time("2024-01-02T03:04:05.123456Z", &t), 0);
    assert_true(t > 1704164645.12 && t < 1704164645.13);
    assert_int_equal(kube__format_microtime(t, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2024-01-02T03:04:05.123456Z");
    assert_int_equal(kube__parse_time("2024-01-02T05:04:05+02:00", &t), 0);
    assert_true(t == 1704164645.0);
    assert_int_equal(kube__parse_time("2024-13-02T03:04:05Z", &t), -EINVAL);
    assert_int_equal(kube__parse_time("2024-01-02 03:04:05Z", &t), -EINVAL);
    assert_int_equal(kube__parse_time("2024-01-02T03:04:05", &t), -EINVAL);
    assert_int_equal(kube__parse_time("2024-01-02T03:04:05.1234567890Z", &t), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_kubectl_shape),
        cmocka_unit_test(test_yaml_scalars),
        cmocka_unit_test(test_yaml_hostile),
        cmocka_unit_test(test_yaml_empty),
        cmocka_unit_test(test_config_current_context),
        cmocka_unit_test(test_config_other_context),
        cmocka_unit_test(test_config_files_relative),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_incluster),
        cmocka_unit_test(test_base64_and_time),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
