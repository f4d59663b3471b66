/* Unit tests: provisioner/pbcheck.c, the wire-level string check run before unpacking. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "csi.pb-c.h"
#include "pbcheck.h"

static size_t pack(const ProtobufCMessage *m, uint8_t **ret)
{
    size_t n = protobuf_c_message_get_packed_size(m);

    *ret = malloc(n ? n : 1);
    protobuf_c_message_pack(m, *ret);
    return n;
}

static void test_clean_request_passes(void **state)
{
    Csi__V1__DeleteVolumeRequest r = CSI__V1__DELETE_VOLUME_REQUEST__INIT;
    char err[128] = "";
    uint8_t *buf;
    size_t n;

    (void)state;
    r.volume_id = (char *)(uintptr_t) "dir:default/www-web-0 \xc3\xa9\xe2\x82\xac";
    n = pack(&r.base, &buf);
    assert_int_equal(
        pb_check_strings(&csi__v1__delete_volume_request__descriptor, buf, n, err, sizeof(err)), 0);
    free(buf);
}

/* A DeleteVolumeRequest with volume_id "keep\0x" written by hand. */
static void test_nul_in_top_level_string(void **state)
{
    static const uint8_t wire[] = {0x0a, 6, 'k', 'e', 'e', 'p', 0, 'x'};
    char err[128] = "";

    (void)state;
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, wire,
                                      sizeof(wire), err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "volume_id"));
    assert_non_null(strstr(err, "NUL"));
}

/* A NUL inside a map value two levels down: CreateVolumeRequest.parameters (field 4). */
static void test_nul_in_nested_map(void **state)
{
    static const uint8_t wire[] = {0x0a, 1, 'n', 0x22, 8, 0x0a, 1, 'k', 0x12, 3, 'v', 0, 'w'};
    char err[128] = "";

    (void)state;
    assert_int_equal(pb_check_strings(&csi__v1__create_volume_request__descriptor, wire,
                                      sizeof(wire), err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "value"));
}

static void test_invalid_utf8(void **state)
{
    static const uint8_t overlong[] = {0x0a, 2, 0xc0, 0xaf};
    static const uint8_t surrogate[] = {0x0a, 3, 0xed, 0xa0, 0x80};
    static const uint8_t truncated[] = {0x0a, 2, 'a', 0xe2};
    char err[128];

    (void)state;
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, overlong,
                                      sizeof(overlong), err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "UTF-8"));
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, surrogate,
                                      sizeof(surrogate), err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, truncated,
                                      sizeof(truncated), err, sizeof(err)),
                     -EINVAL);
    assert_true(pb_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
    assert_false(pb_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_malformed_and_unknown(void **state)
{
    static const uint8_t length_past_end[] = {0x0a, 50, 'a'};
    static const uint8_t bad_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t group[] = {0x0b};
    /* unknown field 15 (length-delimited) holding a NUL: skipped, not judged */
    static const uint8_t unknown[] = {0x7a, 2, 0, 0, 0x0a, 1, 'v'};
    char err[128];

    (void)state;
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, length_past_end,
                                      sizeof(length_past_end), err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "malformed"));
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, bad_varint,
                                      sizeof(bad_varint), err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, group,
                                      sizeof(group), err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pb_check_strings(&csi__v1__delete_volume_request__descriptor, unknown,
                                      sizeof(unknown), err, sizeof(err)),
                     0);
}

static void test_depth_limit(void **state)
{
    /* Topology requirement nesting cannot go deep in CSI, so build nested unknown-free
     * messages through VolumeContentSource? Use a self-check on depth with a crafted chain of
     * CreateVolumeRequest.accessibility_requirements.requisite.segments entries: 3 levels only,
     * which must pass; depth errors need recursion types CSI does not have. */
    static const uint8_t wire[] = {0x3a, 9, 0x0a, 7, 0x0a, 5, 0x0a, 1, 'k', 0x12, 0};
    char err[128];

    (void)state;
    assert_int_equal(pb_check_strings(&csi__v1__create_volume_request__descriptor, wire,
                                      sizeof(wire), err, sizeof(err)),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_request_passes),
        cmocka_unit_test(test_nul_in_top_level_string),
        cmocka_unit_test(test_nul_in_nested_map),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_malformed_and_unknown),
        cmocka_unit_test(test_depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
