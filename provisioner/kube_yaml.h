/*
 * A small, strict YAML reader for the subset that kubectl writes into kubeconfig files: block
 * mappings and block sequences (including "- key: value" items and sequences at the same
 * indentation as their key), plain, 'single' and "double" quoted scalars, comments, an optional
 * leading "---", and the empty flow collections {} and []. Everything else (tabs in indentation,
 * anchors, aliases, tags, block scalars, non-empty flow collections, multiple documents, duplicate
 * keys, over-long lines, deep nesting, NUL bytes) is rejected with a message naming the line.
 *
 * Scalars become cJSON strings, except true/false (bools) and null/~ (null); numbers stay
 * strings, which is all a kubeconfig needs.
 *
 * Threading: pure functions.
 */
#ifndef ORDINAL_KUBE_YAML_H
#define ORDINAL_KUBE_YAML_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define KUBE_YAML_MAX_LINE (1024 * 1024)
#define KUBE_YAML_MAX_DEPTH 32

/*
 * Parse text (len bytes, need not be NUL-terminated) into *ret (owned by the caller; free with
 * cJSON_Delete). A document that holds only comments yields an empty object. Returns 0, -EINVAL
 * with a message in err (e.g. "line 7: tab in indentation"), or -ENOMEM.
 */
int kube_yaml_parse(const char *text, size_t len, cJSON **ret, char *err, size_t errlen);

#endif
