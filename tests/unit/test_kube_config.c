/* Unit tests: kube/kube_yaml.c (libyaml), kube_config.c (kubeconfigs as kind, kubeadm and
 * the cloud CLIs write them, in-cluster) and kube_auth.c (exec credential plugins). */
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

#include "kube_auth.h"
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

    if (r != -EINVAL || !strstr(err, needle) || strncmp(err, "line ", 5) != 0)
        fail_msg("yaml %.40s: r=%d err=%s (want line/column and %s)", y, r, err, needle);
    assert_null(root);
}

static cJSON *yaml_ok(const char *y)
{
    cJSON *root = NULL;
    char err[256];
    int r = kube_yaml_parse(y, strlen(y), &root, err, sizeof(err));

    if (r != 0)
        fail_msg("yaml %.60s: r=%d err=%s", y, r, err);
    return root;
}

static const char *path_str(const cJSON *root, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, a);

    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* What users write by hand and what JSON tools write: all of it goes through libyaml. */
static void test_yaml_flow_anchors_blocks(void **state)
{
    cJSON *root;
    const cJSON *v;

    (void)state;
    root = yaml_ok("cluster: {server: https://x:6443, insecure-skip-tls-verify: true}\n"
                   "list: [a, 'b', \"c\"]\n");
    assert_string_equal(path_str(root, "cluster", "server"), "https://x:6443");
    assert_true(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "cluster"), "insecure-skip-tls-verify")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "list")), 3);
    cJSON_Delete(root);

    /* anchors, aliases, merge keys (explicit keys win) */
    root = yaml_ok("base: &b {server: https://a, proxy-url: http://p:3128}\n"
                   "copy: *b\n"
                   "merged:\n  <<: *b\n  server: https://override\n"
                   "names: [&n one, *n]\n");
    assert_string_equal(path_str(root, "copy", "server"), "https://a");
    assert_string_equal(path_str(root, "merged", "server"), "https://override");
    assert_string_equal(path_str(root, "merged", "proxy-url"), "http://p:3128");
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "merged"), "<<"));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "names"), 1)->valuestring,
                        "one");
    cJSON_Delete(root);

    /* block scalars, folded plain scalars, tags of the core schema, quoted "true" */
    root = yaml_ok("lit: |\n  line1\n  line2\n"
                   "fold: >-\n  a\n  b\n"
                   "plain: first\n  second\n"
                   "str: !!str true\n"
                   "quoted: 'true'\n"
                   "num: 6443\n"
                   "b: !!bool false\n");
    assert_string_equal(path_str(root, "lit", NULL), "line1\nline2\n");
    assert_string_equal(path_str(root, "fold", NULL), "a b");
    assert_string_equal(path_str(root, "plain", NULL), "first second");
    assert_string_equal(path_str(root, "str", NULL), "true");
    assert_string_equal(path_str(root, "quoted", NULL), "true");
    assert_string_equal(path_str(root, "num", NULL), "6443");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(root, "b")));
    cJSON_Delete(root);

    /* JSON is YAML */
    root = yaml_ok("{\"a\": {\"b\": [1, \"two\", true, null]}, \"esc\": \"x\\/y\\u00e9\"}");
    v = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "a"), "b");
    assert_int_equal(cJSON_GetArraySize(v), 4);
    assert_string_equal(cJSON_GetArrayItem(v, 0)->valuestring, "1");
    assert_true(cJSON_IsTrue(cJSON_GetArrayItem(v, 2)));
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(v, 3)));
    assert_string_equal(path_str(root, "esc", NULL), "x/y\xc3\xa9");
    cJSON_Delete(root);
}

