/* Unit tests of backends/common/blockfs.c on loop devices standing in for LVs. Needs root and
 * losetup; skipped otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "blockfs.h"
#include "exec.h"
#include "mount.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1LL << 20)

struct loopdev {
    char dir[64];
    char file[128];
    char dev[64];
};

static char loops[8][64]; /* attached by the tests, detached by teardown if a test failed */

static int tool(const char *name, const char *a1, const char *a2, const char *a3, char *out,
                size_t cap)
{
    char path[256];
    const char *argv[] = {path, a1, a2, a3, NULL};
    struct exec_result r;
    int rc;

    if (exec_find(name, path, sizeof(path)) < 0)
        return -ENOENT;
    rc = exec_run(argv, NULL, &r);
    if (rc < 0)
        return rc;
    if (out)
        snprintf(out, cap, "%s", r.out);
    rc = r.exit_code == 0 ? 0 : -EIO;
    exec_result_release(&r);
    return rc;
}

/* A sparse file of size bytes attached to a free loop device. */
static int loop_new(struct loopdev *l, int64_t size)
{
    int fd;

    snprintf(l->dir, sizeof(l->dir), "/tmp/ordinal-bfs-XXXXXX");
    if (!mkdtemp(l->dir))
        return -errno;
    snprintf(l->file, sizeof(l->file), "%s/disk.img", l->dir);
    fd = open(l->file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, size) < 0)
        return -errno;
    close(fd);
    if (tool("losetup", "--show", "-f", l->file, l->dev, sizeof(l->dev)) < 0)
        return -ENODEV;
    l->dev[strcspn(l->dev, "\n")] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(loops); i++)
        if (!loops[i][0]) {
            snprintf(loops[i], sizeof(loops[i]), "%s", l->dev);
            break;
        }
    return 0;
}

static void loop_grow(struct loopdev *l, int64_t size)
{
    assert_int_equal(truncate(l->file, size), 0);
    assert_int_equal(tool("losetup", "-c", l->dev, NULL, NULL, 0), 0);
}

static void loop_free(struct loopdev *l)
{
    if (l->dev[0])
        tool("losetup", "-d", l->dev, NULL, NULL, 0);
    for (size_t i = 0; i < ARRAY_SIZE(loops); i++)
        if (l->dev[0] && strcmp(loops[i], l->dev) == 0)
            loops[i][0] = '\0';
    unlink(l->file);
    l->dev[0] = '\0';
}

static char workdir[64];

static void path_in(char *ret, size_t cap, const char *name)
{
    snprintf(ret, cap, "%s/%s", workdir, name);
}

static int setup(void **state)
{
    struct loopdev probe;

    (void)state;
    if (geteuid() != 0)
        return 0;
    if (loop_new(&probe, MiB) < 0) {
        rmdir(probe.dir);
        return 0;
    }
    loop_free(&probe);
    rmdir(probe.dir);
    snprintf(workdir, sizeof(workdir), "/tmp/ordinal-bfs-work-XXXXXX");
    if (!mkdtemp(workdir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    struct mnt_table t;

    (void)state;
    /* what a failed test left behind: mounts under workdir (deepest first), loop devices */
    if (workdir[0] && mnt_table_load(NULL, &t) == 0) {
        size_t wl = strlen(workdir);
        for (size_t i = t.n; i > 0; i--)
            if (strncmp(t.entries[i - 1].mount_point, workdir, wl) == 0)
                umount2(t.entries[i - 1].mount_point, MNT_DETACH);
        mnt_table_release(&t);
    }
    for (size_t i = 0; i < ARRAY_SIZE(loops); i++)
        if (loops[i][0])
            tool("losetup", "-d", loops[i], NULL, NULL, 0);
    if (workdir[0])
        tool("rm", "-rf", workdir, NULL, NULL, 0);
    return 0;
}

/* Whether this process may resize ext4 online (EXT4_IOC_RESIZE_FS needs CAP_SYS_RESOURCE,
 * which some containers drop). */
static bool have_cap_sys_resource(void)
{
    char line[256];
    unsigned long long caps = 0;
    FILE *f = fopen("/proc/self/status", "re");

    if (!f)
        return false;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &caps) == 1)
            break;
    fclose(f);
    return (caps >> 24) & 1;
}

