/* The LVM backend's create rollback against real lvm2 (activation off, a loop-file VG made
 * here): a failure after lvcreate must leave no LV. Needs root, lvm2 and losetup; skipped
 * otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "exec.h"
#include "lvm/lvm.h"
#include "lvm/lvm_internal.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], img[128], conf[128], loopdev[64], vgname[32];
static bool ready;

static int run(const char *tool, const char *const *args, char *out, size_t cap)
{
    char path[256];
    const char *argv[16];
    struct exec_opts o = {.inherit_lvm = true};
    struct exec_result r;
    size_t n = 0;
    int rc;

    if (exec_find(tool, path, sizeof(path)) < 0)
        return -ENOENT;
    argv[n++] = path;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    rc = exec_run(argv, &o, &r);
    if (rc < 0)
        return rc;
    if (out)
        snprintf(out, cap, "%s", r.out);
    rc = r.exit_code == 0 ? 0 : -EIO;
    exec_result_release(&r);
    return rc;
}

static int setup(void **state)
{
    char path[256];
    FILE *f;
    int fd;

    (void)state;
    if (geteuid() != 0 || exec_find("lvm", path, sizeof(path)) < 0)
        return 0;
    snprintf(dir, sizeof(dir), "/tmp/ordinal-lvmb-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(img, sizeof(img), "%s/pv.img", dir);
    snprintf(conf, sizeof(conf), "%s/lvm.conf", dir);
    fd = open(img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 1LL << 30) < 0)
        return -1;
    close(fd);
    const char *ls[] = {"--show", "-f", img, NULL};
    if (run("losetup", ls, loopdev, sizeof(loopdev)) < 0)
        return 0;
    loopdev[strcspn(loopdev, "\n")] = '\0';
    f = fopen(conf, "we");
    if (!f)
        return -1;
    fprintf(f,
            "global { activation = 0 }\n"
            "devices { filter = [ \"a|^%s$|\", \"r|.*|\" ] use_devicesfile = 0 "
            "obtain_device_list_from_udev = 0 external_device_info_source = \"none\" }\n"
            "backup { backup = 0 archive = 0 }\n",
            loopdev);
    fclose(f);
    setenv("LVM_SYSTEM_DIR", dir, 1);
    snprintf(vgname, sizeof(vgname), "ordu%d", (int)getpid());
    const char *pv[] = {"pvcreate", "-y", loopdev, NULL};
    const char *vg[] = {"vgcreate", "-y", vgname, loopdev, NULL};
    if (run("lvm", pv, NULL, 0) < 0 || run("lvm", vg, NULL, 0) < 0)
        return -1;
    ready = true;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (vgname[0]) {
        const char *vg[] = {"vgremove", "-f", "-y", vgname, NULL};
        const char *pv[] = {"pvremove", "-y", "-ff", loopdev, NULL};
        run("lvm", vg, NULL, 0);
        run("lvm", pv, NULL, 0);
    }
    if (loopdev[0]) {
        const char *d[] = {"-d", loopdev, NULL};
        run("losetup", d, NULL, 0);
    }
    if (dir[0]) {
        const char *rm[] = {"-rf", dir, NULL};
        run("rm", rm, NULL, 0);
    }
    return 0;
}

static int lv_count(void)
{
    char out[8192];
    const char *a[] = {"lvs", "--noheadings", "-o", "lv_name", vgname, NULL};
    int n = 0;

    assert_int_equal(run("lvm", a, out, sizeof(out)), 0);
    for (char *p = out; *p; p++)
        if (*p == '\n')
            n++;
    return n;
}

static int fail_after_lvcreate(const char *point)
{
    return strcmp(point, "after-lvcreate") == 0 ? be_error(-EIO, "injected failure") : 0;
}

static void test_rollback(void **state)
{
    const char *vgs[] = {vgname};
    struct be_create_req req = {.name = "rb",
                                .key = "rb",
                                .required_bytes = 8 << 20,
                                .access = BE_ACCESS_MOUNT,
                                .fs_type = ""};
    struct be_volume v;
    struct backend *b;

    (void)state;
    if (!ready)
        skip();
    b = be_lvm_new(vgs, 1, "n");
    assert_non_null(b);
    assert_int_equal(b->ops->recover(b), 0);

    lvm__fault_hook = fail_after_lvcreate;
    assert_int_equal(b->ops->create(b, &req, &v), -EIO);
    lvm__fault_hook = NULL;
    assert_non_null(strstr(be_last_error(), "removed again"));
    assert_int_equal(lv_count(), 0);

    assert_int_equal(b->ops->create(b, &req, &v), 0);
    assert_int_equal(v.capacity_bytes, 8 << 20);
    assert_int_equal(lv_count(), 1);
    assert_int_equal(b->ops->remove(b, v.id), 0);
    assert_int_equal(lv_count(), 0);

    /* a VG that is not there: recover says so */
    const char *missing[] = {"ordinal-no-such-vg"};
    struct backend *m = be_lvm_new(missing, 1, "n");
    assert_non_null(m);
    assert_int_equal(m->ops->recover(m), -EIO);
    m->ops->free(m);
    b->ops->free(b);
}

static void test_new_validates(void **state)
{
    const char *bad[] = {"-x"};
    const char *many[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    const char *dup[] = {"vg", "vg"};
    struct backend *b;

    (void)state;
    assert_null(be_lvm_new(bad, 1, "n"));
    assert_null(be_lvm_new(many, 9, "n"));
    assert_null(be_lvm_new(NULL, 0, "n"));
    b = be_lvm_new(dup, 2, "n");
    if (b) { /* lvm2 installed */
        assert_int_equal(lvm__of(b)->n_vgs, 1);
        b->ops->free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_new_validates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
