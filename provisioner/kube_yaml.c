/*
 * The kubeconfig YAML subset (kube_yaml.h). Two passes: the text is cut into lines (indent,
 * content, number) with the blank and comment lines dropped and every line-level rule checked;
 * then a recursive descent over those lines builds the cJSON tree. A "- " sequence item is parsed
 * by rewriting its line in place as if the dash were indentation, so "- name: x" followed by
 * "  cluster: y" is an ordinary mapping at the column after the dash.
 */
#include "kube_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct yline {
    const char *s; /* borrowed from the text: content after the indentation */
    size_t len;    /* without trailing spaces */
    size_t indent;
    size_t no; /* 1-based line number */
};

struct yparser {
    struct yline *lines; /* owned */
    size_t n, i;
    int depth;
    char *err; /* borrowed, may be NULL */
    size_t errlen;
    int r; /* first error */
};

static void *fail(struct yparser *p, size_t no, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *fail(struct yparser *p, size_t no, const char *fmt, ...)
{
    va_list ap;
    int w = 0;

    if (p->r < 0)
        return NULL;
    p->r = -EINVAL;
    if (!p->err || p->errlen == 0)
        return NULL;
    if (no)
        w = snprintf(p->err, p->errlen, "line %zu: ", no);
    if (w < 0 || (size_t)w >= p->errlen)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p->err + w, p->errlen - (size_t)w, fmt, ap);
    va_end(ap);
    return NULL;
}

static void *oom(struct yparser *p)
{
    if (p->r == 0) {
        p->r = -ENOMEM;
        if (p->err && p->errlen)
            snprintf(p->err, p->errlen, "out of memory");
    }
    return NULL;
}

static int split_lines(struct yparser *p, const char *text, size_t len)
{
    size_t cap = 0, no = 0;
    bool seen_content = false;

    if (memchr(text, 0, len)) {
        fail(p, 0, "NUL byte in kubeconfig");
        return p->r;
    }
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - s) : len - pos;
        size_t ind = 0;

        pos += l + (nl ? 1 : 0);
        no++;
        if (l > KUBE_YAML_MAX_LINE) {
            fail(p, no, "line longer than %d bytes", KUBE_YAML_MAX_LINE);
            return p->r;
        }
        if (l && s[l - 1] == '\r')
            l--;
        while (ind < l && s[ind] == ' ')
            ind++;
        if (ind < l && s[ind] == '\t') {
            fail(p, no, "tab in indentation");
            return p->r;
        }
        while (l > ind && (s[l - 1] == ' ' || s[l - 1] == '\t'))
            l--;
        if (ind == l || s[ind] == '#')
            continue;
        for (size_t k = ind; k < l; k++)
            if ((unsigned char)s[k] < 0x20 && s[k] != '\t') {
                fail(p, no, "control character in line");
                return p->r;
            }
        if (l - ind >= 3 && (memcmp(s + ind, "---", 3) == 0 || memcmp(s + ind, "...", 3) == 0) &&
            (l - ind == 3 || s[ind + 3] == ' ')) {
            if (seen_content || ind != 0 || s[ind] == '.' || l - ind != 3) {
                fail(p, no, "only one YAML document is supported");
                return p->r;
            }
            seen_content = true;
            continue;
        }
        if (s[ind] == '%') {
            fail(p, no, "YAML directives are not supported");
            return p->r;
        }
        seen_content = true;
        if (p->n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct yline *nl2 = realloc(p->lines, ncap * sizeof(*nl2));

            if (!nl2) {
                oom(p);
                return p->r;
            }
            p->lines = nl2;
            cap = ncap;
        }
        p->lines[p->n++] = (struct yline){.s = s + ind, .len = l - ind, .indent = ind, .no = no};
    }
    return 0;
}

static bool is_dash(const struct yline *l)
{
    return l->s[0] == '-' && (l->len == 1 || l->s[1] == ' ');
}

