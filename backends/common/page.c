/* The page destructors declared in backend.h, and the page window of page.h. */
#include "page.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"

size_t be_page_window(void *items, size_t n, size_t size, const char *(*id_of)(const void *),
                      const char *after, size_t max, bool *ret_more)
{
    char *base = items;
    size_t start = 0, count;

    if (after && *after)
        while (start < n && strcmp(id_of(base + start * size), after) <= 0)
            start++;
    count = n - start;
    if (max > 0 && count > max)
        count = max;
    if (start > 0 && count > 0)
        memmove(base, base + start * size, count * size);
    *ret_more = start + count < n;
    return count;
}

void be_volume_page_free(struct be_volume_page *p)
{
    if (!p)
        return;
    free(p->items);
    p->items = NULL;
    p->n = 0;
    p->more = false;
}

void be_snapshot_page_free(struct be_snapshot_page *p)
{
    if (!p)
        return;
    free(p->items);
    p->items = NULL;
    p->n = 0;
    p->more = false;
}

bool be_valid_uid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > BE_UID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}
