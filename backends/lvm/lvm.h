/*
 * The LVM backend: one logical volume per claim in an allowed volume group, tags carrying the
 * key. See the design note at the top of lvm.c.
 */
#ifndef ORDINAL_LVM_H
#define ORDINAL_LVM_H

#include "backend.h"

#include <stddef.h>

/*
 * An LVM backend serving the volume groups vgs[0..n_vgs) (1..8 valid VG names; duplicates are
 * merged). node_id is only used in messages. The lvm2 tools run with LC_ALL=C and the
 * daemon's LVM_SYSTEM_DIR, if set. Returns the backend, owned by the caller (free with
 * b->ops->free), or NULL with be_error() set. Nothing is run before be_ops.recover(), which
 * checks that every group exists.
 */
struct backend *be_lvm_new(const char *const *vgs, size_t n_vgs, const char *node_id);

/* How many half-made LVs (our name, none of our tags) the last recover() removed. */
size_t be_lvm_removed_count(struct backend *b);

#endif
