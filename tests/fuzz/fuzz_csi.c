/*
 * Fuzz target: every CSI request from raw bytes, down to the directory backend. The first byte
 * picks the method (csi_methods[], provisioner/csi/csi.c) and whether the controller or the
 * node service answers; the rest is the serialised request, which goes the way server.c's
 * worker takes it: the wire check (pb_check_strings), protobuf-c unpacking, the handler on a
 * detached call (its validation, then the backend), packing of the response.
 *
 * The backend is a directory backend on a root in the current directory (tools/fuzz.sh runs
 * each target in a fresh work directory), wiped and recovered every RESET_EVERY inputs so that
 * the tree stays small. Node RPCs take absolute paths from the request (target and staging
 * paths): to make sure no input can create, remove or mount anything elsewhere, the target
 * first moves into a private mount namespace where every mount is read-only except the work
 * directory (root only; otherwise node RPCs with paths are skipped, said once on stderr), and
 * mount(2) and umount2(2) are replaced at link time (--wrap) by a model that refuses: a bind
 * mount fails with EPERM, an unmount finds nothing mounted (EINVAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "csi.h"
#include "dir.h"
#include "fuzz_common.h"
#include "pbcheck.h"
#include "util.h"

#define RESET_EVERY 2000

int __wrap_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                 const void *data);
int __wrap_umount2(const char *target, int flags);

int __wrap_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                 const void *data)
{
    (void)src;
    (void)dst;
    (void)type;
    (void)flags;
    (void)data;
    errno = EPERM;
    return -1;
}

int __wrap_umount2(const char *target, int flags)
{
    (void)target;
    (void)flags;
    errno = EINVAL;
    return -1;
}

static char root[PATH_MAX];
static bool paths_contained; /* the read-only namespace is in place */
static struct lock_table *locks;
static struct backend *backend;
static struct csi_service svc[2]; /* [CSI_MODE_NODE], [CSI_MODE_CONTROLLER] */
static unsigned long inputs;

/* The mount_setattr(2) interface (Linux 5.12), by number: glibc's wrapper is recent. */
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
struct fuzz_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define FUZZ_MOUNT_ATTR_RDONLY 0x1ULL
#define FUZZ_AT_RECURSIVE 0x8000

/* Every mount read-only in a private namespace, but the work directory (cwd). */
static bool contain(const char *work)
{
    struct fuzz_mount_attr ro = {.attr_set = FUZZ_MOUNT_ATTR_RDONLY};
    struct fuzz_mount_attr rw = {.attr_clr = FUZZ_MOUNT_ATTR_RDONLY};

    if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0)
        return false;
    /* the real mount(2), not the wrapped one: these are the harness's own */
    if (syscall(SYS_mount, "none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        syscall(SYS_mount, work, work, NULL, MS_BIND, NULL) < 0)
        return false;
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", FUZZ_AT_RECURSIVE, &ro, sizeof(ro)) < 0 ||
        syscall(SYS_mount_setattr, AT_FDCWD, work, 0, &rw, sizeof(rw)) < 0)
        return false;
    return true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void backend_open(void)
{
    if (backend) {
        backend->ops->free(backend);
        backend = NULL;
    }
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (mkdir(root, 0700) < 0 && errno != EEXIST) {
        perror(root);
        abort();
    }
    backend = be_dir_new(root, "fuzz-node");
    if (!backend || backend->ops->recover(backend) < 0) {
        fprintf(stderr, "directory backend at %s: %s\n", root, be_last_error());
        abort();
    }
    for (int m = 0; m < 2; m++)
        svc[m].backends[0] = backend;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char work[PATH_MAX];

    (void)argc;
    (void)argv;
    fuzz_quiet();
    if (!getcwd(work, sizeof(work)))
        abort();
    paths_contained = contain(work);
    if (!paths_contained)
        fprintf(stderr, "fuzz_csi: no private read-only mount namespace (needs root): node RPCs "
                        "with paths are skipped\n");
    snprintf(root, sizeof(root), "%s/csi-root", work);
    locks = lock_table_new();
    if (!locks)
        abort();
    for (int m = 0; m < 2; m++) {
        svc[m].driver_name = "ordinal.csi.dev";
        svc[m].version = "fuzz";
        svc[m].node_id = "fuzz-node";
        svc[m].mode = m ? CSI_MODE_CONTROLLER : CSI_MODE_NODE;
        svc[m].max_volumes_per_node = 64;
        svc[m].n_backends = 1;
        svc[m].locks = locks;
    }
    backend_open();
    return 0;
}

/* Node RPCs whose requests carry a path the backend acts on. */
static bool takes_paths(const struct csi_method *m)
{
    return strncmp(m->path, "/csi.v1.Node/Node", 17) == 0 &&
           strcmp(m->path, "/csi.v1.Node/NodeGetCapabilities") != 0 &&
           strcmp(m->path, "/csi.v1.Node/NodeGetInfo") != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct csi_method *m;
    struct csi_service *s;
    ProtobufCMessage *req, *resp = NULL;
    struct csi_call *call;
    char err[512];
    int r;

    if (size < 1)
        return 0;
    m = &csi_methods[(data[0] & 0x7f) % csi_n_methods];
    s = &svc[data[0] >> 7 ? CSI_MODE_NODE : CSI_MODE_CONTROLLER];
    data++;
    size--;
    if (!paths_contained && takes_paths(m))
        return 0;
    if (++inputs % RESET_EVERY == 0)
        backend_open();

    if (pb_check_strings(m->request, data, size, err, sizeof(err)) < 0)
        return 0;
    req = protobuf_c_message_unpack(m->request, NULL, size, data);
    if (!req)
        return 0;
    call = csi_call_new_detached();
    if (!call)
        abort();
    be_error_clear();
    r = m->handler(call, s, req, &resp);
    if (r >= 0 && resp) {
        size_t len = protobuf_c_message_get_packed_size(resp);
        uint8_t *buf = malloc(len ? len : 1);
        ProtobufCMessage *back;

        if (!buf)
            abort();
        if (protobuf_c_message_pack(resp, buf) != len)
            abort();
        /* what a client would read back: the response must itself pass the wire check */
        if (pb_check_strings(resp->descriptor, buf, len, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: the response fails the wire check: %s\n", m->path, err);
            abort();
        }
        back = protobuf_c_message_unpack(resp->descriptor, NULL, len, buf);
        if (!back)
            abort();
        protobuf_c_message_free_unpacked(back, NULL);
        free(buf);
    } else if (r >= 0) {
        fprintf(stderr, "%s: success without a response\n", m->path);
        abort();
    } else if (r < -4095) {
        fprintf(stderr, "%s: %d is no -errno\n", m->path, r);
        abort();
    }
    protobuf_c_message_free_unpacked(req, NULL);
    csi_call_free_detached(call);
    return 0;
}
