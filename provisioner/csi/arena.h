/*
 * A per-call arena: every response message and string a handler builds is allocated here and
 * freed at once when the call is answered. Blocks are malloc'd; a failed allocation returns NULL.
 *
 * Threading: an arena belongs to one call, used by one thread at a time.
 */
#ifndef ORDINAL_ARENA_H
#define ORDINAL_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *head; /* owned, list of blocks */
};

void arena_init(struct arena *a);
void arena_release(struct arena *a);
/* Zeroed memory of n bytes, aligned for any type, or NULL. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
