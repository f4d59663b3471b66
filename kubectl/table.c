/* kubectl-style tables; see table.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "table.h"

int kctl_table_init(struct kctl_table *t, const char *const *headers)
{
    size_t n = 0;

    memset(t, 0, sizeof(*t));
    while (headers[n])
        n++;
    if (n == 0 || n > KCTL_TABLE_MAX_COLS)
        return -E2BIG;
    t->ncols = n;
    return kctl_table_add(t, headers);
}

static char *cell_dup(const char *s)
{
    char buf[KCTL_CELL_MAX * 4 + 8];
    size_t n;

    if (!s || !*s)
        s = "-";
    log_text_escape(buf, (int)sizeof(buf), s);
    n = strlen(buf);
    if (n > KCTL_CELL_MAX) {
        /* cut on a character boundary */
        n = KCTL_CELL_MAX - 3;
        while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80)
            n--;
        memcpy(buf + n, "...", 4);
    }
    /* a space inside a cell is fine; a tab would break alignment */
    for (char *p = buf; *p; p++)
        if (*p == '\t')
            *p = ' ';
    return strdup(buf);
}

int kctl_table_add(struct kctl_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (!c)
            return -ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        char *c = cell_dup(cells[i]);
        if (!c) {
            for (size_t k = 0; k < i; k++)
                free(t->cells[t->nrows * t->ncols + k]);
            return -ENOMEM;
        }
        t->cells[t->nrows * t->ncols + i] = c;
    }
    t->nrows++;
    return 0;
}

/* display width: UTF-8 continuation bytes take no column */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void kctl_table_print(const struct kctl_table *t, FILE *out)
{
    size_t w[KCTL_TABLE_MAX_COLS] = {0};

    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t k = width(t->cells[r * t->ncols + c]);
            if (k > w[c])
                w[c] = k;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                fputs(s, out);
            else
                fprintf(out, "%s%*s", s, (int)(w[c] - width(s) + 3), "");
        }
        fputc('\n', out);
    }
}

void kctl_table_release(struct kctl_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
