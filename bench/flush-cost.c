/*
 * flush-cost: what one durability flush costs on the filesystem of --dir, by kind, measured
 * alternately in one run so that the load of a shared machine falls on each kind alike.
 *
 * Each iteration does the unsynced work of one empty directory-volume create (mkdir a work
 * directory, write a ~250-byte file into it, rename the directory to a fresh name), then times
 * one flush of one kind:
 *   syncfs: syncfs(2) of the filesystem (what Ordinal's group commit does per group);
 *   fsync:  fsync(2) of the directory holding the renamed entry (one of the three or two fsyncs
 *           each operation did before group commit);
 *   log:    a 4 KiB pwrite into the next slot of a preallocated, already synced 4 MiB file, then
 *           fdatasync(2) of it: what one group commit of an intent log would cost (the record
 *           made durable; the tree itself left to a later checkpoint).
 * Kinds alternate in blocks of --block iterations, --rounds times. Prints p50/p90/p99/max per
 * kind (nearest rank, every sample kept) and the ratio of the p50s.
 *
 *   flush-cost --dir /var/tmp/x [--iterations 200] [--rounds 3] [--json]
 *
 * Single-threaded; the directory is emptied after each block.
 */
#include "bench_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { KIND_SYNCFS, KIND_FSYNC, KIND_LOG, N_KINDS };
static const char *const kind_names[N_KINDS] = {"syncfs", "fsync", "log"};

#define LOG_BYTES (4u << 20)
#define LOG_SLOT 4096u

/* The preallocated log: LOG_BYTES written and synced, so that a slot write changes no metadata
 * that fdatasync would have to journal. */
