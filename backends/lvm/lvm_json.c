/*
 * lvm's JSON reports (`lvs/vgs --reportformat json`): a small strict JSON parser (RFC 8259:
 * objects, arrays, strings with every escape, numbers, true/false/null; depth-limited; NUL
 * refused) into a tree, and the extraction of one section's rows as strings.
 *
 * The input comes from an external program: every type and field is checked, nothing is
 * assumed. No JSON library below backends/ (STYLE.md), hence this file.
 *
 * Threading: no shared state.
 */
#include "lvm_internal.h"

#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jnode {
    enum jtype t;
    char *s;             /* J_STR: owned, NUL-free, NUL-terminated */
    struct jnode **kids; /* J_ARR, J_OBJ: owned, n entries */
    char **keys;         /* J_OBJ: owned, n entries */
    size_t n, cap;
};

struct jparser {
    const char *p, *end;
    int depth;
    const char *why; /* static reason of the first error */
};

static void jfree(struct jnode *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++) {
        jfree(j->kids[i]);
        if (j->keys)
            free(j->keys[i]);
    }
    free(j->kids);
    free(j->keys);
    free(j->s);
    free(j);
}

static int jfail(struct jparser *jp, const char *why)
{
    if (!jp->why)
        jp->why = why;
    return -EINVAL;
}

static void skip_ws(struct jparser *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

static int hex4(const char *p, unsigned *ret)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -EINVAL;
    }
    *ret = v;
    return 0;
}

static size_t utf8_put(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at jp->p (which is at '"'); the decoded value is malloc'd into *ret. */
static int parse_string(struct jparser *jp, char **ret)
{
    const char *s = ++jp->p;
    char *out, *o;

    /* first pass: find the end; the decoded string is never longer than the source */
    while (s < jp->end && *s != '"') {
        if ((unsigned char)*s < 0x20)
            return jfail(jp, "control character in a string");
        if (*s == '\\') {
            if (++s >= jp->end)
                break;
        }
        s++;
    }
    if (s >= jp->end)
        return jfail(jp, "unterminated string");
    out = malloc((size_t)(s - jp->p) + 1);
    if (!out)
        return -ENOMEM;
    o = out;
    while (jp->p < s) {
        char c = *jp->p++;
        unsigned cp, lo;

        if (c != '\\') {
            *o++ = c;
            continue;
        }
        c = *jp->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            *o++ = c;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u':
            if (s - jp->p < 4 || hex4(jp->p, &cp) < 0)
                goto bad_escape;
            jp->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (s - jp->p < 6 || jp->p[0] != '\\' || jp->p[1] != 'u' ||
                    hex4(jp->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                    goto bad_escape;
                jp->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                goto bad_escape;
            }
            if (cp == 0) {
                free(out);
                return jfail(jp, "NUL in a string");
            }
            o += utf8_put(cp, o);
            break;
        default:
            goto bad_escape;
        }
    }
    *o = '\0';
    jp->p = s + 1;
    *ret = out;
    return 0;

bad_escape:
    free(out);
    return jfail(jp, "invalid escape in a string");
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct jparser *jp)
{
    const char *p = jp->p;

    if (p < jp->end && *p == '-')
        p++;
    if (p >= jp->end || !is_digit(*p))
        return jfail(jp, "invalid number");
    if (*p == '0')
        p++;
    else
        while (p < jp->end && is_digit(*p))
            p++;
    if (p < jp->end && *p == '.') {
        p++;
        if (p >= jp->end || !is_digit(*p))
            return jfail(jp, "invalid number");
        while (p < jp->end && is_digit(*p))
            p++;
    }
    if (p < jp->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < jp->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= jp->end || !is_digit(*p))
            return jfail(jp, "invalid number");
        while (p < jp->end && is_digit(*p))
            p++;
    }
    jp->p = p;
    return 0;
}

static int add_kid(struct jnode *j, struct jnode *kid, char *key)
{
    if (j->n == j->cap) {
        size_t nc = j->cap ? j->cap * 2 : 8;
        struct jnode **nk = realloc(j->kids, nc * sizeof(*nk));

        if (!nk)
            return -ENOMEM;
        j->kids = nk;
        if (j->t == J_OBJ) {
            char **nkeys = realloc(j->keys, nc * sizeof(*nkeys));
            if (!nkeys)
                return -ENOMEM;
            j->keys = nkeys;
        }
        j->cap = nc;
    }
    j->kids[j->n] = kid;
    if (j->t == J_OBJ)
        j->keys[j->n] = key;
    j->n++;
    return 0;
}

static int parse_value(struct jparser *jp, struct jnode **ret);

static int parse_container(struct jparser *jp, struct jnode *j)
{
    char close = j->t == J_OBJ ? '}' : ']';
    int r;

    if (++jp->depth > LVM_JSON_DEPTH_MAX)
        return jfail(jp, "nested too deeply");
    jp->p++;
    skip_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        jp->depth--;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        struct jnode *kid = NULL;

        skip_ws(jp);
        if (j->t == J_OBJ) {
            if (jp->p >= jp->end || *jp->p != '"')
                return jfail(jp, "object key expected");
            r = parse_string(jp, &key);
            if (r < 0)
                return r;
            for (size_t i = 0; i < j->n; i++)
                if (strcmp(j->keys[i], key) == 0) {
                    free(key);
                    return jfail(jp, "duplicate object key");
                }
            skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                return jfail(jp, "':' expected");
            }
            jp->p++;
        }
        r = parse_value(jp, &kid);
        if (r == 0)
            r = add_kid(j, kid, key);
        if (r < 0) {
            jfree(kid);
            free(key);
            return r;
        }
        skip_ws(jp);
        if (jp->p >= jp->end)
            return jfail(jp, "truncated");
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p == close) {
            jp->p++;
            jp->depth--;
            return 0;
        }
        return jfail(jp, "',' or end of container expected");
    }
}

