/*
 * fsync-ceiling: the most create-delete cycles per second the disk allows for a directory-backed
 * CSI driver that makes every success durable, measured with no gRPC, no protobuf and no driver.
 *
 * Each cycle does the file-system work of one durable CreateVolume + DeleteVolume of a
 * directory volume (the work Ordinal's directory backend documents in its README: build in a
 * temporary directory, fsync, rename into place, fsync the parent; rename into a trash
 * directory, fsync both parents, remove):
 *   create: mkdtemp .tmp/v-XXXXXX; mkdir data (chmod 0777); write a ~200-byte metadata file
 *           to a temporary name, fsync it, rename it, fsync the volume directory; mkdir the
 *           namespace directory when missing (fsync the root); rename the volume directory to
 *           its final name (RENAME_NOREPLACE); fsync the namespace directory.
 *   delete: rename the volume into .trash/, fsync the namespace directory and .trash; unlink
 *           the metadata, rmdir data and the volume; rmdir the namespace when empty (fsync
 *           the root).
 * That is five fsyncs per cycle, plus two when the namespace directory comes and goes.
 * Renames into and out of the namespace directory take one mutex, as a driver's index would.
 *
 * --mountinfo also reads and scans /proc/self/mountinfo on each delete (a driver checking that
 * the volume is not mounted); --no-fsync drops every fsync, to show what they cost.
 *
 * Threading: --concurrency threads, each looping on its own names; counters are atomics, the
 * samples are per thread and merged after join.
 */
#include "bench_proc.h"
#include "bench_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct ceiling {
    char root[256]; /* realpath of --dir; paths below it fit PATH_MAX */
    unsigned concurrency;
    uint64_t ops, duration_ms;
    bool fsync_on, mountinfo, json;
    atomic_uint_fast64_t claimed;
    atomic_uint_fast64_t errors;
    uint64_t deadline_ns;
    pthread_mutex_t lock; /* renames into/out of the namespace directory */
};

struct thread {
    struct ceiling *c; /* borrowed */
    unsigned idx;
    pthread_t th;
    struct lat_samples lat;
    uint64_t seq;
    char first_error[256];
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fsync_path(const struct ceiling *c, const char *path)
{
    int fd, r = 0;

    if (!c->fsync_on)
        return 0;
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}

static int write_meta(const struct ceiling *c, const char *dir, const char *name)
{
    char tmp[PATH_MAX], final[PATH_MAX], buf[256];
    int fd, n, r = 0;

    snprintf(tmp, sizeof(tmp), "%s/volume.meta.XXXXXX", dir);
    snprintf(final, sizeof(final), "%s/volume.meta", dir);
    n = snprintf(buf, sizeof(buf),
                 "version=1\nid=dir:_/%s\nkey=%s\nkey_is_claim=0\nname=%s\ncapacity=1073741824\n"
                 "access=mount\nsource_kind=none\nsource_id=\ncreated=0\n",
                 name, name, name);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, 0600) < 0 || write(fd, buf, (size_t)n) != n || (c->fsync_on && fsync(fd) < 0))
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, final) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return fsync_path(c, dir);
}

/* Reads /proc/self/mountinfo and scans every line for name, as a mount check would. */
static int scan_mountinfo(const char *name)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    int hits = 0;

    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, name))
            hits++;
    fclose(f);
    return hits;
}

