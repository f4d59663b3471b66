/*
 * YAML into cJSON on libyaml's event parser (kube_yaml.h). Events build the tree on an explicit
 * stack, so the nesting cap is checked before libyaml goes deeper; an anchor keeps its own copy
 * of its value, so aliases and merge keys never point into a tree that is still changing, and
 * every copy counts against the node budget.
 */
#include "kube_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

#define MAX_ANCHORS 4096

struct frame {
    cJSON *node; /* owned until attached to its parent (at the frame's end) */
    bool is_map;
    char *key;         /* owned: the key waiting for its value; NULL = a key comes next */
    bool key_is_merge; /* the pending key is a plain "<<" */
    cJSON *merges;     /* owned array of mappings merged in at the end ("<<"), or NULL */
    char *anchor;      /* owned anchor name of this collection, or NULL */
    size_t nodes_at_start;
};

struct anchor {
    char *name;   /* owned */
    cJSON *value; /* owned copy */
    size_t nodes; /* values in it, counted again at every alias */
};

struct yp {
    struct frame stack[KUBE_YAML_MAX_DEPTH];
    size_t depth;
    struct anchor *anchors; /* owned, nanchors used */
    size_t nanchors;
    size_t nodes;
    int docs;
    cJSON *root; /* owned */
    char *err;
    size_t errlen;
};

static int fail(struct yp *p, int r, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct yp *p, int r, const yaml_mark_t *m, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (!p->err || p->errlen == 0)
        return r;
    if (m)
        n = snprintf(p->err, p->errlen, "line %zu column %zu: ", m->line + 1, m->column + 1);
    if (n < 0 || (size_t)n >= p->errlen)
        return r;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return r;
}

static int count(struct yp *p, size_t n, const yaml_mark_t *m)
{
    if (n > KUBE_YAML_MAX_NODES - p->nodes)
        return fail(p, -EINVAL, m, "more than %d values (aliases expanded)", KUBE_YAML_MAX_NODES);
    p->nodes += n;
    return 0;
}

static int anchor_add(struct yp *p, const char *name, const cJSON *value, size_t nodes,
                      const yaml_mark_t *m)
{
    struct anchor *a;
    int r;

    if (p->nanchors == MAX_ANCHORS)
        return fail(p, -EINVAL, m, "more than %d anchors", MAX_ANCHORS);
    r = count(p, nodes, m); /* the copy */
    if (r < 0)
        return r;
    a = realloc(p->anchors, (p->nanchors + 1) * sizeof(*a));
    if (!a)
        return -ENOMEM;
    p->anchors = a;
    a = &p->anchors[p->nanchors];
    a->name = strdup(name);
    a->value = cJSON_Duplicate(value, true);
    a->nodes = nodes;
    if (!a->name || !a->value) {
        free(a->name);
        cJSON_Delete(a->value);
        return -ENOMEM;
    }
    p->nanchors++;
    return 0;
}

/* The latest anchor of that name (YAML lets a name be redefined), or NULL. */
static const struct anchor *anchor_find(const struct yp *p, const char *name)
{
    for (size_t i = p->nanchors; i > 0; i--)
        if (strcmp(p->anchors[i - 1].name, name) == 0)
            return &p->anchors[i - 1];
    return NULL;
}

/* Hand value v (owned) to the collection on top of the stack, or make it the root. */
static int attach(struct yp *p, cJSON *v, const yaml_mark_t *m)
{
    struct frame *f;

    if (p->depth == 0) {
        p->root = v;
        return 0;
    }
    f = &p->stack[p->depth - 1];
    if (!f->is_map) {
        cJSON_AddItemToArray(f->node, v);
        return 0;
    }
    if (!f->key) {
        if (!cJSON_IsString(v)) {
            cJSON_Delete(v);
            return fail(p, -EINVAL, m, "a mapping key must be a string");
        }
        f->key = v->valuestring;
        v->valuestring = NULL;
        cJSON_Delete(v);
        return 0;
    }
    if (f->key_is_merge) {
        bool ok = cJSON_IsObject(v);
        const cJSON *e;

        if (cJSON_IsArray(v)) {
            ok = true;
            cJSON_ArrayForEach(e, v) ok = ok && cJSON_IsObject(e);
        }
        if (!ok) {
            cJSON_Delete(v);
            return fail(p, -EINVAL, m, "a merge key (<<) needs a mapping or a list of mappings");
        }
        if (!f->merges && !(f->merges = cJSON_CreateArray())) {
            cJSON_Delete(v);
            return -ENOMEM;
        }
        cJSON_AddItemToArray(f->merges, v);
    } else {
        if (cJSON_GetObjectItemCaseSensitive(f->node, f->key)) {
            cJSON_Delete(v);
            return fail(p, -EINVAL, m, "duplicate key %.64s", f->key);
        }
        /* a cJSON object item owns its name: hand the key over instead of copying it */
        v->string = f->key;
        f->key = NULL;
        cJSON_AddItemToArray(f->node, v);
    }
    free(f->key);
    f->key = NULL;
    f->key_is_merge = false;
    return 0;
}