#define NEED_LOOP()                                                                                \
    do {                                                                                           \
        if (!workdir[0])                                                                           \
            skip();                                                                                \
    } while (0)

static void write_at(const char *dev, off_t off, const char *data)
{
    int fd = open(dev, O_WRONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, strlen(data), off), (ssize_t)strlen(data));
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

static void test_probe_and_format(void **state)
{
    struct loopdev l = {0};
    char type[BFS_TYPE_MAX], mnt[128], marker[160];
    int fd;

    (void)state;
    NEED_LOOP();
    assert_int_equal(loop_new(&l, 64 * MiB), 0);
    assert_int_equal(bfs_probe(l.dev, type, sizeof(type)), 0);

    /* any byte in the first 4 KiB is data: never formatted */
    write_at(l.dev, 100, "x");
    assert_int_equal(bfs_probe(l.dev, type, sizeof(type)), 1);
    assert_string_equal(type, "data");
    assert_int_equal(bfs_format_if_blank(l.dev, "ext4", ""), -EMEDIUMTYPE);
    {
        int z = open(l.dev, O_WRONLY | O_CLOEXEC);
        char zero = 0;
        assert_int_equal(pwrite(z, &zero, 1, 100), 1);
        close(z);
    }
    assert_int_equal(bfs_probe(l.dev, type, sizeof(type)), 0);

    /* forcing options are refused, odd characters too */
    assert_int_equal(bfs_mkfs(l.dev, "ext4", "-F"), -EINVAL);
    assert_int_equal(bfs_mkfs(l.dev, "xfs", "-f"), -EINVAL);
    assert_int_equal(bfs_mkfs(l.dev, "ext4", "-L a;b"), -EINVAL);
    assert_int_equal(bfs_mkfs(l.dev, "btrfs", ""), -EINVAL);
    assert_int_equal(bfs_probe(l.dev, type, sizeof(type)), 0);

    /* blank: formatted with the options */
    assert_int_equal(bfs_format_if_blank(l.dev, "ext4", "-L ordlabel -m 0"), 0);
    assert_int_equal(bfs_probe(l.dev, type, sizeof(type)), 1);
    assert_string_equal(type, "ext4");
    {
        char bl[256];
        assert_int_equal(exec_find("blkid", bl, sizeof(bl)), 0);
        const char *argv[] = {bl, "-p", "-s", "LABEL", "-o", "value", l.dev, NULL};
        struct exec_result r;
        assert_int_equal(exec_run(argv, NULL, &r), 0);
        assert_string_equal(r.out, "ordlabel\n");
        exec_result_release(&r);
    }

    /* put data on it, then ask again: no reformat, the data stays */
    path_in(mnt, sizeof(mnt), "m1");
    assert_int_equal(mkdir(mnt, 0755), 0);
    assert_int_equal(bfs_mount(l.dev, mnt, "ext4", NULL, 0, false), 0);
    snprintf(marker, sizeof(marker), "%s/marker", mnt);
    fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(bfs_unmount(mnt, false), 0);
    assert_int_equal(bfs_format_if_blank(l.dev, "ext4", ""), 0);
    assert_int_equal(bfs_format_if_blank(l.dev, "xfs", ""), -EMEDIUMTYPE);
    assert_int_equal(bfs_mount(l.dev, mnt, "ext4", NULL, 0, false), 0);
    assert_int_equal(access(marker, F_OK), 0);
    assert_int_equal(bfs_unmount(mnt, true), 0);
    assert_int_equal(access(mnt, F_OK), -1);

    /* not a block device */
    assert_int_equal(bfs_probe(l.file, type, sizeof(type)), -ENOTBLK);
    assert_int_equal(bfs_probe("/nonexistent", type, sizeof(type)), -ENOENT);
    loop_free(&l);
    rmdir(l.dir);
}

