/* Unit tests of backends/common/fsutil.c. Runs as root (bind mounts, chown). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fsutil.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct fx {
    char root[64];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/ordinal-fsu-XXXXXX");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int r = fsu_rm_tree(f->root);

    free(f);
    return r;
}

static void pathf(char *buf, const char *root, const char *rel)
{
    snprintf(buf, PATH_MAX, "%s/%s", root, rel);
}

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
}

static void assert_file(const char *path, const char *content)
{
    char *data = NULL;
    size_t len = 0;

    assert_int_equal(fsu_read_file(path, 1 << 20, &data, &len), 0);
    assert_int_equal(len, strlen(content));
    assert_string_equal(data, content);
    free(data);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- sha256 ---- */

static void test_sha256_vectors(void **state)
{
    static const char million_a[] =
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    char hex[65], *big;
    struct fsu_sha256 s;
    uint8_t d[32];

    (void)state;
    fsu_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    fsu_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fsu_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* lengths around the padding boundaries */
    big = malloc(1000000);
    assert_non_null(big);
    memset(big, 'a', 1000000);
    fsu_sha256_hex(big, 55, hex);
    assert_string_equal(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    fsu_sha256_hex(big, 56, hex);
    assert_string_equal(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    fsu_sha256_hex(big, 63, hex);
    assert_string_equal(hex, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
    fsu_sha256_hex(big, 64, hex);
    assert_string_equal(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    fsu_sha256_hex(big, 65, hex);
    assert_string_equal(hex, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0");
    fsu_sha256_hex(big, 1000000, hex);
    assert_string_equal(hex, million_a);

    /* incremental updates of odd sizes give the same digest */
    fsu_sha256_init(&s);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 997 + 1)
        fsu_sha256_update(&s, big + off, off + step > 1000000 ? 1000000 - off : step);
    fsu_sha256_final(&s, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(hex, million_a);
    free(big);
}

static void test_random_hex(void **state)
{
    char a[33], b[33];

    (void)state;
    assert_int_equal(fsu_random_hex(a, 16), 0);
    assert_int_equal(fsu_random_hex(b, 16), 0);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    assert_int_equal(fsu_random_hex(a, 33), -EINVAL);
}

/* ---- write, read, fsync ---- */

static void test_write_atomic(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX], q[PATH_MAX];
    struct stat st;

    pathf(p, f->root, "meta");
    assert_int_equal(fsu_write_atomic(p, "one\n", 4, 0640), 0);
    assert_file(p, "one\n");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(fsu_write_atomic(p, "two", 3, 0600), 0);
    assert_file(p, "two");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_entries(f->root), 1); /* no temporary left */
    assert_int_equal(fsu_write_atomic(p, "", 0, 0600), 0);
    assert_file(p, "");

    pathf(q, f->root, "nodir/meta");
    assert_int_equal(fsu_write_atomic(q, "x", 1, 0600), -ENOENT);
    assert_non_null(strstr(be_last_error(), "nodir"));
    /* onto a directory: rename fails, the temporary is cleaned up */
    pathf(q, f->root, "adir");
    assert_int_equal(mkdir(q, 0700), 0);
    assert_int_equal(fsu_write_atomic(q, "x", 1, 0600), -EISDIR);
    assert_int_equal(count_entries(f->root), 2);
}

static void test_read_file(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX], l[PATH_MAX];
    char *data = NULL;
    size_t len;

    pathf(p, f->root, "f");
    write_file(p, "0123456789");
    assert_int_equal(fsu_read_file(p, 10, &data, &len), 0);
    assert_int_equal(len, 10);
    assert_string_equal(data, "0123456789");
    free(data);
    data = NULL;
    assert_int_equal(fsu_read_file(p, 9, &data, &len), -EFBIG);
    assert_null(data);
    pathf(l, f->root, "l");
    assert_int_equal(symlink(p, l), 0);
    assert_int_equal(fsu_read_file(l, 100, &data, &len), -ELOOP);
    assert_int_equal(fsu_read_file(f->root, 100, &data, &len), -EINVAL);
    pathf(p, f->root, "missing");
    assert_int_equal(fsu_read_file(p, 100, &data, &len), -ENOENT);
    pathf(p, f->root, "fifo"); /* must not hang */
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(fsu_read_file(p, 100, &data, &len), -EINVAL);
    /* a /proc file reports size 0 but has content */
    assert_int_equal(fsu_read_file("/proc/self/mountinfo", 1 << 24, &data, &len), 0);
    assert_true(len > 0);
    free(data);
}

static void test_fsync_dir(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX];

    assert_int_equal(fsu_fsync_dir(f->root), 0);
    pathf(p, f->root, "missing");
    assert_int_equal(fsu_fsync_dir(p), -ENOENT);
    write_file(p, "x");
    assert_int_equal(fsu_fsync_dir(p), -ENOTDIR);
}

/* ---- mkdir ---- */

static void test_mkdir_below(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX], outside[128];
    struct stat st;

    assert_int_equal(fsu_mkdir_below(f->root, "a/b/c", 0750), 0);
    pathf(p, f->root, "a/b/c");
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fsu_mkdir_below(f->root, "a/b/c", 0750), 0);
    assert_int_equal(fsu_mkdir_below(f->root, "a//b/d", 0750), -EINVAL);
    assert_int_equal(fsu_mkdir_below(f->root, "a/../x", 0750), -EINVAL);
    assert_int_equal(fsu_mkdir_below(f->root, "./x", 0750), -EINVAL);
    assert_int_equal(fsu_mkdir_below(f->root, "a/", 0750), -EINVAL);
    assert_int_equal(fsu_mkdir_below(f->root, "", 0750), 0);
    assert_int_equal(fsu_mkdir_below(f->root, "/x", 0750), -EINVAL);
    /* a symlink component is not followed */
    snprintf(outside, sizeof(outside), "%s-out", f->root);
    assert_int_equal(mkdir(outside, 0700), 0);
    pathf(p, f->root, "link");
    assert_int_equal(symlink(outside, p), 0);
    assert_int_equal(fsu_mkdir_below(f->root, "link/x", 0750), -ENOTDIR);
    assert_int_equal(count_entries(outside), 0);
    assert_int_equal(rmdir(outside), 0);
    /* a file component */
    pathf(p, f->root, "file");
    write_file(p, "x");
    assert_int_equal(fsu_mkdir_below(f->root, "file/x", 0750), -ENOTDIR);
    pathf(p, f->root, "missing-root");
    assert_int_equal(fsu_mkdir_below(p, "x", 0750), -ENOENT);
}

