/*
 * A check of a serialised protobuf message before protobuf-c unpacks it: protobuf-c hands out
 * strings as NUL-terminated C strings, so a string field with an embedded NUL would be silently
 * cut short ("keep\0x" would name "keep"). Every string field, at any depth, must be valid UTF-8
 * without NUL bytes; anything else is refused before a handler sees it.
 */
#ifndef ORDINAL_PBCHECK_H
#define ORDINAL_PBCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/*
 * Walk data (len bytes) as a message of type d. Returns 0, or -EINVAL with a message naming the
 * field written to err (of size errlen). Unknown fields are skipped; nesting deeper than 32
 * levels and malformed wire data are refused.
 */
int pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                     char *err, size_t errlen);

/* Whether s[0..n) is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). */
int pb_utf8_valid(const uint8_t *s, size_t n);

#endif
