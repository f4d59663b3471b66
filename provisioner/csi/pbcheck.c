/* Wire-level string check of pbcheck.h. Pure functions: safe from any thread. */
#include "pbcheck.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 32

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -EINVAL;
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *ret = v;
            return 0;
        }
    }
    return -EINVAL;
}

int pb_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t k;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (k >= n - i)
            return 0; /* truncated sequence */
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static int check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth,
                 char *err, size_t errlen)
{
    size_t pos = 0;

    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "request nests messages deeper than %d levels", MAX_DEPTH);
        return -EINVAL;
    }
    while (pos < len) {
        uint64_t tag, n;

        if (read_varint(p, len, &pos, &tag) < 0)
            goto malformed;
        switch (tag & 7) {
        case 0:
            if (read_varint(p, len, &pos, &n) < 0)
                goto malformed;
            break;
        case 1:
            if (len - pos < 8)
                goto malformed;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                goto malformed;
            pos += 4;
            break;
        case 2: {
            const ProtobufCFieldDescriptor *f;

            if (read_varint(p, len, &pos, &n) < 0 || n > len - pos)
                goto malformed;
            f = tag >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING) {
                if (memchr(p + pos, '\0', n)) {
                    snprintf(err, errlen, "%s.%s contains a NUL byte", d->short_name, f->name);
                    return -EINVAL;
                }
                if (!pb_utf8_valid(p + pos, n)) {
                    snprintf(err, errlen, "%s.%s is not valid UTF-8", d->short_name, f->name);
                    return -EINVAL;
                }
            } else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int r = check(f->descriptor, p + pos, n, depth + 1, err, errlen);
                if (r < 0)
                    return r;
            }
            pos += n;
            break;
        }
        default:
            goto malformed; /* groups (3, 4) are not part of proto3 */
        }
    }
    return 0;
malformed:
    snprintf(err, errlen, "malformed request message");
    return -EINVAL;
}

int pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                     char *err, size_t errlen)
{
    return check(d, data, len, 0, err, errlen);
}