/* Add the keys of merged mapping src that the mapping dst does not have (explicit keys win, and
 * earlier merge sources win over later ones). */
static int merge_into(cJSON *dst, const cJSON *src)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, src)
    {
        cJSON *copy;

        if (cJSON_GetObjectItemCaseSensitive(dst, e->string))
            continue;
        copy = cJSON_Duplicate(e, true);
        if (!copy)
            return -ENOMEM;
        cJSON_AddItemToObject(dst, e->string, copy);
    }
    return 0;
}

static int apply_merges(struct frame *f)
{
    const cJSON *v, *e;
    int r;

    cJSON_ArrayForEach(v, f->merges)
    {
        if (cJSON_IsObject(v)) {
            r = merge_into(f->node, v);
            if (r < 0)
                return r;
            continue;
        }
        cJSON_ArrayForEach(e, v)
        {
            r = merge_into(f->node, e);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static bool is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

static int scalar(struct yp *p, const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    const char *s = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    cJSON *v;
    int r;

    if (strlen(s) != ev->data.scalar.length)
        return fail(p, -EINVAL, &ev->start_mark, "NUL character in a scalar");
    if (tag && strcmp(tag, "!") != 0 && strcmp(tag, YAML_STR_TAG) != 0 &&
        strcmp(tag, YAML_NULL_TAG) != 0 && strcmp(tag, YAML_BOOL_TAG) != 0 &&
        strcmp(tag, YAML_INT_TAG) != 0 && strcmp(tag, YAML_FLOAT_TAG) != 0)
        return fail(p, -EINVAL, &ev->start_mark, "unsupported tag %.64s", tag);
    r = count(p, 1, &ev->start_mark);
    if (r < 0)
        return r;
    if (tag && strcmp(tag, YAML_NULL_TAG) == 0)
        v = cJSON_CreateNull();
    else if (tag && strcmp(tag, YAML_BOOL_TAG) == 0) {
        if (!is_one_of(s, trues) && !is_one_of(s, falses))
            return fail(p, -EINVAL, &ev->start_mark, "!!bool value is not true or false");
        v = cJSON_CreateBool(is_one_of(s, trues));
    } else if (plain && !tag && is_one_of(s, nulls))
        v = cJSON_CreateNull();
    else if (plain && !tag && (is_one_of(s, trues) || is_one_of(s, falses)))
        v = cJSON_CreateBool(is_one_of(s, trues));
    else
        v = cJSON_CreateString(s);
    if (!v)
        return -ENOMEM;
    if (ev->data.scalar.anchor) {
        r = anchor_add(p, (const char *)ev->data.scalar.anchor, v, 1, &ev->start_mark);
        if (r < 0) {
            cJSON_Delete(v);
            return r;
        }
    }
    /* a plain "<<" in key position is a merge key */
    if (p->depth > 0 && p->stack[p->depth - 1].is_map && !p->stack[p->depth - 1].key && plain &&
        strcmp(s, "<<") == 0) {
        r = attach(p, v, &ev->start_mark);
        if (r == 0)
            p->stack[p->depth - 1].key_is_merge = true;
        return r;
    }
    return attach(p, v, &ev->start_mark);
}

static int alias(struct yp *p, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const struct anchor *a = anchor_find(p, name);
    cJSON *v;
    int r;

    if (!a)
        return fail(p, -EINVAL, &ev->start_mark, "alias *%.64s names no (complete) anchor", name);
    r = count(p, a->nodes, &ev->start_mark);
    if (r < 0)
        return r;
    v = cJSON_Duplicate(a->value, true);
    if (!v)
        return -ENOMEM;
    return attach(p, v, &ev->start_mark);
}

static int open_collection(struct yp *p, const yaml_event_t *ev, bool is_map)
{
    const yaml_char_t *anchor =
        is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    struct frame *f;
    int r;

    if (p->depth > 0 && p->stack[p->depth - 1].is_map && !p->stack[p->depth - 1].key)
        return fail(p, -EINVAL, &ev->start_mark, "a mapping key must be a string");
    if (p->depth == KUBE_YAML_MAX_DEPTH)
        return fail(p, -EINVAL, &ev->start_mark, "nesting deeper than %d levels",
                    KUBE_YAML_MAX_DEPTH);
    r = count(p, 1, &ev->start_mark);
    if (r < 0)
        return r;
    f = &p->stack[p->depth];
    *f = (struct frame){.is_map = is_map, .nodes_at_start = p->nodes - 1};
    f->node = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!f->node)
        return -ENOMEM;
    if (anchor && !(f->anchor = strdup((const char *)anchor))) {
        cJSON_Delete(f->node);
        return -ENOMEM;
    }
    p->depth++;
    return 0;
}

static void frame_release(struct frame *f)
{
    cJSON_Delete(f->node);
    cJSON_Delete(f->merges);
    free(f->key);
    free(f->anchor);
    *f = (struct frame){0};
}

static int close_collection(struct yp *p, const yaml_event_t *ev)
{
    struct frame f = p->stack[--p->depth];
    cJSON *node = f.node;
    int r = 0;

    p->stack[p->depth] = (struct frame){0};
    if (f.merges)
        r = apply_merges(&f);
    if (r == 0 && f.anchor)
        r = anchor_add(p, f.anchor, node, p->nodes - f.nodes_at_start, &ev->start_mark);
    f.node = NULL;
    frame_release(&f);
    if (r < 0) {
        cJSON_Delete(node);
        return r;
    }
    return attach(p, node, &ev->start_mark);
}

static int event(struct yp *p, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++p->docs > 1)
            return fail(p, -EINVAL, &ev->start_mark, "more than one YAML document");
        return 0;
    case YAML_SCALAR_EVENT:
        return scalar(p, ev);
    case YAML_ALIAS_EVENT:
        return alias(p, ev);
    case YAML_SEQUENCE_START_EVENT:
        return open_collection(p, ev, false);
    case YAML_MAPPING_START_EVENT:
        return open_collection(p, ev, true);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_collection(p, ev);
    default:
        return 0;
    }
}

