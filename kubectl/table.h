/*
 * Tables as kubectl prints them: a header row in capitals, columns padded to their widest cell
 * and separated by three spaces. Cells are copied; text from the cluster is escaped (control
 * characters never reach the terminal). Single-threaded.
 */
#ifndef ORDINAL_KCTL_TABLE_H
#define ORDINAL_KCTL_TABLE_H

#include <stdio.h>

#define KCTL_TABLE_MAX_COLS 24
#define KCTL_CELL_MAX 256 /* bytes of one cell after escaping; longer is cut with "..." */

struct kctl_table {
    size_t ncols;
    size_t nrows; /* the header included */
    size_t cap;
    char **cells; /* owned, nrows * ncols, each owned */
};

/* A table with these headers (NULL-terminated). 0 or -ENOMEM / -E2BIG. */
int kctl_table_init(struct kctl_table *t, const char *const *headers);
/* Append a row of t->ncols cells (NULL = "<none>"-like "-"). 0 or -ENOMEM. */
int kctl_table_add(struct kctl_table *t, const char *const *cells);
void kctl_table_print(const struct kctl_table *t, FILE *out);
void kctl_table_release(struct kctl_table *t);

#endif
