/* Unit tests of backends/common/mount.c. Runs as root (real bind mounts). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fsutil.h"
#include "mount.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char sample[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "36 22 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root "
    "rw,errors=continue\n"
    "37 22 0:33 /data/ns/claim/data /var/lib/kubelet/pods/x/volumes/tab\\011nl\\012bs\\134 "
    "ro,nosuid - ext4 /dev/vda rw\n"
    "\n"
    "garbage line without structure\n"
    "38 22 8:1 / /missing-separator rw ext4 /dev/sda1 rw\n"
    "39 22 8:x / /bad-devno rw - ext4 /dev/sda1 rw\n"
    "4o 22 8:1 / /bad-id rw - ext4 /dev/sda1 rw\n"
    "40 22 8:1 relative /rel rw - ext4 /dev/sda1 rw\n"
    "41 22 8:1 / /bad\\09escape rw - ext4 /dev/sda1 rw\n"
    "42 22 8:1 / /truncated rw - ext4\n"
    "43 22 8:1 / /extra rw - ext4 /dev/sda1 rw surplus\n"
    "44 22 8:1 / /nul\\000 rw - ext4 /dev/sda1 rw\n"
    "45 22 8:1 / /short\\04 rw - ext4 /dev/sda1 rw\n"
    "46 22 8:1 /  /double-space rw - ext4 /dev/sda1 rw\n"
    "50 22 0:40 / /mnt\\040with\\040space rw - tmpfs tmpfs rw,size=1024k\n"
    "51 22 0:41 / /last rw - tmpfs none rw"; /* no final newline */

static void test_parse(void **state)
{
    struct mnt_table t;
    const struct mnt_entry *e;

    (void)state;
    assert_int_equal(mnt_table_parse(sample, strlen(sample), &t), 0);
    assert_int_equal(t.n, 5);
    assert_int_equal(t.skipped, 11);

    e = &t.entries[0];
    assert_int_equal(e->mount_id, 22);
    assert_int_equal(e->parent_id, 1);
    assert_int_equal(e->major, 8);
    assert_int_equal(e->minor, 1);
    assert_string_equal(e->root, "/");
    assert_string_equal(e->mount_point, "/");
    assert_string_equal(e->options, "rw,relatime");
    assert_string_equal(e->fstype, "ext4");
    assert_string_equal(e->source, "/dev/sda1");
    assert_string_equal(e->super_options, "rw,errors=remount-ro");

    e = &t.entries[1];
    assert_int_equal(e->mount_id, 36);
    assert_int_equal(e->major, 98);
    assert_int_equal(e->minor, 0);
    assert_string_equal(e->root, "/mnt1");
    assert_string_equal(e->mount_point, "/mnt with space");
    assert_string_equal(e->options, "rw,noatime");
    assert_string_equal(e->fstype, "ext3");
    assert_string_equal(e->source, "/dev/root");

    e = &t.entries[2];
    assert_int_equal(e->major, 0);
    assert_int_equal(e->minor, 33);
    assert_string_equal(e->root, "/data/ns/claim/data");
    assert_string_equal(e->mount_point, "/var/lib/kubelet/pods/x/volumes/tab\tnl\nbs\\");
    assert_string_equal(e->options, "ro,nosuid");

    e = &t.entries[4];
    assert_int_equal(e->mount_id, 51);
    assert_string_equal(e->mount_point, "/last");
    assert_string_equal(e->source, "none");
    assert_string_equal(e->super_options, "rw");

    /* find: exact match, the topmost (last) of stacked mounts */
    e = mnt_table_find(&t, "/mnt with space");
    assert_non_null(e);
    assert_int_equal(e->mount_id, 50);
    assert_string_equal(e->fstype, "tmpfs");
    assert_null(mnt_table_find(&t, "/mnt"));
    assert_null(mnt_table_find(&t, "/missing-separator"));
    assert_non_null(mnt_table_find(&t, "/"));
    mnt_table_release(&t);
    assert_int_equal(t.n, 0);
    assert_null(t.entries);

    /* empty input, and only garbage */
    assert_int_equal(mnt_table_parse("", 0, &t), 0);
    assert_int_equal(t.n, 0);
    mnt_table_release(&t);
    assert_int_equal(mnt_table_parse("x\ny\n", 4, &t), 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(t.skipped, 2);
    mnt_table_release(&t);
    /* an embedded NUL makes its line malformed */
    assert_int_equal(mnt_table_parse("1 0 8:1 / /a\0 rw - e s o\n", 25, &t), 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(t.skipped, 1);
    mnt_table_release(&t);
    mnt_table_release(NULL);
}

static void test_load(void **state)
{
    char path[] = "/tmp/ordinal-mountinfo-XXXXXX";
    struct mnt_table t;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, sample, strlen(sample)), (ssize_t)strlen(sample));
    close(fd);
    assert_int_equal(mnt_table_load(path, &t), 0);
    assert_int_equal(t.n, 5);
    mnt_table_release(&t);
    unlink(path);
    assert_int_equal(mnt_table_load(path, &t), -ENOENT);
    assert_non_null(strstr(be_last_error(), path));

    assert_int_equal(mnt_table_load(NULL, &t), 0);
    assert_true(t.n > 0);
    assert_int_equal(t.skipped, 0);
    assert_non_null(mnt_table_find(&t, "/"));
    mnt_table_release(&t);
}