static void test_mount_publish_grow_ext4(void **state)
{
    struct loopdev l = {0};
    char stage[128], target[128], other[128];
    const char *flags[] = {"noatime", "nodev,discard"};
    const char *bad[] = {"no-such-option"};
    const char *evil[] = {"x;y"};
    struct bfs_usage u, u2;
    int64_t size;
    struct stat st;

    (void)state;
    NEED_LOOP();
    assert_int_equal(loop_new(&l, 64 * MiB), 0);
    assert_int_equal(bfs_format_if_blank(l.dev, "ext4", NULL), 0);
    path_in(stage, sizeof(stage), "stage");
    path_in(target, sizeof(target), "target");
    path_in(other, sizeof(other), "other");
    assert_int_equal(mkdir(stage, 0755), 0);

    assert_int_equal(bfs_mount(l.dev, stage, "ext4", evil, 1, false), -EINVAL);
    assert_int_equal(bfs_mount(l.dev, stage, "ext4", bad, 1, false), -EINVAL);
    assert_int_equal(mnt_is_mountpoint(stage), 0);
    assert_int_equal(bfs_mount(l.dev, stage, "ext4", flags, 2, false), 0);
    assert_int_equal(bfs_is_mount_of(stage, l.dev), 1);
    /* idempotent; another read-only state is a conflict */
    assert_int_equal(bfs_mount(l.dev, stage, "ext4", flags, 2, false), 0);
    assert_int_equal(bfs_mount(l.dev, stage, "ext4", NULL, 0, true), -EEXIST);

    assert_int_equal(bfs_publish_fs(stage, target, NULL, 0, true), 0);
    assert_int_equal(bfs_is_mount_of(target, l.dev), 1);
    assert_int_equal(bfs_publish_fs(stage, target, NULL, 0, true), 0);
    assert_int_equal(bfs_publish_fs(stage, target, NULL, 0, false), -EEXIST);
    assert_int_equal(bfs_fs_usage(target, &u), 0);
    assert_true(u.readonly);

    /* stats */
    assert_int_equal(bfs_fs_usage(stage, &u), 0);
    assert_false(u.readonly);
    assert_true(u.bytes_total > 50 * MiB && u.bytes_total <= 64 * MiB);
    assert_true(u.bytes_used > 0 && u.bytes_available > 0);
    assert_true(u.inodes_total > 0 && u.inodes_used > 0 && u.inodes_available > 0);

    /* grow online, through the published path too */
    loop_grow(&l, 128 * MiB);
    assert_int_equal(bfs_device_size(l.dev, &size), 0);
    assert_int_equal(size, 128 * MiB);
    if (have_cap_sys_resource()) {
        assert_int_equal(bfs_grow(l.dev, target, "ext4"), 0);
        assert_int_equal(bfs_fs_usage(stage, &u2), 0);
        assert_true(u2.bytes_total > 110 * MiB);
        assert_int_equal(bfs_grow(l.dev, stage, "ext4"), 0); /* already full size */
    } else {
        /* this container lacks CAP_SYS_RESOURCE: resize2fs must fail cleanly and say why */
        assert_int_equal(bfs_grow(l.dev, target, "ext4"), -EIO);
        assert_non_null(strstr(be_last_error(), "Permission denied"));
        print_message("ext4 online grow not testable here: no CAP_SYS_RESOURCE\n");
    }
    assert_int_equal(bfs_grow(l.dev, other, "ext4"), -ENOENT);

    assert_int_equal(bfs_unmount(target, true), 0);
    assert_int_equal(lstat(target, &st), -1);
    assert_int_equal(bfs_unmount(target, true), 0);
    assert_int_equal(bfs_unmount(stage, false), 0);
    assert_int_equal(bfs_is_mount_of(stage, l.dev), 0);
    assert_int_equal(rmdir(stage), 0);
    loop_free(&l);
    rmdir(l.dir);
}

