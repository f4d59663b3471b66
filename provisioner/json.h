/*
 * Small cJSON helpers shared by the daemon's controllers (provision.c, inventory.c,
 * reconciler.c). Every result is borrowed from the object passed in, or NULL. No locks.
 */
#ifndef ORDINAL_JSON_H
#define ORDINAL_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"

/* The member at the path of keys (NULL-terminated) below o, or NULL when a step is missing or
 * not an object. */
static inline const cJSON *jget(const cJSON *o, ...)
{
    va_list ap;
    const char *k;

    va_start(ap, o);
    while (o && (k = va_arg(ap, const char *)) != NULL)
        o = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    va_end(ap);
    return o;
}

#define JGET(o, ...) jget((o), __VA_ARGS__, (const char *)NULL)

/* o's string, or NULL when o is not a string. */
static inline const char *jstr(const cJSON *o)
{
    return cJSON_IsString(o) && o->valuestring ? o->valuestring : NULL;
}

#define JSTR(o, ...) jstr(JGET((o), __VA_ARGS__))

/* Both set and equal. */
static inline bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static inline void cjson_freep(cJSON **p)
{
    cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cjson_freep)

#endif
