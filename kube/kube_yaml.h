/*
 * YAML (and so JSON, a subset of it) into cJSON, on libyaml (yaml-0.1), the reference C YAML
 * parser: whatever YAML users and tools write into kubeconfig files (block and flow collections,
 * every scalar style, comments, anchors, aliases and "<<" merge keys, tags of the core schema).
 *
 * Scalars become cJSON strings, except unquoted true/false (bools) and null/~/empty (null);
 * numbers stay strings, which is all a kubeconfig needs. Refused with a message naming the line
 * and column: input over KUBE_YAML_MAX_INPUT bytes, invalid UTF-8 or control characters (libyaml),
 * nesting deeper than KUBE_YAML_MAX_DEPTH, more than KUBE_YAML_MAX_NODES values after aliases are
 * expanded (a "billion laughs" document), duplicate keys, non-scalar keys, an alias of an unknown
 * or still open anchor, and more than one document.
 *
 * Threading: pure functions.
 */
#ifndef ORDINAL_KUBE_YAML_H
#define ORDINAL_KUBE_YAML_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define KUBE_YAML_MAX_INPUT (4 * 1024 * 1024)
#define KUBE_YAML_MAX_DEPTH 64
#define KUBE_YAML_MAX_NODES 200000

/*
 * Parse text (len bytes, need not be NUL-terminated) into *ret (owned by the caller; free with
 * cJSON_Delete). A document that holds only comments yields an empty object. Returns 0, -EINVAL
 * with a message in err (e.g. "line 7 column 3: found character that cannot start any token"),
 * -E2BIG for input over the cap, or -ENOMEM.
 */
int kube_yaml_parse(const char *text, size_t len, cJSON **ret, char *err, size_t errlen);

#endif