static void test_yaml_hostile(void **state)
{
    static const char nul[] = "a: b\0c\n";
    static const char binary[] = "\x7f"
                                 "ELF\x02\x01\x01\x00\x00\x00\x00";
    static const char bad_utf8[] = "a: \xc3\x28\n";
    char *huge, *deep, *laughs;
    size_t o = 0;
    cJSON *root = NULL;
    char err[256];

    (void)state;
    expect_yaml_error("a:\n\tb: c\n", 9, "line 2 column 1: found character that cannot start");
    expect_yaml_error("a: 1\nb: 2\na: 3\n", 15, "line 3 column 4: duplicate key a");
    expect_yaml_error("a: *nope\n", 9, "names no (complete) anchor");
    expect_yaml_error("a: &x [*x]\n", 11, "names no (complete) anchor");
    expect_yaml_error("a: !custom x\n", 13, "unsupported tag");
    expect_yaml_error("a: b\n---\nc: d\n", 14, "more than one YAML document");
    expect_yaml_error("a: b\n  c: d\n", 12, "line 2");
    expect_yaml_error("a: \"open\n", 9, "line 2");
    expect_yaml_error("a: b: c\n", 8, "line 1");
    expect_yaml_error("{[x]: y}\n", 9, "key must be a string");
    expect_yaml_error("a: \"bad \\q escape\"\n", 19, "escape");
    expect_yaml_error("a: \"nul \\0 inside\"\n", 19, "NUL character");
    expect_yaml_error(nul, sizeof(nul) - 1, "line 1");
    expect_yaml_error(binary, sizeof(binary) - 1, "line 1");
    expect_yaml_error(bad_utf8, sizeof(bad_utf8) - 1, "UTF-8");
    expect_yaml_error("<<: notamap\n", 12, "merge key");

    /* over the size cap: refused before parsing */
    huge = malloc(KUBE_YAML_MAX_INPUT + 16);
    assert_non_null(huge);
    memcpy(huge, "a: ", 3);
    memset(huge + 3, 'x', KUBE_YAML_MAX_INPUT + 4);
    huge[KUBE_YAML_MAX_INPUT + 7] = '\n';
    assert_int_equal(kube_yaml_parse(huge, KUBE_YAML_MAX_INPUT + 8, &root, err, sizeof(err)),
                     -E2BIG);
    assert_non_null(strstr(err, "larger than"));
    assert_null(root);
    free(huge);

    /* deep nesting, block and flow (a million '[' is refused at level 65, fast) */
    deep = malloc(1 << 20);
    assert_non_null(deep);
    for (int d = 0; d < 80; d++) {
        for (int i = 0; i < d * 2; i++)
            deep[o++] = ' ';
        o += (size_t)sprintf(deep + o, "k%d:\n", d);
    }
    expect_yaml_error(deep, o, "nesting deeper than 64");
    memset(deep, '[', 1 << 20);
    expect_yaml_error(deep, 1 << 20, "nesting deeper than 64");
    free(deep);

    /* a billion laughs: each level doubles ten times; refused by the value budget */
    laughs = malloc(8192);
    assert_non_null(laughs);
    o = (size_t)sprintf(laughs, "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++)
        o += (size_t)sprintf(laughs + o,
                             "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, "
                             "*l%d]\n",
                             i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                             i - 1);
    expect_yaml_error(laughs, o, "more than 200000 values");
    free(laughs);
}

static void test_yaml_empty(void **state)
{
    cJSON *root = NULL;

    (void)state;
    assert_int_equal(kube_yaml_parse("# only a comment\n\n", 18, &root, NULL, 0), 0);
    assert_true(cJSON_IsObject(root));
    assert_null(root->child);
    cJSON_Delete(root);
    assert_int_equal(kube_yaml_parse("---\n", 4, &root, NULL, 0), 0);
    assert_true(cJSON_IsObject(root));
    cJSON_Delete(root);
    assert_int_equal(kube_yaml_parse("", 0, &root, NULL, 0), 0);
    assert_true(cJSON_IsObject(root));
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
                        -EINVAL, "exec apiVersion must be");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    exec: {apiVersion: "
                            "client.authentication.k8s.io/v1beta1}\n",
                        -EINVAL, "exec has no command");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    exec: {command: p, apiVersion: "
                            "client.authentication.k8s.io/v1}\n",
                        -EINVAL, "interactiveMode is required");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    exec: {command: p, apiVersion: "
                            "client.authentication.k8s.io/v1, interactiveMode: Always}\n",
                        -EOPNOTSUPP, "needs a terminal");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    exec: {command: p, apiVersion: "
                            "client.authentication.k8s.io/v1beta1, args: [1, {a: b}]}\n",
                        -EINVAL, "not a string");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    exec: {command: p, apiVersion: "
                            "client.authentication.k8s.io/v1beta1, env: [{name: 'A=B', value: "
                            "c}]}\n",
                        -EINVAL, "needs a name");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    auth-provider: {name: gcp}\n",
                        -EOPNOTSUPP, "auth-provider");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster: {server: https://x, proxy-url: "
                            "ftp://p}\nusers:\n- name: u\n  user: {}\n",
                        -EINVAL, "proxy-url must be");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster: {server: https://x, "
                            "tls-server-name: 'a/b'}\nusers:\n- name: u\n  user: {}\n",
                        -EINVAL, "not a host name");
    /* a bearer token over plain http:// is refused unless the cluster says insecure */
    expect_config_error(CTX "clusters:\n- name: k\n  cluster: {server: http://x:8080}\n"
                            "users:\n- name: u\n  user: {token: abc}\n",
                        -EINVAL, "refusing to send a bearer token over plain http://");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster: {server: http://x:8080}\n"
                            "users:\n- name: u\n  user: {tokenFile: /t}\n",
                        -EINVAL, "plain http://");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster: {server: http://x:8080}\n"
                            "users:\n- name: u\n  user: {exec: {command: p, apiVersion: "
                            "client.authentication.k8s.io/v1beta1}}\n",
                        -EINVAL, "plain http://");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "users:\n- name: u\n  user:\n    client-certificate-data: Y2VydAo=\n",
                        -EINVAL, "client key");
    expect_config_error(CTX "clusters:\n- name: k\n  cluster:\n    server: https://x\n"
                            "    insecure-skip-tls-verify: maybe\n"
                            "users:\n- name: u\n  user: {}\n",
                        -EINVAL, "not a boolean");
    /* wrong types in a JSON kubeconfig */
    expect_config_error("{\"current-context\": [7]}", -EINVAL, "not a string");
    expect_config_error("{\"current-context\": \"c\", \"contexts\": {\"c\": 1}}", -EINVAL,
                        "not a list");
    expect_config_error("{\"current-context\": \"c\"} trailing", -EINVAL, "line 1 column 26");
    expect_config_error("[1, 2]", -EINVAL, "not a mapping");
    expect_config_error("- a\n- b\n", -EINVAL, "not a mapping");
    expect_config_error("a:\n\tb: c\n", -EINVAL, "line 2 column 1");
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
    assert_int_equal(kube_config_parse(&c, j, strlen(j), NULL, NULL), -EINVAL);
    assert_non_null(strstr(be_last_error(), "plain http://"));
    assert_null(c.token);
    kube_config_release(&c);
    {
        /* said insecure: accepted as the user asked */
        char *j2 = strdup(j);
        char *f = strstr(j2, "false");

        assert_non_null(f);
        memcpy(f, "true ", 5);
        kube_config_init(&c);
        assert_int_equal(kube_config_parse(&c, j2, strlen(j2), NULL, NULL), 0);
        assert_string_equal(c.server, "http://127.0.0.1:8080");
        assert_string_equal(c.token, "abc");
        assert_true(c.insecure_skip_tls_verify);
        /* a client refuses it too when handed such a config without the flag */
        c.insecure_skip_tls_verify = false;
        assert_int_equal(kube_config_check_transport(&c), -EINVAL);
        kube_config_release(&c);
        free(j2);
    }
}