static void test_xfs(void **state)
{
    struct loopdev l = {0};
    char stage[128];
    struct bfs_usage u, u2;
    char type[BFS_TYPE_MAX];

    (void)state;
    NEED_LOOP();
    assert_int_equal(loop_new(&l, 320 * MiB), 0); /* mkfs.xfs wants 300 MiB at least */
    assert_int_equal(bfs_format_if_blank(l.dev, "xfs", "-L ordxfs"), 0);
    assert_int_equal(bfs_probe(l.dev, type, sizeof(type)), 1);
    assert_string_equal(type, "xfs");
    assert_int_equal(bfs_format_if_blank(l.dev, "ext4", NULL), -EMEDIUMTYPE);
    path_in(stage, sizeof(stage), "xstage");
    assert_int_equal(mkdir(stage, 0755), 0);
    assert_int_equal(bfs_mount(l.dev, stage, "xfs", NULL, 0, false), 0);
    assert_int_equal(bfs_fs_usage(stage, &u), 0);
    loop_grow(&l, 480 * MiB);
    assert_int_equal(bfs_grow(l.dev, stage, "xfs"), 0);
    assert_int_equal(bfs_fs_usage(stage, &u2), 0);
    assert_true(u2.bytes_total > u.bytes_total + 100 * MiB);
    assert_int_equal(bfs_unmount(stage, true), 0);
    loop_free(&l);
    rmdir(l.dir);
}

static void test_block_publish(void **state)
{
    struct loopdev l = {0}, l2 = {0};
    char target[128], dirt[128];
    int64_t size;
    struct stat st;

    (void)state;
    NEED_LOOP();
    assert_int_equal(loop_new(&l, 16 * MiB), 0);
    assert_int_equal(loop_new(&l2, 8 * MiB), 0);
    path_in(target, sizeof(target), "blk");
    assert_int_equal(bfs_publish_block(l.dev, target, false), 0);
    assert_int_equal(lstat(target, &st), 0);
    assert_true(S_ISBLK(st.st_mode));
    assert_int_equal(bfs_is_block_of(target, l.dev), 1);
    assert_int_equal(bfs_is_block_of(target, l2.dev), 0);
    assert_int_equal(bfs_device_size(target, &size), 0);
    assert_int_equal(size, 16 * MiB);
    /* idempotent; another device or read-only state is a conflict */
    assert_int_equal(bfs_publish_block(l.dev, target, false), 0);
    assert_int_equal(bfs_publish_block(l.dev, target, true), -EEXIST);
    assert_int_equal(bfs_publish_block(l2.dev, target, false), -EEXIST);
    /* data written through the published node reaches the device */
    write_at(target, 0, "hello");
    {
        char buf[6] = {0};
        int fd = open(l.dev, O_RDONLY | O_CLOEXEC);
        assert_int_equal(pread(fd, buf, 5, 0), 5);
        close(fd);
        assert_string_equal(buf, "hello");
    }
    assert_int_equal(bfs_unmount(target, true), 0);
    assert_int_equal(lstat(target, &st), -1);
    /* a directory in the way */
    path_in(dirt, sizeof(dirt), "blkdir");
    assert_int_equal(mkdir(dirt, 0755), 0);
    assert_int_equal(bfs_publish_block(l.dev, dirt, false), -EEXIST);
    assert_int_equal(rmdir(dirt), 0);
    /* the parent must exist */
    path_in(dirt, sizeof(dirt), "missing/blk");
    assert_int_equal(bfs_publish_block(l.dev, dirt, false), -ENOENT);
    loop_free(&l);
    loop_free(&l2);
    rmdir(l.dir);
    rmdir(l2.dir);
}

