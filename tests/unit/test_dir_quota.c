/* Unit tests of the directory backend's project quota part (backends/dir/dir_quota.c): the pure
 * parts (parameters, block rounding, id allocation), the meta fields, and the behaviour where
 * the root has no project quotas (this host). The enforcing path runs in the VM: vm.quota. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend.h"
#include "dir/dir.h"
#include "dir/dir_internal.h"
#include "fsutil.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_params(void **state)
{
    struct be_param p[2] = {{DIR_PARAM_INODE_LIMIT, "1000"}, {DIR_PARAM_INODE_LIMIT, "5"}};
    static const char *const bad[] = {
        "0", "-1", "abc", "1e3", "", " 5", "5 ", "1099511627777", "99999999999999999999"};
    int64_t n = -1;

    (void)state;
    assert_int_equal(dir__quota_params(NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dir__quota_params(p, 1, &n), 0);
    assert_int_equal(n, 1000);
    assert_int_equal(dir__quota_params(p, 1, NULL), 0);
    p[0].value = "1099511627776"; /* DIR_INODE_LIMIT_MAX */
    assert_int_equal(dir__quota_params(p, 1, &n), 0);
    assert_int_equal(n, DIR_INODE_LIMIT_MAX);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        p[0].value = bad[i];
        if (dir__quota_params(p, 1, &n) != -EINVAL)
            fail_msg("inodeLimit \"%s\" accepted", bad[i]);
        assert_non_null(strstr(be_last_error(), DIR_PARAM_INODE_LIMIT));
    }
    p[0].value = "10";
    assert_int_equal(dir__quota_params(p, 2, &n), -EINVAL);
    assert_non_null(strstr(be_last_error(), "twice"));
    p[1].key = "fsType";
    assert_int_equal(dir__quota_params(p, 2, &n), -EINVAL);
    assert_non_null(strstr(be_last_error(), "fsType"));
    p[0].key = NULL;
    assert_int_equal(dir__quota_params(p, 1, &n), -EINVAL);
}

static void test_blocks(void **state)
{
    (void)state;
    assert_int_equal(dir__quota_blocks(0), 0);
    assert_int_equal(dir__quota_blocks(-5), 0);
    assert_int_equal(dir__quota_blocks(1), 1);
    assert_int_equal(dir__quota_blocks(1024), 1);
    assert_int_equal(dir__quota_blocks(1025), 2);
    assert_int_equal(dir__quota_blocks(1LL << 30), 1 << 20);
    assert_int_equal(dir__quota_blocks(INT64_MAX), ((uint64_t)INT64_MAX >> 10) + 1);
}

static void test_next_id(void **state)
{
    uint32_t id = 0;

    (void)state;
    assert_int_equal(dir__quota_next_id(0, &id), 0);
    assert_int_equal(id, DIR_PROJID_BASE);
    assert_int_equal(dir__quota_next_id(17, &id), 0); /* ids below our range are not ours */
    assert_int_equal(id, DIR_PROJID_BASE);
    assert_int_equal(dir__quota_next_id(DIR_PROJID_BASE, &id), 0);
    assert_int_equal(id, DIR_PROJID_BASE + 1);
    assert_int_equal(dir__quota_next_id(DIR_PROJID_MAX - 1, &id), 0);
    assert_int_equal(id, DIR_PROJID_MAX);
    id = 7;
    assert_int_equal(dir__quota_next_id(DIR_PROJID_MAX, &id), -ENOSPC);
    assert_int_equal(id, 7);
    assert_int_equal(dir__quota_next_id(UINT32_MAX, &id), -ENOSPC);
}