static void test_flags(void **state)
{
    static const struct {
        const char *flag;
        unsigned long bits;
    } one[] = {
        {"ro", MS_RDONLY},
        {"rw", 0},
        {"bind", 0},
        {"defaults", 0},
        {"noexec", MS_NOEXEC},
        {"nosuid", MS_NOSUID},
        {"nodev", MS_NODEV},
        {"noatime", MS_NOATIME},
        {"nodiratime", MS_NODIRATIME},
        {"relatime", MS_RELATIME},
        {"strictatime", MS_STRICTATIME},
        {"sync", MS_SYNCHRONOUS},
        {"dirsync", MS_DIRSYNC},
        {"exec", 0},
    };
    unsigned long f = 12345;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(one); i++) {
        const char *v[] = {one[i].flag};
        assert_int_equal(mnt_flags_parse(v, 1, &f), 0);
        assert_int_equal(f, one[i].bits);
    }
    {
        const char *v[] = {"ro", "nosuid", "nodev", "noexec", "noatime"};
        assert_int_equal(mnt_flags_parse(v, 5, &f), 0);
        assert_int_equal(f, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME);
    }
    {
        const char *v[] = {"ro", "noexec", "rw", "exec", "noatime", "relatime"};
        assert_int_equal(mnt_flags_parse(v, 6, &f), 0);
        assert_int_equal(f, MS_RELATIME);
    }
    assert_int_equal(mnt_flags_parse(NULL, 0, &f), 0);
    assert_int_equal(f, 0);

    f = 777;
    {
        const char *v[] = {"ro", "frobnicate"};
        assert_int_equal(mnt_flags_parse(v, 2, &f), -EINVAL);
        assert_non_null(strstr(be_last_error(), "frobnicate"));
        assert_int_equal(f, 777); /* untouched on failure */
    }
    {
        const char *v[] = {"size=10m"};
        assert_int_equal(mnt_flags_parse(v, 1, &f), -EINVAL);
        assert_non_null(strstr(be_last_error(), "\"size\""));
        assert_null(strstr(be_last_error(), "10m"));
    }
    {
        /* A flag's value may be a secret: the message names the option at most. */
        const char *v[] = {"ro", "password=hunter2"};
        assert_int_equal(mnt_flags_parse(v, 2, &f), -EINVAL);
        assert_non_null(strstr(be_last_error(), "mount flag 1 (\"password\")"));
        assert_null(strstr(be_last_error(), "hunter2"));
    }
    {
        /* A name that is not option-like is not shown either. */
        const char *v[] = {"x\n\x1b[31mfake=1"};
        assert_int_equal(mnt_flags_parse(v, 1, &f), -EINVAL);
        assert_null(strchr(be_last_error(), '\n'));
        assert_null(strchr(be_last_error(), '\x1b'));
        assert_non_null(strstr(be_last_error(), "mount flag 0:"));
    }
    {
        const char *v[] = {"ro,noexec"};
        assert_int_equal(mnt_flags_parse(v, 1, &f), -EINVAL);
    }
    {
        const char *v[] = {""};
        assert_int_equal(mnt_flags_parse(v, 1, &f), -EINVAL);
    }
    {
        const char *v[] = {"RO"};
        assert_int_equal(mnt_flags_parse(v, 1, &f), -EINVAL);
    }
    {
        const char *v[] = {NULL};
        assert_int_equal(mnt_flags_parse(v, 1, &f), -EINVAL);
    }
}