/* Unstage and unpublish take down only the volume's own mounts (bfs_unmount_of). */
static void test_unmount_only_the_volumes_mounts(void **state)
{
    struct loopdev l = {0}, l2 = {0};
    char stage[128], stage2[128], target[128], blk[128], file[160];
    struct stat st;
    int fd;

    (void)state;
    NEED_LOOP();
    assert_int_equal(loop_new(&l, 32 * MiB), 0);
    assert_int_equal(loop_new(&l2, 32 * MiB), 0);
    assert_int_equal(bfs_format_if_blank(l.dev, "ext4", NULL), 0);
    assert_int_equal(bfs_format_if_blank(l2.dev, "ext4", NULL), 0);
    path_in(stage, sizeof(stage), "stage");
    path_in(stage2, sizeof(stage2), "stage2");
    path_in(target, sizeof(target), "target");
    path_in(blk, sizeof(blk), "blk");
    assert_int_equal(mkdir(stage, 0755), 0);
    assert_int_equal(mkdir(stage2, 0755), 0);
    assert_int_equal(bfs_mount(l.dev, stage, "ext4", NULL, 0, false), 0);
    assert_int_equal(bfs_mount(l2.dev, stage2, "ext4", NULL, 0, false), 0);

    /* another volume's staging and publish paths: refused, untouched */
    assert_int_equal(bfs_publish_fs(stage2, target, NULL, 0, false), 0);
    assert_int_equal(bfs_unmount_of(stage2, l.dev, false), -EBUSY);
    assert_int_equal(bfs_unmount_of(target, l.dev, true), -EBUSY);
    assert_int_equal(bfs_is_mount_of(stage2, l2.dev), 1);
    assert_int_equal(bfs_is_mount_of(target, l2.dev), 1);
    assert_int_equal(bfs_unmount_of(target, l2.dev, true), 0);
    assert_int_equal(lstat(target, &st), -1);

    /* a foreign mount under this volume's publish: ours comes off, theirs and the path stay */
    assert_int_equal(mkdir(target, 0755), 0);
    assert_int_equal(mount("tmpfs", target, "tmpfs", 0, NULL), 0);
    assert_int_equal(bfs_unmount_of(target, l.dev, true), -EBUSY);
    assert_int_equal(mnt_bind(stage, target, 0, false), 0);
    assert_int_equal(mnt_bind(stage, target, 0, false), 0);
    assert_int_equal(bfs_unmount_of(target, l.dev, true), 0);
    assert_int_equal(mnt_is_mountpoint(target), 1);
    assert_int_equal(bfs_is_mount_of(target, l.dev), 0);
    /* the device node missing on this node: a mount at the path cannot be the volume's */
    assert_int_equal(bfs_unmount_of(target, NULL, true), -EBUSY);
    assert_int_equal(umount2(target, 0), 0);

    /* not mounted: an empty directory is removed, a non-empty one is not ours */
    snprintf(file, sizeof(file), "%s/left", target);
    fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(bfs_unmount_of(target, l.dev, true), -EBUSY);
    assert_int_equal(access(file, F_OK), 0);
    assert_int_equal(unlink(file), 0);
    assert_int_equal(bfs_unmount_of(target, NULL, true), 0);
    assert_int_equal(lstat(target, &st), -1);
    assert_int_equal(bfs_unmount_of(target, l.dev, true), 0); /* missing: OK */

    /* block publish: only this device's node is taken down */
    assert_int_equal(bfs_publish_block(l2.dev, blk, false), 0);
    assert_int_equal(bfs_unmount_of(blk, l.dev, true), -EBUSY);
    assert_int_equal(bfs_is_block_of(blk, l2.dev), 1);
    assert_int_equal(bfs_unmount_of(blk, l2.dev, true), 0);
    assert_int_equal(lstat(blk, &st), -1);

    assert_int_equal(bfs_unmount_of(stage, l.dev, false), 0);
    assert_int_equal(bfs_unmount_of(stage2, l2.dev, false), 0);
    assert_int_equal(mnt_is_mountpoint(stage), 0);
    assert_int_equal(mnt_is_mountpoint(stage2), 0);
    rmdir(stage);
    rmdir(stage2);
    loop_free(&l);
    loop_free(&l2);
    rmdir(l.dir);
    rmdir(l2.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_and_format),
        cmocka_unit_test(test_mount_publish_grow_ext4),
        cmocka_unit_test(test_xfs),
        cmocka_unit_test(test_block_publish),
        cmocka_unit_test(test_unmount_only_the_volumes_mounts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