static int parse_value(struct jparser *jp, struct jnode **ret)
{
    struct jnode *j;
    int r = 0;

    skip_ws(jp);
    if (jp->p >= jp->end)
        return jfail(jp, "truncated");
    j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    switch (*jp->p) {
    case '{':
        j->t = J_OBJ;
        r = parse_container(jp, j);
        break;
    case '[':
        j->t = J_ARR;
        r = parse_container(jp, j);
        break;
    case '"':
        j->t = J_STR;
        r = parse_string(jp, &j->s);
        break;
    case 't':
    case 'f':
    case 'n': {
        const char *w = *jp->p == 't' ? "true" : *jp->p == 'f' ? "false" : "null";
        size_t wl = strlen(w);

        j->t = *jp->p == 'n' ? J_NULL : J_BOOL;
        if ((size_t)(jp->end - jp->p) < wl || memcmp(jp->p, w, wl) != 0)
            r = jfail(jp, "invalid literal");
        else
            jp->p += wl;
        break;
    }
    default:
        j->t = J_NUM;
        r = parse_number(jp);
    }
    if (r < 0) {
        jfree(j);
        return r;
    }
    *ret = j;
    return 0;
}

static const struct jnode *jget(const struct jnode *obj, const char *key)
{
    if (!obj || obj->t != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return obj->kids[i];
    return NULL;
}

void lvm__report_release(struct lvm__report *r)
{
    if (!r || !r->cells)
        return;
    for (size_t i = 0; i < r->n_rows * r->n_fields; i++)
        free(r->cells[i]);
    free(r->cells);
    r->cells = NULL;
    r->n_rows = 0;
}

int lvm__report_parse(const char *text, size_t len, const char *section, const char *const *fields,
                      size_t n_fields, struct lvm__report *ret)
{
    struct jparser jp = {.p = text, .end = text + len};
    struct jnode *root = NULL;
    const struct jnode *rep;
    struct lvm__report out = {.n_fields = n_fields};
    size_t rows = 0, k = 0;
    bool seen = false;
    int r;

    if (!text || !section || n_fields == 0)
        return be_error(-EINVAL, "lvm report: nothing to parse");
    if (memchr(text, '\0', len))
        return be_error(-EINVAL, "lvm report: NUL byte in the output");
    r = parse_value(&jp, &root);
    if (r == -ENOMEM)
        return r;
    if (r == 0) {
        skip_ws(&jp);
        if (jp.p != jp.end)
            r = jfail(&jp, "trailing data after the report");
    }
    if (r < 0) {
        jfree(root);
        return be_error(-EINVAL, "lvm report: invalid JSON: %s", jp.why ? jp.why : "?");
    }
    rep = jget(root, "report");
    if (!rep || rep->t != J_ARR) {
        jfree(root);
        return be_error(-EINVAL, "lvm report: no \"report\" array");
    }
    /* count and type-check first, then copy */
    for (size_t i = 0; i < rep->n; i++) {
        const struct jnode *sec = jget(rep->kids[i], section);

        if (rep->kids[i]->t != J_OBJ) {
            r = be_error(-EINVAL, "lvm report: report[%zu] is not an object", i);
            break;
        }
        if (!sec)
            continue;
        if (sec->t != J_ARR) {
            r = be_error(-EINVAL, "lvm report: \"%s\" is not an array", section);
            break;
        }
        seen = true;
        for (size_t row = 0; row < sec->n && r == 0; row++) {
            const struct jnode *o = sec->kids[row];

            if (o->t != J_OBJ) {
                r = be_error(-EINVAL, "lvm report: a %s row is not an object", section);
                break;
            }
            for (size_t f = 0; f < n_fields; f++) {
                const struct jnode *v = jget(o, fields[f]);
                if (!v || v->t != J_STR) {
                    r = be_error(-EINVAL, "lvm report: field %s of a %s row is %s", fields[f],
                                 section, v ? "not a string" : "missing");
                    break;
                }
            }
        }
        if (r < 0)
            break;
        rows += sec->n;
        if (rows > LVM_REPORT_ROWS_MAX) {
            r = be_error(-EINVAL, "lvm report: more than %d rows", LVM_REPORT_ROWS_MAX);
            break;
        }
    }
    if (r == 0 && !seen)
        r = be_error(-EINVAL, "lvm report: no \"%s\" section", section);
    if (r == 0 && rows > 0) {
        out.cells = calloc(rows * n_fields, sizeof(*out.cells));
        if (!out.cells)
            r = -ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < rep->n; i++) {
        const struct jnode *sec = jget(rep->kids[i], section);

        for (size_t row = 0; sec && row < sec->n; row++)
            for (size_t f = 0; f < n_fields; f++) {
                const struct jnode *v = jget(sec->kids[row], fields[f]);
                out.cells[k] = strdup(v->s);
                if (!out.cells[k++]) {
                    out.n_rows = rows;
                    lvm__report_release(&out);
                    jfree(root);
                    return -ENOMEM;
                }
            }
    }
    jfree(root);
    if (r < 0) {
        free(out.cells);
        return r;
    }
    out.n_rows = rows;
    *ret = out;
    return 0;
}