static int cycle(struct thread *t)
{
    struct ceiling *c = t->c;
    /* sized so that every path below a 255-byte root fits (no truncation possible) */
    char name[64], ns[300], trash_dir[300], tmp[400], final[400], trash[400], data[512], path[512];
    int r;

    snprintf(name, sizeof(name), "ceil-%u-%" PRIu64, t->idx, t->seq++);
    snprintf(tmp, sizeof(tmp), "%s/.tmp/v-XXXXXX", c->root);
    snprintf(ns, sizeof(ns), "%s/_", c->root);
    snprintf(final, sizeof(final), "%s/%s", ns, name);
    snprintf(trash_dir, sizeof(trash_dir), "%s/.trash", c->root);
    snprintf(trash, sizeof(trash), "%s/%s", trash_dir, name);

    /* create */
    if (!mkdtemp(tmp))
        return -errno;
    snprintf(data, sizeof(data), "%s/data", tmp);
    if (mkdir(data, 0700) < 0 || chmod(data, 0777) < 0)
        return -errno;
    r = write_meta(c, tmp, name);
    if (r < 0)
        return r;
    pthread_mutex_lock(&c->lock);
    if (mkdir(ns, 0700) == 0)
        r = fsync_path(c, c->root);
    else if (errno != EEXIST)
        r = -errno;
    if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0)
        r = -errno;
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    r = fsync_path(c, ns);
    if (r < 0)
        return r;

    /* delete */
    if (c->mountinfo && scan_mountinfo(name) < 0)
        return -EIO;
    pthread_mutex_lock(&c->lock);
    if (rename(final, trash) < 0)
        r = -errno;
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    /* Another thread may have removed the namespace directory as soon as it was empty (and
     * fsynced the root, which makes its removal and our rename out of it durable): ENOENT
     * here is not an error. */
    r = fsync_path(c, ns);
    if (r == -ENOENT)
        r = 0;
    if (r == 0)
        r = fsync_path(c, trash_dir);
    if (r < 0)
        return r;
    snprintf(path, sizeof(path), "%s/volume.meta", trash);
    if (unlink(path) < 0)
        return -errno;
    snprintf(path, sizeof(path), "%s/data", trash);
    if (rmdir(path) < 0 || rmdir(trash) < 0)
        return -errno;
    pthread_mutex_lock(&c->lock);
    if (rmdir(ns) == 0)
        r = fsync_path(c, c->root);
    pthread_mutex_unlock(&c->lock);
    return r;
}

static bool claim(struct ceiling *c)
{
    if (c->ops)
        return atomic_fetch_add(&c->claimed, 1) < c->ops;
    return now_ns() < c->deadline_ns;
}

static void *thread_main(void *arg)
{
    struct thread *t = arg;

    while (claim(t->c)) {
        uint64_t t0 = now_ns();
        int r = cycle(t);

        if (r < 0) {
            if (!t->first_error[0])
                snprintf(t->first_error, sizeof(t->first_error), "%s", strerror(-r));
            atomic_fetch_add(&t->c->errors, 1);
            continue;
        }
        lat_add(&t->lat, now_ns() - t0);
    }
    return NULL;
}

static void usage(FILE *f)
{
    fputs("usage: fsync-ceiling --dir DIR [--concurrency N] [--ops N | --duration SEC]\n"
          "                     [--no-fsync] [--mountinfo] [--json]\n"
          "Runs the file-system work of durable directory-volume create+delete cycles under\n"
          "DIR (which must exist, on the disk to measure) and reports cycles/s and latency.\n",
          f);
}