/* ---- rm ---- */

static void test_rm_tree(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX], outside[128], victim[PATH_MAX];
    struct stat st;

    snprintf(outside, sizeof(outside), "%s-out", f->root);
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(victim, sizeof(victim), "%s/precious", outside);
    write_file(victim, "keep me");

    assert_int_equal(fsu_mkdir_below(f->root, "t/a/b/c", 0700), 0);
    pathf(p, f->root, "t/a/file");
    write_file(p, "x");
    pathf(p, f->root, "t/a/b/c/file");
    write_file(p, "y");
    pathf(p, f->root, "t/a/b/c/dirlink");
    assert_int_equal(symlink(outside, p), 0);
    pathf(p, f->root, "t/filelink");
    assert_int_equal(symlink(victim, p), 0);
    pathf(p, f->root, "t/a/b/ro");
    assert_int_equal(mkdir(p, 0500), 0);
    pathf(p, f->root, "t");
    assert_int_equal(fsu_rm_tree(p), 0);
    assert_int_equal(lstat(p, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_file(victim, "keep me");
    assert_int_equal(fsu_rm_tree(p), 0); /* missing is fine */

    /* the path itself a symlink to a directory: only the link goes */
    pathf(p, f->root, "l");
    assert_int_equal(symlink(outside, p), 0);
    assert_int_equal(fsu_rm_tree(p), 0);
    assert_int_equal(lstat(p, &st), -1);
    assert_file(victim, "keep me");

    /* a plain file */
    pathf(p, f->root, "plain");
    write_file(p, "x");
    assert_int_equal(fsu_rm_tree(p), 0);
    assert_int_equal(access(p, F_OK), -1);

    assert_int_equal(unlink(victim), 0);
    assert_int_equal(rmdir(outside), 0);
}

static void test_rm_tree_refuses_mounts(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX], outside[128], victim[PATH_MAX], mnt[PATH_MAX];

    snprintf(outside, sizeof(outside), "%s-out", f->root);
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(victim, sizeof(victim), "%s/precious", outside);
    write_file(victim, "keep me");
    /* a bind mount of the same filesystem inside the tree */
    assert_int_equal(fsu_mkdir_below(f->root, "t/a/m", 0700), 0);
    pathf(mnt, f->root, "t/a/m");
    assert_int_equal(mount(outside, mnt, NULL, MS_BIND, NULL), 0);
    pathf(p, f->root, "t");
    assert_int_equal(fsu_rm_tree(p), -EBUSY);
    assert_non_null(strstr(be_last_error(), "mount"));
    assert_file(victim, "keep me");
    /* the path itself a mount point */
    assert_int_equal(fsu_rm_tree(mnt), -EBUSY);
    assert_file(victim, "keep me");
    assert_int_equal(umount2(mnt, 0), 0);
    assert_int_equal(fsu_rm_tree(p), 0);
    assert_file(victim, "keep me");

    /* a tmpfs (another st_dev) */
    assert_int_equal(fsu_mkdir_below(f->root, "u/m", 0700), 0);
    pathf(mnt, f->root, "u/m");
    assert_int_equal(mount("tmpfs", mnt, "tmpfs", 0, "size=1m"), 0);
    pathf(p, f->root, "u/m/inside");
    write_file(p, "z");
    pathf(p, f->root, "u");
    assert_int_equal(fsu_rm_tree(p), -EBUSY);
    pathf(p, f->root, "u/m/inside");
    assert_file(p, "z");
    assert_int_equal(umount2(mnt, 0), 0);
    pathf(p, f->root, "u");
    assert_int_equal(fsu_rm_tree(p), 0);

    assert_int_equal(unlink(victim), 0);
    assert_int_equal(rmdir(outside), 0);
}

