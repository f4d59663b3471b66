/*
 * CSI client on gRPC core (see csi_client.h for the model).
 *
 * Ownership in one unary call (grpc-core.md §4):
 *   - the request byte buffer is ours: kept alive until the batch's tag comes back, then
 *     destroyed (send_message only takes the slices);
 *   - the slice the request was packed into is unref'd right after grpc_raw_byte_buffer_create
 *     (which took its own reference);
 *   - the received message buffer, the status details slice and the two metadata arrays are
 *     ours after the tag: destroyed / unref'd once, whether the call succeeded or not;
 *   - the call holds one reference, dropped after its only batch completed.
 *
 * Threading: a caller's queue is used by the one thread that owns the caller. Only one tag is
 * ever pending on it, so grpc_completion_queue_next() returns that tag (or, never expected,
 * GRPC_QUEUE_TIMEOUT, which cannot happen with an infinite deadline).
 */
#include "csi_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

struct csi_channel {
    grpc_channel *channel; /* owned */
};

struct csi_caller {
    struct csi_channel *ch;    /* borrowed */
    grpc_completion_queue *cq; /* owned, GRPC_CQ_NEXT */
};

void csi_client_init(void)
{
    grpc_init();
}

void csi_client_shutdown(void)
{
    grpc_shutdown();
}

const char *csi_code_name(int code)
{
    static const char *const names[CSI_CODE_COUNT] = {
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

    if (code >= 0 && code < CSI_CODE_COUNT)
        return names[code];
    return "UNKNOWN_CODE";
}

struct csi_channel *csi_channel_new(const char *endpoint, const struct csi_channel_opts *opts)
{
    /* grpc_arg keys are char *: keep them in writable arrays (-Wwrite-strings). */
    static char key_local_pool[] = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    static char key_retries[] = GRPC_ARG_ENABLE_RETRIES;
    static char key_max_recv[] = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    static char key_initial[] = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
    static char key_min[] = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
    static char key_max[] = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    grpc_arg args[6];
    grpc_channel_args chargs;
    grpc_channel_credentials *creds;
    struct csi_channel *ch;
    char target[4096];
    size_t n = 0;
    int len;

    if (!endpoint || !endpoint[0]) {
        errno = EINVAL;
        return NULL;
    }
    if (strncmp(endpoint, "unix:", 5) == 0)
        len = snprintf(target, sizeof(target), "%s", endpoint);
    else if (endpoint[0] == '/')
        len = snprintf(target, sizeof(target), "unix:%s", endpoint);
    else
        len = -1;
    /* "unix:" alone, or a path that does not fit a sockaddr_un, is no endpoint. */
    if (len < 0 || (size_t)len >= sizeof(target) || strlen(target) <= strlen("unix:")) {
        errno = EINVAL;
        return NULL;
    }

    /* A channel of its own (no global subchannel pool): a fresh channel gets a fresh
     * connection with no back-off history, which the start-up probe relies on. */
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = key_local_pool;
    args[n++].value.integer = 1;
    /* A benchmark counts what the driver answers: gRPC must not retry behind our back. */
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = key_retries;
    args[n++].value.integer = 0;
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = key_max_recv;
    args[n++].value.integer = CSI_MAX_RESPONSE_BYTES;
    if (opts && opts->reconnect_backoff_ms > 0) {
        args[n].type = GRPC_ARG_INTEGER;
        args[n].key = key_initial;
        args[n++].value.integer = opts->reconnect_backoff_ms;
        args[n].type = GRPC_ARG_INTEGER;
        args[n].key = key_min;
        args[n++].value.integer = opts->reconnect_backoff_ms;
        args[n].type = GRPC_ARG_INTEGER;
        args[n].key = key_max;
        args[n++].value.integer = opts->reconnect_backoff_ms;
    }
    chargs.num_args = n;
    chargs.args = args;

    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    creds = grpc_insecure_credentials_create();
    if (!creds) {
        free(ch);
        errno = ENOMEM;
        return NULL;
    }
    ch->channel = grpc_channel_create(target, creds, &chargs);
    grpc_channel_credentials_release(creds); /* the channel keeps its own reference */
    if (!ch->channel) {
        free(ch);
        errno = ENOMEM;
        return NULL;
    }
    return ch;
}

void csi_channel_free(struct csi_channel *ch)
{
    if (!ch)
        return;
    grpc_channel_destroy(ch->channel);
    free(ch);
}

struct csi_caller *csi_caller_new(struct csi_channel *ch)
{
    struct csi_caller *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->ch = ch;
    c->cq = grpc_completion_queue_create_for_next(NULL);
    if (!c->cq) {
        free(c);
        return NULL;
    }
    return c;
}

void csi_caller_free(struct csi_caller *c)
{
    grpc_event ev;

    if (!c)
        return;
    /* No call is pending (csi_call waits for its tag), so the drain sees only the shutdown. */
    grpc_completion_queue_shutdown(c->cq);
    do {
        ev = grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } while (ev.type != GRPC_QUEUE_SHUTDOWN);
    grpc_completion_queue_destroy(c->cq);
    free(c);
}

/* Packs msg into a new byte buffer (the caller owns it, grpc_byte_buffer_destroy), or NULL. */
static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(size);
    grpc_byte_buffer *bb;

    if (size > 0)
        protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice); /* the buffer took its own reference */
    return bb;
}

