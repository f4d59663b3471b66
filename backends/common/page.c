/* The page destructors declared in backend.h. */
#include "backend.h"

#include <stdlib.h>

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
