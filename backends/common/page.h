/*
 * Paging of sorted lists for the backends' list and snapshot_list operations: the window after
 * a starting token, capped at a page size. Pure functions; no locks.
 */
#ifndef ORDINAL_PAGE_H
#define ORDINAL_PAGE_H

#include <stdbool.h>
#include <stddef.h>

/* Moves to the front of `items` (n records of `size` bytes, sorted by the id that id_of gives)
 * the records whose id sorts after `after` (NULL or "": from the first), at most `max` of them
 * (0: no cap). Returns how many were kept and sets *ret_more when records remain beyond them.
 * The array stays the caller's; when 0 is returned nothing of it is used. */
size_t be_page_window(void *items, size_t n, size_t size, const char *(*id_of)(const void *),
                      const char *after, size_t max, bool *ret_more);

#endif