/* Unpacks bb (borrowed) as desc; NULL when it does not parse or is larger than the cap. */
static ProtobufCMessage *unpack_message(grpc_byte_buffer *bb,
                                        const ProtobufCMessageDescriptor *desc)
{
    grpc_byte_buffer_reader reader;
    ProtobufCMessage *msg = NULL;
    grpc_slice all;

    if (grpc_byte_buffer_length(bb) > CSI_MAX_RESPONSE_BYTES)
        return NULL;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return msg;
}

int csi_call(struct csi_caller *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, bool wait_for_ready,
             struct csi_status *ret_status, ProtobufCMessage **ret_resp)
{
    grpc_metadata_array initial_md, trailing_md;
    grpc_byte_buffer *send = NULL, *recv = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    ProtobufCMessage *resp = NULL;
    gpr_timespec deadline;
    grpc_slice method_slice;
    grpc_call_error err;
    grpc_op ops[6];
    grpc_call *call;
    grpc_event ev;
    size_t dlen;
    int tag = 0; /* its address is the tag; it lives until the tag is back */
    int r = 0;

    if (timeout_ms > 0)
        deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    else
        deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);

    send = pack_message(req);
    if (!send)
        return -ENOMEM;
    /* "method and host need only live through the invocation of this function" */
    method_slice = grpc_slice_from_copied_string(method);
    call = grpc_channel_create_call(c->ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                    method_slice, NULL, deadline, NULL);
    grpc_slice_unref(method_slice);
    if (!call) {
        grpc_byte_buffer_destroy(send);
        return -ENOMEM;
    }

    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                                        GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET
                                  : 0;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = NULL;

    err = grpc_call_start_batch(call, ops, 6, &tag, NULL);
    if (err != GRPC_CALL_OK) {
        /* "no state associated with 'call' is changed": no tag will come, nothing was filled */
        r = -EIO;
        goto out;
    }
    for (;;) {
        ev = grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag == &tag)
            break;
        /* Only our tag is ever pending, and nobody shuts the queue down while its owner is
         * in a call: anything else is a broken invariant, and freeing buffers that gRPC may
         * still use would be worse than stopping. */
        if (ev.type != GRPC_OP_COMPLETE)
            abort();
    }
    /* A client batch with RECV_STATUS_ON_CLIENT always completes with success (the status
     * carries any failure); ev.success == 0 would mean a broken batch: report it as such. */
    if (!ev.success) {
        r = -EIO;
        goto out;
    }
    if (status == GRPC_STATUS_OK) {
        resp = recv ? unpack_message(recv, resp_desc) : NULL;
        if (!resp) {
            r = -EBADMSG;
            goto out;
        }
    }
    ret_status->code = (int)status;
    dlen = GRPC_SLICE_LENGTH(details);
    if (dlen >= sizeof(ret_status->message))
        dlen = sizeof(ret_status->message) - 1;
    memcpy(ret_status->message, GRPC_SLICE_START_PTR(details), dlen);
    ret_status->message[dlen] = '\0'; /* our copy: the slice itself is never written */
    if (ret_resp) {
        *ret_resp = resp;
        resp = NULL;
    }
out:
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    grpc_slice_unref(details);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_call_unref(call);
    return r;
}
