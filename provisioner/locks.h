/*
 * In-flight operation table: at most one operation per volume key (or snapshot name) at a
 * time. A second operation on a busy key is not queued: it gets -EAGAIN, which the status
 * table turns into ABORTED, as the CSI spec allows; the CO retries with backoff.
 *
 * Threading: every function is safe from any thread; the table has its own mutex, held only
 * while the table is read or changed.
 */
#ifndef ORDINAL_LOCKS_H
#define ORDINAL_LOCKS_H

#include <stddef.h>

struct lock_table;

struct lock_table *lock_table_new(void);
void lock_table_free(struct lock_table *t);

/* Take every non-NULL key of keys[0..n) at once, or none: 0, -EAGAIN if one is held, -ENOMEM.
 * Duplicate keys in one call are taken once. */
int lock_take(struct lock_table *t, const char *const *keys, size_t n);
/* Give back keys taken by lock_take() with the same arguments. */
void lock_give(struct lock_table *t, const char *const *keys, size_t n);
/* Number of keys held now. */
size_t lock_count(struct lock_table *t);

#endif