static int parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
    char *end;
    unsigned long long v;

    if (!s || s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct ceiling c;
    struct thread *ts;
    struct lat_samples all;
    struct lat_summary s;
    const char *dir = NULL;
    char sub[PATH_MAX], real[PATH_MAX];
    uint64_t v, t0, t1, errors;
    double elapsed, cpu0, cpu_s;

    memset(&c, 0, sizeof(c));
    c.concurrency = 1;
    c.ops = 10000;
    c.fsync_on = true;
    for (int i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--no-fsync") == 0) {
            c.fsync_on = false;
        } else if (strcmp(argv[i], "--mountinfo") == 0) {
            c.mountinfo = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "--dir") == 0 && val) {
            dir = val;
            i++;
        } else if (strcmp(argv[i], "--concurrency") == 0 && parse_uint(val, 1024, &v) == 0) {
            c.concurrency = (unsigned)v;
            i++;
        } else if (strcmp(argv[i], "--ops") == 0 && parse_uint(val, (uint64_t)1 << 40, &v) == 0) {
            c.ops = v;
            c.duration_ms = 0;
            i++;
        } else if (strcmp(argv[i], "--duration") == 0 && parse_uint(val, 86400, &v) == 0) {
            c.duration_ms = v * 1000;
            c.ops = 0;
            i++;
        } else {
            fprintf(stderr, "fsync-ceiling: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!dir || !realpath(dir, real) || strlen(real) >= sizeof(c.root)) {
        fprintf(stderr, "fsync-ceiling: --dir must name an existing directory (path < 256)\n");
        return 2;
    }
    memcpy(c.root, real, strlen(real) + 1);
    snprintf(sub, sizeof(sub), "%s/.tmp", c.root);
    if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
        perror("fsync-ceiling: mkdir .tmp");
        return 1;
    }
    snprintf(sub, sizeof(sub), "%s/.trash", c.root);
    if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
        perror("fsync-ceiling: mkdir .trash");
        return 1;
    }
    pthread_mutex_init(&c.lock, NULL);
    atomic_init(&c.claimed, 0);
    atomic_init(&c.errors, 0);
    ts = calloc(c.concurrency, sizeof(*ts));
    if (!ts) {
        fputs("fsync-ceiling: out of memory\n", stderr);
        return 1;
    }
    cpu0 = self_cpu_s();
    t0 = now_ns();
    c.deadline_ns = t0 + c.duration_ms * 1000000u;
    for (unsigned i = 0; i < c.concurrency; i++) {
        ts[i].c = &c;
        ts[i].idx = i;
        lat_init(&ts[i].lat);
        if (pthread_create(&ts[i].th, NULL, thread_main, &ts[i]) != 0) {
            fputs("fsync-ceiling: cannot start a thread\n", stderr);
            abort();
        }
    }
    lat_init(&all);
    for (unsigned i = 0; i < c.concurrency; i++) {
        pthread_join(ts[i].th, NULL);
        lat_merge(&all, &ts[i].lat);
        if (ts[i].first_error[0])
            fprintf(stderr, "fsync-ceiling: thread %u: first error: %s\n", i, ts[i].first_error);
        lat_release(&ts[i].lat);
    }
    t1 = now_ns();
    cpu_s = self_cpu_s() - cpu0; /* every thread of the process, over the run */
    elapsed = (double)(t1 - t0) / 1e9;
    errors = atomic_load(&c.errors);
    lat_summarize(&all, &s);
    if (c.json)
        printf("{\"tool\": \"fsync-ceiling\", \"concurrency\": %u, \"fsync\": %s, "
               "\"mountinfo\": %s, \"cycles\": %" PRIu64 ", \"errors\": %" PRIu64
               ", \"elapsed_s\": %.6f, \"cycles_per_s\": %.2f, \"latency_ms\": {\"p50\": %.3f, "
               "\"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f, \"mean\": %.3f}, \"cpu_s\": %.3f, "
               "\"cpu_us_per_cycle\": %.1f}\n",
               c.concurrency, c.fsync_on ? "true" : "false", c.mountinfo ? "true" : "false",
               s.count, errors, elapsed, (double)s.count / elapsed, s.p50 / 1e6, s.p90 / 1e6,
               s.p99 / 1e6, s.max / 1e6, s.mean / 1e6, cpu_s,
               s.count ? cpu_s * 1e6 / (double)s.count : 0.0);
    else
        printf("fsync-ceiling: concurrency %u, fsync %s%s: %" PRIu64 " cycles in %.3f s = "
               "%.1f cycles/s, %" PRIu64 " errors\n"
               "  latency ms: p50 %.3f p90 %.3f p99 %.3f max %.3f mean %.3f\n"
               "  CPU %.3f s (%.1f us per cycle)\n",
               c.concurrency, c.fsync_on ? "on" : "off", c.mountinfo ? ", mountinfo scan" : "",
               s.count, elapsed, (double)s.count / elapsed, errors, s.p50 / 1e6, s.p90 / 1e6,
               s.p99 / 1e6, s.max / 1e6, s.mean / 1e6, cpu_s,
               s.count ? cpu_s * 1e6 / (double)s.count : 0.0);
    lat_release(&all);
    free(ts);
    pthread_mutex_destroy(&c.lock);
    return errors ? 1 : 0;
}