#define FIXTURES ORDINAL_TEST_SOURCE "/tests/unit/kubeconfig/"
#define PLUGIN ORDINAL_TEST_SOURCE "/tests/k8s/exec_plugin.py"

static void load_fixture(struct kube_config *c, const char *name)
{
    char path[1024];
    const char *paths[1] = {path};
    int r;

    snprintf(path, sizeof(path), FIXTURES "%s", name);
    kube_config_init(c);
    r = kube_config_load_files(c, paths, 1, NULL);
    if (r != 0)
        fail_msg("%s: r=%d %s", name, r, be_last_error());
}

static void test_fixture_kind_kubeadm(void **state)
{
    static const char *const names[] = {"kind.yaml", "kubeadm-admin.conf"};
    struct kube_config c;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        load_fixture(&c, names[i]);
        assert_memory_equal(c.server, "https://", 8);
        assert_string_equal(c.namespace, "default");
        assert_int_equal(c.ca.len, 31);
        assert_string_equal((char *)c.client_cert.data, "cert\n");
        assert_string_equal((char *)c.client_key.data, "key\n");
        assert_null(c.token);
        assert_null(c.exec);
        kube_config_release(&c);
    }
    load_fixture(&c, "kubeadm-admin.conf");
    assert_string_equal(c.context, "kubernetes-admin@kubernetes");
    assert_string_equal(c.server, "https://192.168.10.11:6443");
    kube_config_release(&c);
}