/* End of a quoted scalar starting at s[0] (a quote), as the index just past the closing quote, or
 * 0 if it does not close on this line. */
static size_t quoted_end(const char *s, size_t len)
{
    char q = s[0];

    for (size_t k = 1; k < len; k++) {
        if (q == '"' && s[k] == '\\') {
            k++;
            continue;
        }
        if (s[k] == q) {
            if (q == '\'' && k + 1 < len && s[k + 1] == '\'') {
                k++;
                continue;
            }
            return k + 1;
        }
    }
    return 0;
}

/* Find "key:" on a line: *ret_colon is the index of the colon. false if the line is no mapping
 * entry. */
static bool find_key(const char *s, size_t len, size_t *ret_colon)
{
    size_t k = 0;

    if (s[0] == '"' || s[0] == '\'') {
        k = quoted_end(s, len);
        if (k == 0)
            return false;
        while (k < len && s[k] == ' ')
            k++;
        if (k < len && s[k] == ':' && (k + 1 == len || s[k + 1] == ' ')) {
            *ret_colon = k;
            return true;
        }
        return false;
    }
    for (; k < len; k++) {
        if (s[k] == '#' && k > 0 && s[k - 1] == ' ')
            return false;
        if (s[k] == ':' && (k + 1 == len || s[k + 1] == ' ')) {
            *ret_colon = k;
            return true;
        }
    }
    return false;
}

static int put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        if (cp >= 0xd800 && cp <= 0xdfff)
            return -EINVAL;
        out[(*o)++] = (char)(0xe0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp <= 0x10ffff) {
        out[(*o)++] = (char)(0xf0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        return -EINVAL;
    }
    return 0;
}

static int hexval(const char *s, size_t n, uint32_t *ret)
{
    uint32_t v = 0;

    for (size_t k = 0; k < n; k++) {
        char c = s[k];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -EINVAL;
    }
    *ret = v;
    return 0;
}

/* Decode the scalar text in s[0..len) (comments already allowed after it). Returns an owned string
 * or NULL with the parser's error set; *ret_plain says whether it was unquoted. */
static char *scalar_text(struct yparser *p, size_t no, const char *s, size_t len, bool *ret_plain)
{
    _cleanup_free_ char *out = malloc(len + 1);
    size_t o = 0, end;

    if (!out)
        return oom(p);
    *ret_plain = false;
    if (s[0] == '"' || s[0] == '\'') {
        end = quoted_end(s, len);
        if (end == 0)
            return fail(p, no, "unterminated or multi-line quoted string");
        for (size_t k = end; k < len; k++) {
            if (s[k] == '#' && s[k - 1] == ' ')
                break;
            if (s[k] != ' ')
                return fail(p, no, "text after a quoted string");
        }
        for (size_t k = 1; k < end - 1; k++) {
            char c = s[k];

            if (s[0] == '\'') {
                if (c == '\'')
                    k++;
                out[o++] = c;
                continue;
            }
            if (c != '\\') {
                out[o++] = c;
                continue;
            }
            c = s[++k];
            switch (c) {
            case '"':
            case '\\':
            case '/':
                out[o++] = c;
                break;
            case 'n':
                out[o++] = '\n';
                break;
            case 't':
                out[o++] = '\t';
                break;
            case 'r':
                out[o++] = '\r';
                break;
            case 'x':
            case 'u': {
                size_t nd = c == 'x' ? 2 : 4;
                uint32_t cp;

                if (k + nd >= end - 1 || hexval(s + k + 1, nd, &cp) < 0 || cp == 0 ||
                    put_utf8(out, &o, cp) < 0)
                    return fail(p, no, "bad escape in double-quoted string");
                k += nd;
                break;
            }
            default:
                return fail(p, no, "unsupported escape \\%c in double-quoted string", c);
            }
        }
        out[o] = 0;
        return TAKE_PTR(out);
    }
    if (strchr("&*!|>@`%{[]},?", s[0]) && !(s[0] == '?' && len > 1 && s[1] != ' '))
        return fail(p, no,
                    "unsupported YAML syntax '%c' (anchors, aliases, tags, block scalars "
                    "and flow collections are not supported)",
                    s[0]);
    if (s[0] == '-' && (len == 1 || s[1] == ' '))
        return fail(p, no, "sequence item not allowed here");
    end = len;
    for (size_t k = 1; k < len; k++)
        if (s[k] == '#' && s[k - 1] == ' ') {
            end = k;
            break;
        }
    while (end > 0 && s[end - 1] == ' ')
        end--;
    for (size_t k = 0; k < end; k++) {
        if (s[k] == '\t')
            return fail(p, no, "tab in plain scalar");
        if (s[k] == ':' && (k + 1 == end || s[k + 1] == ' '))
            return fail(p, no, "unexpected ':' in plain value (quote it)");
    }
    memcpy(out, s, end);
    out[end] = 0;
    *ret_plain = true;
    return TAKE_PTR(out);
}

