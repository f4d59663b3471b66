/*
 * The one place where a negative errno becomes a gRPC status code. Handlers and backends
 * return -errno; the meaning of each errno is fixed in backends/backend.h and here.
 */
#ifndef ORDINAL_STATUS_H
#define ORDINAL_STATUS_H

#include <grpc/status.h>

/* The gRPC status for r (0 or a negative errno). */
grpc_status_code csi_status_from_errno(int r);
/* The name of a status code, e.g. "NOT_FOUND". */
const char *csi_status_name(grpc_status_code code);

#endif