static void test_fixture_cloud_cli(void **state)
{
    struct kube_config c;

    (void)state;
    /* aws eks update-kubeconfig: names are ARNs (plain scalars with ':'), exec v1beta1 */
    load_fixture(&c, "eks.yaml");
    assert_string_equal(c.context, "arn:aws:eks:eu-west-1:111122223333:cluster/storage-test");
    assert_non_null(c.exec);
    assert_string_equal(c.exec->command, "aws");
    assert_string_equal(c.exec->api_version, KUBE_EXEC_API_V1BETA1);
    assert_int_equal(c.exec->nargs, 8);
    assert_string_equal(c.exec->args[3], "get-token");
    assert_string_equal(c.exec->args[7], "json");
    assert_int_equal(c.exec->nenv, 1);
    assert_string_equal(c.exec->env[0], "AWS_PROFILE=storage-admin");
    assert_int_equal(c.exec->interactive, KUBE_EXEC_IF_AVAILABLE);
    assert_false(c.exec->provide_cluster_info);
    kube_config_release(&c);

    /* GKE: gke-gcloud-auth-plugin, a folded plain installHint, provideClusterInfo */
    load_fixture(&c, "gke.yaml");
    assert_string_equal(c.exec->command, "gke-gcloud-auth-plugin");
    assert_true(c.exec->provide_cluster_info);
    assert_int_equal(c.exec->nargs, 0);
    assert_non_null(strstr(c.exec->install_hint, "kubectl by following https://cloud.google"));
    kube_config_release(&c);

    /* AKS after kubelogin convert-kubeconfig: env null, a |2 block installHint, a namespace */
    load_fixture(&c, "aks-kubelogin.yaml");
    assert_string_equal(c.exec->command, "kubelogin");
    assert_string_equal(c.namespace, "csi");
    assert_string_equal(c.server, "https://storage-dns-0a1b2c3d.hcp.westeurope.azmk8s.io:443");
    assert_int_equal(c.exec->nargs, 5);
    assert_int_equal(c.exec->nenv, 0);
    assert_int_equal(c.exec->interactive, KUBE_EXEC_IF_AVAILABLE);
    assert_non_null(strstr(c.exec->install_hint, "\nkubelogin is not installed which"));
    kube_config_release(&c);
}

static void test_fixture_hand_written(void **state)
{
    struct kube_config c;

    (void)state;
    load_fixture(&c, "hand-written.yaml");
    assert_string_equal(c.server, "https://10.1.2.3:6443");
    assert_string_equal(c.namespace, "storage-system");
    assert_true(c.insecure_skip_tls_verify); /* from the merged anchor */
    assert_string_equal(c.proxy_url, "socks5h://proxy.lab:1080");
    assert_string_equal(c.tls_server_name, "api.lab.internal");
    assert_string_equal(c.token, "abc.def.ghi");
    kube_config_release(&c);
}

/* A kubeconfig whose user runs tests/k8s/exec_plugin.py with the given extra env entries. */
static void exec_config(struct kube_config *c, const char *api, const char *env_yaml)
{
    char y[4096];
    int r;

    snprintf(y, sizeof(y),
             CTX "clusters:\n- name: k\n  cluster:\n    server: https://k.example:6443\n"
                 "    certificate-authority-data: " CA_B64 "\n"
                 "    tls-server-name: api.example\n"
                 "users:\n- name: u\n  user:\n    exec:\n"
                 "      command: " PLUGIN "\n      apiVersion: %s\n"
                 "      interactiveMode: Never\n      provideClusterInfo: true\n"
                 "      installHint: ask the admin\n"
                 "      args: [--flag, 'with space']\n      env:\n%s",
             api, env_yaml);
    kube_config_init(c);
    r = kube_config_parse(c, y, strlen(y), NULL, NULL);
    if (r != 0)
        fail_msg("exec config: %d %s", r, be_last_error());
}

