/*
 * Group commit: many operations in flight on one filesystem share one flush.
 *
 * An operation does its file-system steps (mkdir, write, rename) without syncing, then calls
 * commit_wait(). It returns once a flush that *started after the call* has completed, so every
 * step done before the call is durable. While one flush runs, the callers that arrive meanwhile
 * queue up and the first of them, when the flush ends, starts the next one for all of them
 * (leader/follower: no committer thread, no hand-off when nobody else is waiting).
 *
 * The flush is syncfs(2) of the filesystem holding the path given to commit_new(): one cache
 * flush of the device for every dirty inode of that filesystem, where fsync(2) of each directory
 * touched would flush the device once per call (ext4 without a journal, xfs). Its cost grows with
 * the other dirty data of that filesystem (see docs/DECISIONS.md, "Group commit").
 *
 * Threading: all functions but commit_new/commit_free may be called from any thread at once.
 * One mutex, never held across the flush.
 */
#ifndef ORDINAL_COMMIT_H
#define ORDINAL_COMMIT_H

#include <stdint.h>

struct commit;

/* A committer for the filesystem of path (a directory; opened O_RDONLY|O_DIRECTORY|O_CLOEXEC).
 * Returns 0 and *ret (owned by the caller, free with commit_free) or -errno. */
int commit_new(const char *path, struct commit **ret);
void commit_free(struct commit *c);

/* Make every change done before this call durable. 0, or the -errno of the flush that should
 * have covered it (then nothing is known about durability: the caller fails its operation). */
int commit_wait(struct commit *c);

struct commit_stats {
    uint64_t waits;   /* commit_wait() calls */
    uint64_t flushes; /* syncfs() calls */
    uint64_t errors;  /* flushes that failed */
};
void commit_get_stats(struct commit *c, struct commit_stats *ret);

#endif
