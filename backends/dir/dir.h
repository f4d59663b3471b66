/*
 * The directory backend: each volume is a directory under a root on the node, served to pods
 * by bind mounts. See the design note at the top of dir.c.
 */
#ifndef ORDINAL_DIR_H
#define ORDINAL_DIR_H

#include "backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A directory backend on root (an absolute path to an existing directory; it is canonicalised
 * with realpath). node_id is copied and only used in messages. Returns the backend, owned by
 * the caller (free with b->ops->free), or NULL with be_error() set. Nothing is read or created
 * on disk before be_ops.recover().
 */
struct backend *be_dir_new(const char *root, const char *node_id);

/* How many things the last recover() found at a final location and could not index (names
 * that are not ours, unreadable entries) plus leftovers it could not remove. */
size_t be_dir_damaged_count(struct backend *b);

/* Whether the root enforces capacity by project quotas; why (cap bytes) says what was found. */
bool be_dir_quota_enforced(struct backend *b, char *why, size_t cap);

/* How many unfinished creates (a torn or missing meta beside an empty data directory: a create
 * cut by a power loss before its answer) the last recover() rolled back. */
size_t be_dir_rolled_back_count(struct backend *b);

/* Group commit counters since be_dir_new(): operations that waited for durability, and the
 * flushes (syncfs) that served them. */
void be_dir_commit_stats(struct backend *b, uint64_t *ret_waits, uint64_t *ret_flushes);

#endif