static int log_open(const char *dir)
{
    char path[PATH_MAX];
    static char zero[LOG_SLOT];
    int fd;

    if (snprintf(path, sizeof(path), "%s/flush-cost.log", dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (unsigned off = 0; off < LOG_BYTES; off += LOG_SLOT)
        if (pwrite(fd, zero, LOG_SLOT, off) != (ssize_t)LOG_SLOT) {
            close(fd);
            return -EIO;
        }
    if (fsync(fd) < 0) {
        int r = -errno;

        close(fd);
        return r;
    }
    unlink(path); /* the open descriptor keeps it; nothing is left behind */
    return fd;
}

static int flush(int kind, int dfd, int lfd, unsigned long seq)
{
    static char rec[LOG_SLOT];

    if (kind == KIND_SYNCFS)
        return syncfs(dfd);
    if (kind == KIND_FSYNC)
        return fsync(dfd);
    memset(rec, (int)(seq & 0xff), sizeof(rec));
    if (pwrite(lfd, rec, LOG_SLOT, (off_t)((seq * LOG_SLOT) % LOG_BYTES)) != (ssize_t)LOG_SLOT)
        return -1;
    return fdatasync(lfd);
}

static uint64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The unsynced work of one create: 0 or -errno. */
static int one_create(const char *dir, unsigned long i)
{
    char tmp[PATH_MAX], meta[PATH_MAX], final[PATH_MAX];
    static const char text[] = "version=1\nid=dir:_/flush-cost\nkey=flush-cost\nkey_is_claim=0\n"
                               "name=flush-cost\ngeneration=0\ncapacity=1073741824\naccess=mount\n"
                               "source_kind=none\nsource_id=\ncreated=0\nchecksum=0000000000000000"
                               "000000000000000000000000000000000000000000000000\n";
    int fd;

    if (snprintf(tmp, sizeof(tmp), "%s/t-%lu", dir, i) >= (int)sizeof(tmp) ||
        snprintf(meta, sizeof(meta), "%s/volume.meta", tmp) >= (int)sizeof(meta) ||
        snprintf(final, sizeof(final), "%s/v-%lu", dir, i) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    if (mkdir(tmp, 0700) < 0)
        return -errno;
    fd = open(meta, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1)) {
        close(fd);
        return -EIO;
    }
    close(fd);
    return rename(tmp, final) < 0 ? -errno : 0;
}

static void empty(const char *dir, unsigned long from, unsigned long to)
{
    char p[PATH_MAX];

    for (unsigned long i = from; i < to; i++) {
        if (snprintf(p, sizeof(p), "%s/v-%lu/volume.meta", dir, i) < (int)sizeof(p))
            unlink(p);
        if (snprintf(p, sizeof(p), "%s/v-%lu", dir, i) < (int)sizeof(p))
            rmdir(p);
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned long iterations = 200, rounds = 3, seq = 0;
    bool json = false;
    struct lat_samples s[N_KINDS];
    int dfd, lfd;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
            iterations = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "flush-cost: bad argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir || strlen(dir) > 256 || iterations < 1 || iterations > 100000 || rounds < 1 ||
        rounds > 100) {
        fprintf(stderr, "usage: flush-cost --dir DIR [--iterations 1-100000] [--rounds 1-100] "
                        "[--json]\n");
        return 2;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        fprintf(stderr, "flush-cost: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    lfd = log_open(dir);
    if (lfd < 0) {
        fprintf(stderr, "flush-cost: the log file: %s\n", strerror(-lfd));
        return 1;
    }
    for (int k = 0; k < N_KINDS; k++)
        lat_init(&s[k]);
    for (unsigned long r = 0; r < rounds; r++)
        for (int k = 0; k < N_KINDS; k++) {
            unsigned long first = seq;

            for (unsigned long i = 0; i < iterations; i++, seq++) {
                int e = one_create(dir, seq);
                uint64_t t0;

                if (e < 0) {
                    fprintf(stderr, "flush-cost: create: %s\n", strerror(-e));
                    return 1;
                }
                t0 = now_ns();
                if (flush(k, dfd, lfd, seq) < 0) {
                    fprintf(stderr, "flush-cost: %s: %s\n", kind_names[k], strerror(errno));
                    return 1;
                }
                lat_add(&s[k], now_ns() - t0);
            }
            empty(dir, first, seq);
        }
    struct lat_summary sum[N_KINDS];
    for (int k = 0; k < N_KINDS; k++)
        lat_summarize(&s[k], &sum[k]);
    if (json)
        printf("{\"tool\": \"flush-cost\", \"iterations\": %lu, \"rounds\": %lu", iterations,
               rounds);
    for (int k = 0; k < N_KINDS; k++) {
        const struct lat_summary *x = &sum[k];
        if (json)
            printf(", \"%s\": {\"count\": %" PRIu64 ", \"p50\": %.3f, \"p90\": %.3f, \"p99\": "
                   "%.3f, \"max\": %.3f, \"mean\": %.3f}",
                   kind_names[k], x->count, x->p50 / 1e6, x->p90 / 1e6, x->p99 / 1e6, x->max / 1e6,
                   x->mean / 1e6);
        else
            printf("%-7s n=%" PRIu64 " p50 %.3f ms p90 %.3f p99 %.3f max %.3f mean %.3f\n",
                   kind_names[k], x->count, x->p50 / 1e6, x->p90 / 1e6, x->p99 / 1e6, x->max / 1e6,
                   x->mean / 1e6);
    }
    double ratio = sum[KIND_FSYNC].p50 ? (double)sum[KIND_SYNCFS].p50 / sum[KIND_FSYNC].p50 : 0;
    double lratio = sum[KIND_LOG].p50 ? (double)sum[KIND_SYNCFS].p50 / sum[KIND_LOG].p50 : 0;
    if (json)
        printf(", \"p50_ratio_syncfs_to_fsync\": %.2f, \"p50_ratio_syncfs_to_log\": %.2f}\n", ratio,
               lratio);
    else
        printf("p50 syncfs / fsync: %.2f, syncfs / log: %.2f\n", ratio, lratio);
    for (int k = 0; k < N_KINDS; k++)
        lat_release(&s[k]);
    close(lfd);
    close(dfd);
    return 0;
}
