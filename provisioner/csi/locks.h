/*
 * In-flight operation table: at most one writer, or any number of readers, per key (a volume's
 * key, a snapshot's name) at a time. An operation that cannot take its keys is not queued: it
 * gets -EAGAIN, which the status table turns into ABORTED, as the CSI spec allows; the CO
 * retries with backoff. Readers are sources of clones and restores, so that several volumes
 * can be made from one source at once while the source cannot be deleted under them.
 *
 * Threading: every function is safe from any thread; the table has its own mutex, held only
 * while the table is read or changed.
 */
#ifndef ORDINAL_LOCKS_H
#define ORDINAL_LOCKS_H

#include <stdbool.h>
#include <stddef.h>

struct lock_table;

struct lock_req {
    const char *key; /* borrowed; NULL entries are skipped */
    bool shared;     /* a reader: compatible with other readers */
};

struct lock_table *lock_table_new(void);
void lock_table_free(struct lock_table *t);

/*
 * Take every key of reqs[0..n) at once, or none: 0, -EAGAIN if one is held in a conflicting
 * mode (its index in *ret_busy when ret_busy is not NULL), -ENOMEM. A key named twice in one
 * call is taken once, exclusively if either names it so.
 */
int lock_take(struct lock_table *t, const struct lock_req *reqs, size_t n, size_t *ret_busy);
/* Give back what lock_take() took with the same arguments. */
void lock_give(struct lock_table *t, const struct lock_req *reqs, size_t n);
/* Number of keys held now. */
size_t lock_count(struct lock_table *t);

#endif