static cJSON *parse_value(struct yparser *p, size_t no, const char *s, size_t len)
{
    _cleanup_free_ char *text = NULL;
    bool plain;
    cJSON *v;

    if (s[0] == '{' || s[0] == '[') {
        char close = s[0] == '{' ? '}' : ']';
        size_t k = 1;

        while (k < len && s[k] == ' ')
            k++;
        if (k < len && s[k] == close) {
            for (k++; k < len && s[k] == ' '; k++)
                ;
            if (k == len || s[k] == '#') {
                v = s[0] == '{' ? cJSON_CreateObject() : cJSON_CreateArray();
                return v ? v : oom(p);
            }
        }
        return fail(p, no, "flow collections are supported only when empty ({} or [])");
    }
    text = scalar_text(p, no, s, len, &plain);
    if (!text)
        return NULL;
    if (plain &&
        (strcmp(text, "true") == 0 || strcmp(text, "True") == 0 || strcmp(text, "TRUE") == 0))
        v = cJSON_CreateTrue();
    else if (plain && (strcmp(text, "false") == 0 || strcmp(text, "False") == 0 ||
                       strcmp(text, "FALSE") == 0))
        v = cJSON_CreateFalse();
    else if (plain && (!*text || strcmp(text, "null") == 0 || strcmp(text, "Null") == 0 ||
                       strcmp(text, "NULL") == 0 || strcmp(text, "~") == 0))
        v = cJSON_CreateNull();
    else
        v = cJSON_CreateString(text);
    return v ? v : oom(p);
}

static cJSON *parse_block(struct yparser *p, size_t indent);

static bool rest_empty(const char *s, size_t len)
{
    return len == 0 || s[0] == '#';
}

/* The value after "key:" or "-" with nothing else on the line: a nested block, a sequence at the
 * same indentation (only after a key), or null. */
static cJSON *nested_value(struct yparser *p, size_t indent, bool after_key)
{
    cJSON *v;

    if (p->i < p->n && p->lines[p->i].indent > indent)
        return parse_block(p, p->lines[p->i].indent);
    if (after_key && p->i < p->n && p->lines[p->i].indent == indent && is_dash(&p->lines[p->i]))
        return parse_block(p, indent);
    v = cJSON_CreateNull();
    return v ? v : oom(p);
}

