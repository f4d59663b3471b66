/*
 * errno -> gRPC status. The spec's per-RPC rules are applied by the handlers before they get
 * here (DeleteVolume of an unknown id returns 0, ListVolumes' bad token returns -EAGAIN, ...).
 *
 *   EINVAL, ENOTSUP, ENAMETOOLONG   INVALID_ARGUMENT  (bad or unsupported field)
 *   ENOENT                          NOT_FOUND
 *   EEXIST                          ALREADY_EXISTS    (exists, incompatible)
 *   ERANGE                          OUT_OF_RANGE      (capacity range)
 *   ENOSPC, EDQUOT                  RESOURCE_EXHAUSTED
 *   EBUSY, EMEDIUMTYPE, ENOTCONN,   FAILED_PRECONDITION (in use; capability beyond the volume;
 *   ENODEV                                            not staged; no device node on this node)
 *   EAGAIN                          ABORTED           (another operation pending; bad token)
 *   ENOSYS                          UNIMPLEMENTED
 *   ETIMEDOUT                       DEADLINE_EXCEEDED
 *   ECANCELED                       CANCELLED
 *   anything else                   INTERNAL
 */
#include "status.h"

#include <errno.h>

grpc_status_code csi_status_from_errno(int r)
{
    if (r >= 0)
        return GRPC_STATUS_OK;
    switch (-r) {
    case EINVAL:
    case ENOTSUP:
    case ENAMETOOLONG:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case ENOENT:
        return GRPC_STATUS_NOT_FOUND;
    case EEXIST:
        return GRPC_STATUS_ALREADY_EXISTS;
    case ERANGE:
        return GRPC_STATUS_OUT_OF_RANGE;
    case ENOSPC:
    case EDQUOT:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case EBUSY:
    case EMEDIUMTYPE:
    case ENOTCONN:
    case ENODEV:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case EAGAIN:
        return GRPC_STATUS_ABORTED;
    case ENOSYS:
        return GRPC_STATUS_UNIMPLEMENTED;
    case ETIMEDOUT:
        return GRPC_STATUS_DEADLINE_EXCEEDED;
    case ECANCELED:
        return GRPC_STATUS_CANCELLED;
    default:
        return GRPC_STATUS_INTERNAL;
    }
}

const char *csi_status_name(grpc_status_code code)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if ((unsigned)code < sizeof(names) / sizeof(names[0]))
        return names[code];
    return "UNKNOWN";
}