struct fx {
    char root[64];
    struct backend *b;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/ordinal-dirq-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    f->b = be_dir_new(f->root, "node-1");
    if (!f->b || f->b->ops->recover(f->b) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    f->b->ops->free(f->b);
    fsu_rm_tree(f->root);
    free(f);
    return 0;
}

static struct be_create_req req(const char *name, int64_t bytes, const struct be_param *p, size_t n)
{
    return (struct be_create_req){.name = name,
                                  .key = name,
                                  .required_bytes = bytes,
                                  .access = BE_ACCESS_MOUNT,
                                  .fs_type = "",
                                  .params = p,
                                  .n_params = n};
}

/* Where the root has no project quotas (tmpfs or a kernel without quota support), nothing
 * changes: volumes are made without an id, an inode limit is refused, GetCapacity for a class
 * asking one is 0, and the reason is reported. */
static void test_not_enforced(void **state)
{
    struct fx *f = *state;
    struct be_param p = {DIR_PARAM_INODE_LIMIT, "100"};
    struct be_volume v;
    struct be_volume_page page;
    struct be_create_req r;
    char why[BE_MSG_MAX], path[PATH_MAX];
    int64_t avail = -1, max = -1;

    if (be_dir_quota_enforced(f->b, why, sizeof(why)))
        skip(); /* a root with project quotas: vm.quota covers it */
    assert_non_null(strstr(why, "not enforced"));
    assert_non_null(strstr(why, f->root));

    r = req("q1", 1 << 20, &p, 1);
    assert_int_equal(f->b->ops->create(f->b, &r, &v), -EINVAL);
    assert_non_null(strstr(be_last_error(), "needs project quotas"));
    assert_int_equal(f->b->ops->list(f->b, "", 0, &page), 0);
    assert_int_equal(page.n, 0); /* refused: nothing made */
    be_volume_page_free(&page);
    snprintf(path, sizeof(path), "%s/_/q1", f->root);
    assert_int_equal(access(path, F_OK), -1);

    assert_int_equal(f->b->ops->capacity(f->b, &p, 1, &avail, &max), 0);
    assert_int_equal(avail, 0);
    assert_int_equal(f->b->ops->capacity(f->b, NULL, 0, &avail, &max), 0);
    assert_true(avail > 0);
    p.value = "x";
    assert_int_equal(f->b->ops->capacity(f->b, &p, 1, &avail, &max), -EINVAL);

    r = req("q2", 1 << 20, NULL, 0);
    assert_int_equal(f->b->ops->create(f->b, &r, &v), 0);
    pthread_mutex_lock(&dir__of(f->b)->lock);
    assert_int_equal(dir__vol_find(dir__of(f->b), v.id)->projid, 0);
    pthread_mutex_unlock(&dir__of(f->b)->lock);
    {
        struct dir_quota_usage qu;
        assert_int_equal(dir__quota_usage(dir__of(f->b), v.id, &qu), -ENOTSUP);
    }
}

/* Write buf as a volume meta sealed by its checksum line, as the backend writes them. */
static void write_sealed(const char *meta, char *buf, size_t cap)
{
    int n = dir__meta_seal(buf, strlen(buf), cap);

    assert_true(n > 0);
    assert_int_equal(fsu_write_atomic(meta, buf, (size_t)n, 0600), 0);
}

/* The meta fields: written, read back at recover, absent = none, garbled = damaged. */
static void test_meta_fields(void **state)
{
    struct fx *f = *state;
    struct be_create_req r = req("m1", 1 << 20, NULL, 0);
    struct be_volume v;
    struct dir_vol *dv;
    _cleanup_free_ char *text = NULL;
    char meta[PATH_MAX], buf[4096];
    size_t len;
    char *at;

    assert_int_equal(f->b->ops->create(f->b, &r, &v), 0);
    snprintf(meta, sizeof(meta), "%s/_/m1/volume.meta", f->root);
    assert_int_equal(fsu_read_file(meta, 8192, &text, &len), 0);
    assert_non_null(strstr(text, "\nproject=0\n"));
    assert_non_null(strstr(text, "\ninode_limit=0\n"));

    /* a volume made on a quota root and read here */
    at = strstr(text, "project=0\ninode_limit=0\n");
    assert_non_null(at);
    *at = '\0';
    snprintf(buf, sizeof(buf), "%sproject=1000042\ninode_limit=77\n", text);
    write_sealed(meta, buf, sizeof(buf));
    assert_int_equal(f->b->ops->recover(f->b), 0);
    pthread_mutex_lock(&dir__of(f->b)->lock);
    dv = dir__vol_find(dir__of(f->b), v.id);
    assert_non_null(dv);
    assert_false(dv->damaged);
    assert_int_equal(dv->projid, 1000042);
    assert_int_equal(dv->inode_limit, 77);
    pthread_mutex_unlock(&dir__of(f->b)->lock);

    /* an older meta without the fields (version 1, unsealed): no id */
    snprintf(buf, sizeof(buf), "%s", text);
    assert_memory_equal(buf, "version=2\n", 10);
    buf[8] = '1';
    assert_int_equal(fsu_write_atomic(meta, buf, strlen(buf), 0600), 0);
    assert_int_equal(f->b->ops->recover(f->b), 0);
    pthread_mutex_lock(&dir__of(f->b)->lock);
    dv = dir__vol_find(dir__of(f->b), v.id);
    assert_non_null(dv);
    assert_false(dv->damaged);
    assert_int_equal(dv->projid, 0);
    pthread_mutex_unlock(&dir__of(f->b)->lock);

    /* garbled: the volume is damaged, not read with a wrong id */
    snprintf(buf, sizeof(buf), "%sproject=4294967295\ninode_limit=0\n", text);
    write_sealed(meta, buf, sizeof(buf));
    assert_int_equal(f->b->ops->recover(f->b), 0);
    assert_int_equal(f->b->ops->lookup(f->b, v.id, &v), 0);
    assert_true(v.abnormal);
    assert_non_null(strstr(v.condition, "project"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_next_id),
        cmocka_unit_test_setup_teardown(test_not_enforced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_fields, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