static cJSON *parse_seq(struct yparser *p, size_t indent)
{
    cJSON *arr = cJSON_CreateArray();

    if (!arr)
        return oom(p);
    while (p->i < p->n && p->lines[p->i].indent == indent && is_dash(&p->lines[p->i])) {
        struct yline *l = &p->lines[p->i];
        size_t k = 1;
        cJSON *v;

        while (k < l->len && l->s[k] == ' ')
            k++;
        if (rest_empty(l->s + k, l->len - k)) {
            p->i++;
            v = nested_value(p, indent, false);
        } else {
            l->s += k;
            l->len -= k;
            l->indent += k;
            v = parse_block(p, l->indent);
        }
        if (!v || !cJSON_AddItemToArray(arr, v)) {
            cJSON_Delete(v);
            cJSON_Delete(arr);
            return v ? oom(p) : NULL;
        }
    }
    if (p->i < p->n && p->lines[p->i].indent > indent) {
        cJSON_Delete(arr);
        return fail(p, p->lines[p->i].no, "unexpected indentation");
    }
    return arr;
}

static cJSON *parse_map(struct yparser *p, size_t indent)
{
    cJSON *obj = cJSON_CreateObject();

    if (!obj)
        return oom(p);
    while (p->i < p->n && p->lines[p->i].indent >= indent) {
        const struct yline *l = &p->lines[p->i];
        _cleanup_free_ char *key = NULL;
        size_t colon, k;
        bool plain;
        cJSON *v;

        if (l->indent > indent) {
            cJSON_Delete(obj);
            return fail(p, l->no, "unexpected indentation");
        }
        if (is_dash(l)) {
            cJSON_Delete(obj);
            return fail(p, l->no, "sequence item where a key was expected");
        }
        if (!find_key(l->s, l->len, &colon)) {
            cJSON_Delete(obj);
            return fail(p, l->no, "expected 'key: value'");
        }
        k = colon;
        while (k > 0 && l->s[k - 1] == ' ')
            k--;
        if (k == 0) {
            cJSON_Delete(obj);
            return fail(p, l->no, "empty key");
        }
        key = scalar_text(p, l->no, l->s, k, &plain);
        if (!key) {
            cJSON_Delete(obj);
            return NULL;
        }
        if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
            cJSON_Delete(obj);
            return fail(p, l->no, "duplicate key");
        }
        k = colon + 1;
        while (k < l->len && l->s[k] == ' ')
            k++;
        p->i++;
        if (rest_empty(l->s + k, l->len - k))
            v = nested_value(p, indent, true);
        else
            v = parse_value(p, l->no, l->s + k, l->len - k);
        if (!v || !cJSON_AddItemToObject(obj, key, v)) {
            cJSON_Delete(v);
            cJSON_Delete(obj);
            return v ? oom(p) : NULL;
        }
    }
    return obj;
}

static cJSON *parse_block(struct yparser *p, size_t indent)
{
    const struct yline *l = &p->lines[p->i];
    size_t colon;
    cJSON *v;

    if (++p->depth > KUBE_YAML_MAX_DEPTH)
        return fail(p, l->no, "nesting deeper than %d levels", KUBE_YAML_MAX_DEPTH);
    if (is_dash(l)) {
        v = parse_seq(p, indent);
    } else if (find_key(l->s, l->len, &colon)) {
        v = parse_map(p, indent);
    } else {
        v = parse_value(p, l->no, l->s, l->len);
        p->i++;
    }
    p->depth--;
    return v;
}

int kube_yaml_parse(const char *text, size_t len, cJSON **ret, char *err, size_t errlen)
{
    struct yparser p = {.err = err, .errlen = errlen};
    cJSON *root = NULL;

    if (err && errlen)
        err[0] = 0;
    if (split_lines(&p, text, len) < 0) {
        free(p.lines);
        return p.r;
    }
    if (p.n == 0) {
        root = cJSON_CreateObject();
        if (!root)
            oom(&p);
    } else {
        if (p.lines[0].indent != 0)
            fail(&p, p.lines[0].no, "unexpected indentation");
        else
            root = parse_block(&p, 0);
        if (root && p.i < p.n) {
            fail(&p, p.lines[p.i].no, "unexpected content");
            cJSON_Delete(root);
            root = NULL;
        }
    }
    free(p.lines);
    if (!root)
        return p.r < 0 ? p.r : -EINVAL;
    *ret = root;
    return 0;
}