int kube_yaml_parse(const char *text, size_t len, cJSON **ret, char *err, size_t errlen)
{
    struct yp p = {.err = err, .errlen = errlen};
    yaml_parser_t parser;
    bool done = false;
    int r = 0;

    if (err && errlen)
        err[0] = '\0';
    if (len > KUBE_YAML_MAX_INPUT)
        return fail(&p, -E2BIG, NULL, "larger than %d bytes", KUBE_YAML_MAX_INPUT);
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done && r == 0) {
        yaml_event_t ev;

        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR)
                r = -ENOMEM;
            else if (parser.context)
                r = fail(&p, -EINVAL, &parser.problem_mark, "%s (%s)", parser.problem,
                         parser.context);
            else
                r = fail(&p, -EINVAL, &parser.problem_mark, "%s",
                         parser.problem ? parser.problem : "invalid YAML");
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        r = event(&p, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    while (p.depth > 0)
        frame_release(&p.stack[--p.depth]);
    for (size_t i = 0; i < p.nanchors; i++) {
        free(p.anchors[i].name);
        cJSON_Delete(p.anchors[i].value);
    }
    free(p.anchors);
    if (r == 0 && !p.root && !(p.root = cJSON_CreateObject()))
        r = -ENOMEM;
    if (r == 0 && cJSON_IsNull(p.root)) {
        /* "---" alone or only comments: an empty document */
        cJSON_Delete(p.root);
        if (!(p.root = cJSON_CreateObject()))
            r = -ENOMEM;
    }
    if (r < 0) {
        cJSON_Delete(p.root);
        return r;
    }
    *ret = p.root;
    return 0;
}