/* ---- copy ---- */

static void test_copy_tree(void **state)
{
    struct fx *f = *state;
    char s[PATH_MAX], d[PATH_MAX], p[PATH_MAX], q[PATH_MAX], buf[PATH_MAX];
    struct timespec t[2] = {{.tv_sec = 1000000000, .tv_nsec = 5}, {.tv_sec = 1200000000}};
    struct stat st;
    ssize_t n;

    pathf(s, f->root, "src");
    assert_int_equal(fsu_mkdir_below(f->root, "src/sub/deep", 0700), 0);
    pathf(p, f->root, "src/file");
    write_file(p, "hello world");
    assert_int_equal(chmod(p, 04751), 0);
    assert_int_equal(chown(p, 1234, 5678), 0);
    assert_int_equal(chmod(p, 04751), 0);
    assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
    pathf(p, f->root, "src/sub/deep/big");
    {
        FILE *fp = fopen(p, "w");
        assert_non_null(fp);
        for (int i = 0; i < 100000; i++)
            fprintf(fp, "%d\n", i);
        fclose(fp);
    }
    pathf(p, f->root, "src/sub");
    assert_int_equal(chmod(p, 0710), 0);
    assert_int_equal(chown(p, 42, 43), 0);
    pathf(p, f->root, "src/rel-link");
    assert_int_equal(symlink("sub/deep/big", p), 0);
    pathf(p, f->root, "src/abs-link");
    assert_int_equal(symlink("/etc/passwd", p), 0);
    assert_int_equal(lchown(p, 7, 8), 0);
    pathf(p, f->root, "src/dangling");
    assert_int_equal(symlink("nowhere", p), 0);
    pathf(p, f->root, "src/fifo");
    assert_int_equal(mkfifo(p, 0620), 0);
    assert_int_equal(chmod(p, 0620), 0);
    pathf(p, f->root, "src/sub/deep");
    assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);

    pathf(d, f->root, "dst");
    assert_int_equal(fsu_copy_tree(s, d), 0);

    pathf(p, f->root, "dst/file");
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 04751);
    assert_int_equal(st.st_uid, 1234);
    assert_int_equal(st.st_gid, 5678);
    assert_int_equal(st.st_mtim.tv_sec, 1200000000);
    assert_int_equal(st.st_atim.tv_sec, 1000000000);
    assert_file(p, "hello world");
    pathf(p, f->root, "dst/sub");
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0710);
    assert_int_equal(st.st_uid, 42);
    assert_int_equal(st.st_gid, 43);
    pathf(p, f->root, "dst/sub/deep");
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1200000000); /* set after its children */
    pathf(p, f->root, "src/sub/deep/big");
    pathf(q, f->root, "dst/sub/deep/big");
    {
        char *a, *b;
        size_t la, lb;
        assert_int_equal(fsu_read_file(p, 1 << 22, &a, &la), 0);
        assert_int_equal(fsu_read_file(q, 1 << 22, &b, &lb), 0);
        assert_int_equal(la, lb);
        assert_true(la > 500000);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
    }
    pathf(p, f->root, "dst/rel-link");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    n = readlink(p, buf, sizeof(buf) - 1);
    assert_int_equal(n, strlen("sub/deep/big"));
    buf[n] = '\0';
    assert_string_equal(buf, "sub/deep/big");
    pathf(p, f->root, "dst/abs-link");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(st.st_uid, 7);
    assert_int_equal(st.st_gid, 8);
    pathf(p, f->root, "dst/dangling");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    pathf(p, f->root, "dst/fifo");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0620);

    /* errors */
    assert_int_equal(fsu_copy_tree(s, d), -EEXIST);
    pathf(p, f->root, "src/file");
    pathf(q, f->root, "dst2");
    assert_int_equal(fsu_copy_tree(p, q), -ENOTDIR);
    pathf(p, f->root, "missing");
    assert_int_equal(fsu_copy_tree(p, q), -ENOENT);
    pathf(q, f->root, "nodir/dst");
    assert_int_equal(fsu_copy_tree(s, q), -ENOENT);
}