struct fx {
    char root[64], src[128], dst[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/ordinal-mnt-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->src, sizeof(f->src), "%s/src", f->root);
    snprintf(f->dst, sizeof(f->dst), "%s/dst", f->root);
    if (mkdir(f->src, 0755) < 0 || mkdir(f->dst, 0755) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int r;

    while (umount2(f->dst, UMOUNT_NOFOLLOW) == 0)
        ;
    r = fsu_rm_tree(f->root);
    free(f);
    return r;
}

static void test_mountpoint(void **state)
{
    struct fx *f = *state;
    char link[PATH_MAX];

    assert_int_equal(mnt_is_mountpoint("/"), 1);
    assert_int_equal(mnt_is_mountpoint("/proc"), 1);
    assert_int_equal(mnt_is_mountpoint(f->dst), 0);
    assert_int_equal(mnt_is_mountpoint(f->root), 0);
    snprintf(link, sizeof(link), "%s/missing", f->root);
    assert_int_equal(mnt_is_mountpoint(link), -ENOENT);
    assert_int_equal(mount(f->src, f->dst, NULL, MS_BIND, NULL), 0);
    assert_int_equal(mnt_is_mountpoint(f->dst), 1);
    assert_int_equal(mnt_is_mountpoint(f->src), 0);
    snprintf(link, sizeof(link), "%s/link", f->root);
    assert_int_equal(symlink(f->dst, link), 0);
    assert_int_equal(mnt_is_mountpoint(link), 0); /* the link itself is no mount */
    assert_int_equal(umount2(f->dst, 0), 0);
    assert_int_equal(mnt_is_mountpoint(f->dst), 0);
}

static void test_bind_unmount(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX];
    struct statvfs sv;
    struct mnt_table t;
    const struct mnt_entry *e;
    int fd;

    snprintf(p, sizeof(p), "%s/file", f->src);
    fd = open(p, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);

    /* plain rw bind */
    assert_int_equal(mnt_bind(f->src, f->dst, 0, false), 0);
    assert_int_equal(mnt_is_mountpoint(f->dst), 1);
    snprintf(p, sizeof(p), "%s/written", f->dst);
    fd = open(p, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mnt_unmount(f->dst), 1);
    assert_int_equal(mnt_unmount(f->dst), 0);
    assert_int_equal(mnt_is_mountpoint(f->dst), 0);

    /* read-only with flags */
    assert_int_equal(mnt_bind(f->src, f->dst, MS_NOEXEC | MS_NOSUID, true), 0);
    assert_int_equal(statvfs(f->dst, &sv), 0);
    assert_true(sv.f_flag & ST_RDONLY);
    assert_true(sv.f_flag & ST_NOEXEC);
    assert_true(sv.f_flag & ST_NOSUID);
    snprintf(p, sizeof(p), "%s/denied", f->dst);
    assert_int_equal(open(p, O_CREAT | O_WRONLY, 0644), -1);
    assert_int_equal(errno, EROFS);
    snprintf(p, sizeof(p), "%s/file", f->dst);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(mnt_table_load(NULL, &t), 0);
    e = mnt_table_find(&t, f->dst);
    assert_non_null(e);
    assert_non_null(strstr(e->options, "ro"));
    assert_non_null(strstr(e->root, "/src"));
    mnt_table_release(&t);
    /* the source stays writable */
    assert_int_equal(statvfs(f->src, &sv), 0);
    assert_false(sv.f_flag & ST_RDONLY);
    assert_int_equal(mnt_unmount(f->dst), 1);

    /* errors */
    snprintf(p, sizeof(p), "%s/missing", f->root);
    assert_int_equal(mnt_bind(p, f->dst, 0, false), -ENOENT);
    assert_non_null(strstr(be_last_error(), "missing"));
    assert_int_equal(mnt_bind(f->src, p, 0, true), -ENOENT);
    assert_int_equal(mnt_is_mountpoint(f->dst), 0);
    assert_int_equal(mnt_unmount(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_flags),
        cmocka_unit_test_setup_teardown(test_mountpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_unmount, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