static int read_int(const char *path)
{
    char buf[32] = "";
    FILE *f = fopen(path, "r");

    if (!f)
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = 0;
    fclose(f);
    return atoi(buf);
}

static void test_exec_parse(void **state)
{
    struct kube_cred cr;
    char err[160];

    (void)state;
    {
        static const char j[] = "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
                                "\"ExecCredential\",\"status\":{\"token\":\"tok\","
                                "\"expirationTimestamp\":\"2030-01-02T03:04:05Z\"}}";

        assert_int_equal(kube_auth__parse(j, strlen(j), KUBE_EXEC_API_V1, &cr, err, sizeof(err)),
                         0);
        assert_string_equal(cr.token, "tok");
        assert_true(cr.expires == 1893553445.0);
        kube_cred_release(&cr);
        /* the apiVersion must be the one the kubeconfig asked for */
        assert_int_equal(
            kube_auth__parse(j, strlen(j), KUBE_EXEC_API_V1BETA1, &cr, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "apiVersion"));
    }
    {
        static const char j[] = "{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
                                "\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":"
                                "\"CERT\\n\",\"clientKeyData\":\"KEY\\n\"}}";

        assert_int_equal(
            kube_auth__parse(j, strlen(j), KUBE_EXEC_API_V1BETA1, &cr, err, sizeof(err)), 0);
        assert_null(cr.token);
        assert_string_equal((char *)cr.cert.data, "CERT\n");
        assert_string_equal((char *)cr.key.data, "KEY\n");
        assert_true(cr.expires == 0);
        kube_cred_release(&cr);
    }
    {
        static const char *const bad[] = {
            "not json",
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"Other\"}",
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\"}",
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
            "\"status\":{}}",
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
            "\"status\":{\"clientKeyData\":\"k\"}}",
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
            "\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"soon\"}}",
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
            "\"status\":{\"token\":\"t\\r\\nX-Injected: 1\"}}",
        };

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
            err[0] = 0;
            if (kube_auth__parse(bad[i], strlen(bad[i]), KUBE_EXEC_API_V1, &cr, err, sizeof(err)) !=
                -EBADMSG)
                fail_msg("accepted %s", bad[i]);
            assert_true(err[0] != 0);
        }
    }
}