static void test_copy_tree_refuses(void **state)
{
    struct fx *f = *state;
    char s[PATH_MAX], d[PATH_MAX], p[PATH_MAX];

    /* a device node */
    assert_int_equal(fsu_mkdir_below(f->root, "src", 0700), 0);
    pathf(s, f->root, "src");
    pathf(p, f->root, "src/null");
    if (mknod(p, S_IFCHR | 0600, makedev(1, 3)) == 0) {
        pathf(d, f->root, "dst");
        assert_int_equal(fsu_copy_tree(s, d), -ENOTSUP);
        assert_non_null(strstr(be_last_error(), "device"));
        assert_int_equal(fsu_rm_tree(d), 0);
        assert_int_equal(unlink(p), 0);
    } else {
        print_message("mknod not permitted here, device case skipped\n");
    }
    /* a mount inside the source */
    pathf(p, f->root, "src/m");
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(mount("tmpfs", p, "tmpfs", 0, "size=1m"), 0);
    pathf(d, f->root, "dst");
    assert_int_equal(fsu_copy_tree(s, d), -EBUSY);
    assert_int_equal(umount2(p, 0), 0);
    assert_int_equal(fsu_rm_tree(d), 0);
    assert_int_equal(fsu_copy_tree(s, d), 0);
}

/* ---- usage ---- */

static void test_usage(void **state)
{
    struct fx *f = *state;
    char p[PATH_MAX], big[PATH_MAX];
    int64_t bytes, inodes, b0;
    char *mb = calloc(1, 1 << 20);
    FILE *fp;

    assert_non_null(mb);
    memset(mb, 'x', 1 << 20);
    assert_int_equal(fsu_mkdir_below(f->root, "u/a", 0700), 0);
    pathf(p, f->root, "u");
    assert_int_equal(fsu_usage(p, &b0, &inodes), 0);
    assert_int_equal(inodes, 2);
    pathf(p, f->root, "u/a/mb");
    fp = fopen(p, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(mb, 1, 1 << 20, fp), 1 << 20);
    fclose(fp);
    /* a symlink to a big file outside counts as itself only */
    pathf(big, f->root, "outside-big");
    fp = fopen(big, "w");
    assert_non_null(fp);
    for (int i = 0; i < 4; i++)
        fwrite(mb, 1, 1 << 20, fp);
    fclose(fp);
    pathf(p, f->root, "u/link");
    assert_int_equal(symlink(big, p), 0);
    pathf(p, f->root, "u");
    assert_int_equal(fsu_usage(p, &bytes, &inodes), 0);
    assert_int_equal(inodes, 4);
    assert_true(bytes >= b0 + (1 << 20));
    assert_true(bytes < b0 + 2 * (1 << 20));
    pathf(p, f->root, "u/a/mb");
    assert_int_equal(fsu_usage(p, &bytes, &inodes), 0);
    assert_int_equal(inodes, 1);
    assert_true(bytes >= (1 << 20));
    pathf(p, f->root, "missing");
    assert_int_equal(fsu_usage(p, &bytes, &inodes), -ENOENT);
    free(mb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_random_hex),
        cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_below, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_tree_refuses_mounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_tree_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
