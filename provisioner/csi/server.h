/*
 * The gRPC server on gRPC core's C API: one NEXT completion queue drained by several threads,
 * registered methods, and a pool of worker threads that run the handlers. A completion-queue
 * thread never runs a handler: it re-posts the request for the method and queues the call for
 * a worker; the worker unpacks, runs the handler, packs and starts the reply batch.
 *
 * Ownership: the server owns every call context from the moment its request is posted until the
 * reply batch completes (or the request comes back with success == 0 at shutdown).
 */
#ifndef ORDINAL_SERVER_H
#define ORDINAL_SERVER_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "arena.h"

struct csi_call;

/*
 * A handler: reads req (borrowed, valid for the call), builds the response in the call's arena
 * and stores it in *ret_resp. Returns 0, or a negative errno with csi_call_error() (or
 * be_error()) having set the message.
 */
typedef int (*csi_handler_fn)(struct csi_call *call, void *ctx, const ProtobufCMessage *req,
                              ProtobufCMessage **ret_resp);

struct csi_method {
    const char *path;                          /* "/csi.v1.Node/NodePublishVolume" */
    const ProtobufCMessageDescriptor *request; /* descriptor of the request message */
    csi_handler_fn handler;
};

struct server_config {
    const char *endpoint;             /* "unix:///path" */
    size_t cq_threads;                /* >= 1 */
    size_t workers;                   /* >= 1 */
    const struct csi_method *methods; /* borrowed, n_methods entries, live as long as the server */
    size_t n_methods;
    void *ctx; /* passed to every handler */
    /* Called once the socket serves, before any call can be answered (so a health report is
     * never behind what a client sees); may be NULL. */
    void (*on_serving)(void *ud);
    void *on_serving_ud;
};

struct server;

/* Create, bind and start. NULL on failure (logged). grpc_init() must have been called. */
struct server *server_start(const struct server_config *cfg);
/* The full shutdown: stop accepting, let in-flight calls finish (cancelling them after
 * grace_ms), drain and destroy. Frees srv. */
void server_stop(struct server *srv, int grace_ms);

/* The arena of the call, for building the response. */
struct arena *csi_call_arena(struct csi_call *call);
/* Set the status message of a failing call; returns r. */
int csi_call_error(struct csi_call *call, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A call not attached to any gRPC call, for running handlers directly (unit tests, in-process
 * callers). Free with csi_call_free_detached().
 */
struct csi_call *csi_call_new_detached(void);
void csi_call_free_detached(struct csi_call *call);
/* The status message set on the call by csi_call_error(), or "". */
const char *csi_call_message(const struct csi_call *call);

#endif