static void test_exec_plugin_runs(void **state)
{
    char dir[] = "/tmp/kube-exec-XXXXXX";
    char env[2048], path[600], cmd[700];
    struct kube_config c;
    struct kube_auth *a;
    struct kube_cred cr;
    unsigned long gen, gen2;
    char *info;
    size_t len;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(env, sizeof(env),
             "      - {name: PLUGIN_STATE, value: %s}\n"
             "      - {name: PLUGIN_TOKEN, value: sekrit-token}\n",
             dir);
    exec_config(&c, KUBE_EXEC_API_V1, env);
    a = kube_auth_new(&c);
    assert_non_null(a);
    snprintf(path, sizeof(path), "%s/runs", dir);

    /* first use runs the plugin; the second is served from the cache */
    assert_int_equal(kube_auth_get(a, &cr, &gen), 0);
    assert_string_equal(cr.token, "sekrit-token");
    kube_cred_release(&cr);
    assert_int_equal(kube_auth_get(a, &cr, &gen2), 0);
    kube_cred_release(&cr);
    assert_int_equal(gen, gen2);
    assert_int_equal(kube_auth_runs(a), 1);
    assert_int_equal(read_int(path), 1);
    /* a 401 with an older credential than the cached one changes nothing; with it, reruns */
    kube_auth_invalidate(a, gen + 1);
    assert_int_equal(kube_auth_get(a, &cr, &gen2), 0);
    kube_cred_release(&cr);
    assert_int_equal(kube_auth_runs(a), 1);
    kube_auth_invalidate(a, gen);
    assert_int_equal(kube_auth_get(a, &cr, &gen2), 0);
    kube_cred_release(&cr);
    assert_int_equal(kube_auth_runs(a), 2);
    assert_int_equal(read_int(path), 2);
    assert_true(gen2 != gen);

    /* what the plugin saw: KUBERNETES_EXEC_INFO with the cluster, as kubectl passes it */
    snprintf(path, sizeof(path), "%s/exec-info.json", dir);
    assert_int_equal(kube__read_file(path, 65536, &info, &len), 0);
    {
        cJSON *j = cJSON_Parse(info);
        const cJSON *cl = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "spec"), "cluster");

        assert_string_equal(cJSON_GetObjectItem(j, "apiVersion")->valuestring, KUBE_EXEC_API_V1);
        assert_true(
            cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "spec"), "interactive")));
        assert_string_equal(cJSON_GetObjectItem(cl, "server")->valuestring,
                            "https://k.example:6443");
        assert_string_equal(cJSON_GetObjectItem(cl, "tls-server-name")->valuestring, "api.example");
        assert_string_equal(cJSON_GetObjectItem(cl, "certificate-authority-data")->valuestring,
                            CA_B64);
        cJSON_Delete(j);
    }
    free(info);
    kube_auth_free(a);
    kube_config_release(&c);

    /* an expired credential is fetched again */
    snprintf(env, sizeof(env),
             "      - {name: PLUGIN_STATE, value: %s}\n"
             "      - {name: PLUGIN_TOKEN, value: t}\n"
             "      - {name: PLUGIN_EXPIRE_S, value: '-5'}\n",
             dir);
    exec_config(&c, KUBE_EXEC_API_V1BETA1, env);
    a = kube_auth_new(&c);
    assert_non_null(a);
    assert_int_equal(kube_auth_get(a, &cr, &gen), 0);
    assert_true(cr.expires > 0);
    kube_cred_release(&cr);
    assert_int_equal(kube_auth_get(a, &cr, &gen), 0);
    kube_cred_release(&cr);
    assert_int_equal(kube_auth_runs(a), 2);
    kube_auth_free(a);
    kube_config_release(&c);

    /* a failing plugin: -EIO with its stderr's first line */
    exec_config(&c, KUBE_EXEC_API_V1, "      - {name: PLUGIN_FAIL, value: 'no SSO session'}\n");
    a = kube_auth_new(&c);
    assert_int_equal(kube_auth_get(a, &cr, &gen), -EIO);
    assert_non_null(strstr(be_last_error(), "failed (exit 1): no SSO session"));
    kube_auth_free(a);
    kube_config_release(&c);

    /* a missing command: -ENOENT and the installHint */
    {
        static const char y[] = CTX "clusters:\n- name: k\n  cluster: {server: https://k}\n"
                                    "users:\n- name: u\n  user:\n    exec:\n"
                                    "      command: ordinal-no-such-plugin\n"
                                    "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                                    "      installHint: see the runbook\n";

        kube_config_init(&c);
        assert_int_equal(kube_config_parse(&c, y, strlen(y), NULL, NULL), 0);
        a = kube_auth_new(&c);
        assert_int_equal(kube_auth_get(a, &cr, &gen), -ENOENT);
        assert_non_null(strstr(be_last_error(), "not found: see the runbook"));
        kube_auth_free(a);
        kube_config_release(&c);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
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
        cmocka_unit_test(test_yaml_flow_anchors_blocks),
        cmocka_unit_test(test_yaml_hostile),
        cmocka_unit_test(test_yaml_empty),
        cmocka_unit_test(test_config_current_context),
        cmocka_unit_test(test_config_other_context),
        cmocka_unit_test(test_config_files_relative),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_fixture_kind_kubeadm),
        cmocka_unit_test(test_fixture_cloud_cli),
        cmocka_unit_test(test_fixture_hand_written),
        cmocka_unit_test(test_exec_parse),
        cmocka_unit_test(test_exec_plugin_runs),
        cmocka_unit_test(test_incluster),
        cmocka_unit_test(test_base64_and_time),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
