/* Unit tests: provisioner/status.c, the errno -> gRPC status table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "status.h"

static void test_table(void **state)
{
    static const struct {
        int r;
        grpc_status_code code;
    } cases[] = {
        {0, GRPC_STATUS_OK},
        {5, GRPC_STATUS_OK},
        {-EINVAL, GRPC_STATUS_INVALID_ARGUMENT},
        {-ENOTSUP, GRPC_STATUS_INVALID_ARGUMENT},
        {-ENAMETOOLONG, GRPC_STATUS_INVALID_ARGUMENT},
        {-ENOENT, GRPC_STATUS_NOT_FOUND},
        {-EEXIST, GRPC_STATUS_ALREADY_EXISTS},
        {-ERANGE, GRPC_STATUS_OUT_OF_RANGE},
        {-ENOSPC, GRPC_STATUS_RESOURCE_EXHAUSTED},
        {-EDQUOT, GRPC_STATUS_RESOURCE_EXHAUSTED},
        {-EBUSY, GRPC_STATUS_FAILED_PRECONDITION},
        {-EMEDIUMTYPE, GRPC_STATUS_FAILED_PRECONDITION},
        {-ENOTCONN, GRPC_STATUS_FAILED_PRECONDITION},
        {-ENODEV, GRPC_STATUS_FAILED_PRECONDITION},
        {-EAGAIN, GRPC_STATUS_ABORTED},
        {-ENOSYS, GRPC_STATUS_UNIMPLEMENTED},
        {-ETIMEDOUT, GRPC_STATUS_DEADLINE_EXCEEDED},
        {-ECANCELED, GRPC_STATUS_CANCELLED},
        {-EIO, GRPC_STATUS_INTERNAL},
        {-ENOMEM, GRPC_STATUS_INTERNAL},
        {-EACCES, GRPC_STATUS_INTERNAL},
        {-9999, GRPC_STATUS_INTERNAL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(csi_status_from_errno(cases[i].r), cases[i].code);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(csi_status_name(GRPC_STATUS_OK), "OK");
    assert_string_equal(csi_status_name(GRPC_STATUS_NOT_FOUND), "NOT_FOUND");
    assert_string_equal(csi_status_name(GRPC_STATUS_ABORTED), "ABORTED");
    assert_string_equal(csi_status_name(GRPC_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_string_equal(csi_status_name((grpc_status_code)99), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
