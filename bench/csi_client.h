/*
 * A small CSI client on gRPC core's C API and protobuf-c: one channel to a driver's unix socket,
 * and one generic blocking unary call. It knows nothing of Ordinal: any CSI driver will do.
 *
 * Model: a struct csi_channel (one HTTP/2 connection, thread-safe, shared by every thread) and
 * one struct csi_caller per thread (a completion queue of its own; a caller runs one call at a
 * time and must not be used by two threads at once). csi_call() starts the six-op unary batch
 * and waits on the caller's queue for its tag, so there is never more than one event pending on
 * a queue.
 *
 * Life cycle: csi_client_init() before anything else (it calls grpc_init()), then channels and
 * callers; free every caller and channel, then csi_client_shutdown() (grpc_shutdown()).
 * grpc_init/grpc_shutdown are reference counted, so nested users (tests) may call both.
 */
#ifndef ORDINAL_BENCH_CSI_CLIENT_H
#define ORDINAL_BENCH_CSI_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Full method paths, as gRPC puts them on the wire. */
#define CSI_IDENTITY_PROBE "/csi.v1.Identity/Probe"
#define CSI_IDENTITY_GET_PLUGIN_INFO "/csi.v1.Identity/GetPluginInfo"
#define CSI_CONTROLLER_CREATE_VOLUME "/csi.v1.Controller/CreateVolume"
#define CSI_CONTROLLER_DELETE_VOLUME "/csi.v1.Controller/DeleteVolume"
#define CSI_CONTROLLER_LIST_VOLUMES "/csi.v1.Controller/ListVolumes"
#define CSI_NODE_STAGE_VOLUME "/csi.v1.Node/NodeStageVolume"
#define CSI_NODE_UNSTAGE_VOLUME "/csi.v1.Node/NodeUnstageVolume"
#define CSI_NODE_PUBLISH_VOLUME "/csi.v1.Node/NodePublishVolume"
#define CSI_NODE_UNPUBLISH_VOLUME "/csi.v1.Node/NodeUnpublishVolume"
#define CSI_NODE_GET_VOLUME_STATS "/csi.v1.Node/NodeGetVolumeStats"
#define CSI_NODE_GET_CAPABILITIES "/csi.v1.Node/NodeGetCapabilities"

/* gRPC status codes 0..16 (grpc_status_code); CSI_CODE_COUNT sizes per-code tables. */
#define CSI_CODE_OK 0
#define CSI_CODE_DEADLINE_EXCEEDED 4
#define CSI_CODE_UNAVAILABLE 14
#define CSI_CODE_COUNT 17

/* Largest response accepted; CSI answers are small (a ListVolumes page of 1,000 entries is
 * about 150 KiB). */
#define CSI_MAX_RESPONSE_BYTES (16 << 20)

struct csi_status {
    int code;          /* grpc_status_code */
    char message[256]; /* status details, truncated, NUL-terminated */
};

struct csi_channel_opts {
    int reconnect_backoff_ms; /* > 0: initial and maximum reconnect backoff (a driver that
                                 restarts is found again quickly); 0: gRPC's defaults */
};

struct csi_channel;
struct csi_caller;

/* grpc_init(); call once per user before any other function here. */
void csi_client_init(void);
/* grpc_shutdown(); every channel and caller of this user must be freed before. */
void csi_client_shutdown(void);

/* The name of a status code ("NOT_FOUND"), or "CODE_<n>" for one out of range (static storage
 * or buf). */
const char *csi_code_name(int code);

/*
 * A channel to endpoint: "unix:///path", "unix:/path" or a plain absolute path (taken as a unix
 * socket). Connects lazily, at the first call. Returns NULL on a malformed endpoint (errno
 * EINVAL) or when out of memory (ENOMEM). opts may be NULL. The caller owns the result.
 */
struct csi_channel *csi_channel_new(const char *endpoint, const struct csi_channel_opts *opts);
void csi_channel_free(struct csi_channel *ch);

/* A completion queue for one thread, borrowing ch (which must outlive it). NULL when out of
 * memory. */
struct csi_caller *csi_caller_new(struct csi_channel *ch);
void csi_caller_free(struct csi_caller *c);

/*
 * One unary call: packs req, sends it to method (a full path, e.g. CSI_NODE_STAGE_VOLUME) with
 * a deadline of timeout_ms from now (<= 0: none), waits for the status.
 * wait_for_ready: queue the call while the channel connects instead of failing at once with
 * UNAVAILABLE when the driver is not there.
 *
 * Returns 0 when the call completed, whatever its status: *ret_status holds the code and
 * message, and *ret_resp (if ret_resp is not NULL) is the unpacked response when the code is OK
 * and NULL otherwise; the caller frees it with protobuf_c_message_free_unpacked(resp, NULL).
 * Returns -ENOMEM, -EIO (the batch could not be started) or -EBADMSG (status OK but the
 * response is missing, too large, or does not unpack as resp_desc), writing nothing.
 */
int csi_call(struct csi_caller *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, bool wait_for_ready,
             struct csi_status *ret_status, ProtobufCMessage **ret_resp);

#endif
