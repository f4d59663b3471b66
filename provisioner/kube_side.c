/* The daemon's Kubernetes side (see kube_side.h). */
#include "kube_side.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_client.h"
#include "inventory.h"
#include "kube_config.h"
#include "kube_leader.h"
#include "log.h"
#include "metrics.h"
#include "provision.h"
#include "reconciler.h"
#include "util.h"

struct kube_side {
    struct kube_client *client;
    struct kube_client *events_client; /* the provisioner's Events: a rate limit of their own */
    struct prov *prov;
    _Atomic(struct inv *) inv; /* node mode; set after prov starts, read by its PV thread */
    struct kube_leader *leader;
    struct rec *rec;     /* controller mode: started before the elector, stopped after it */
    atomic_bool leading; /* set by the elector's callbacks, read by the reconciler */
};

bool kube_side_wanted(const struct kube_side_config *cfg)
{
    return cfg->kubeconfig || getenv("KUBERNETES_SERVICE_HOST");
}

/* The provisioner's PV hook: the inventory looks again soon (before it exists: nothing). */
static void kick_inventory(void *ud)
{
    struct kube_side *k = ud;

    inv_kick(atomic_load(&k->inv));
}

static void started_leading(void *ud)
{
    struct kube_side *k = ud;

    log_info("leader election: this instance leads");
    atomic_store(&k->leading, true);
    rec_resync(k->rec);
}

static void stopped_leading(void *ud)
{
    struct kube_side *k = ud;

    atomic_store(&k->leading, false);
    log_info("leader election: this instance no longer leads");
}

static bool is_leading(void *ud)
{
    return atomic_load(&((struct kube_side *)ud)->leading);
}

/* The Lease name for a driver: every character outside [a-zA-Z0-9-] becomes '-'. */
static void lease_name(char *buf, size_t n, const char *driver)
{
    size_t i;

    for (i = 0; driver[i] && i + 1 < n; i++) {
        char c = driver[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        buf[i] = ok ? c : '-';
    }
    buf[i] = '\0';
    if (i > 0 && buf[i - 1] == '-' && i + 1 < n) {
        buf[i] = 'X';
        buf[i + 1] = '\0';
    }
}

struct kube_side *kube_side_start(const struct kube_side_config *cfg, struct csi_service *svc)
{
    struct kube_side *k = calloc(1, sizeof(*k));
    struct kube_config kc;
    int r;

    if (!k)
        return NULL;
    kube_config_init(&kc);
    if (cfg->qps > 0)
        kc.qps = cfg->qps;
    if (cfg->burst > 0)
        kc.burst = cfg->burst;
    be_error_clear();
    r = kube_config_load(&kc, cfg->kubeconfig, NULL);
    if (r < 0) {
        log_error("Kubernetes configuration: %s",
                  be_last_error()[0] ? be_last_error() : strerror(-r));
        goto fail;
    }
    /* Tuning survives the load. */
    if (cfg->qps > 0)
        kc.qps = cfg->qps;
    if (cfg->burst > 0)
        kc.burst = cfg->burst;
    kube_set_observer(&(const struct kube_observer){.request = metrics_kube_request,
                                                    .watch_restart = metrics_watch_restart});
    k->client = kube_client_new(&kc);
    if (!k->client) {
        log_error("Kubernetes client: %s", be_last_error());
        goto fail;
    }
    {
        char ua[160];

        snprintf(ua, sizeof(ua), "ordinal/%s (%s %.100s)", svc->version,
                 svc->mode == CSI_MODE_NODE ? "node" : "controller", svc->node_id);
        if (kube_client_set_user_agent(k->client, ua) < 0)
            goto fail;
    }
    log_info("Kubernetes API at %s (context %s, qps %.1f, burst %d); connecting in the background",
             kc.server, kc.context ? kc.context : "in-cluster", kc.qps, kc.burst);

    if (svc->mode == CSI_MODE_NODE) {
        /* Events get a client (and so a rate limit) of their own, the same size as the main
         * one, as kube-scheduler does: a burst of events never delays a claim's PV, and a
         * burst of claims never starves the events (docs/API_LOAD.md). */
        k->events_client = kube_client_new(&kc);
        if (!k->events_client) {
            log_error("Kubernetes client (events): %s", be_last_error());
            goto fail;
        }
        {
            char ua[160];

            snprintf(ua, sizeof(ua), "ordinal/%s (node %.100s; events)", svc->version,
                     svc->node_id);
            if (kube_client_set_user_agent(k->events_client, ua) < 0)
                goto fail;
            kube_client_set_quiet_link(k->events_client, true);
        }
        struct prov_config pc = {.client = k->client,
                                 .events_client = k->events_client,
                                 .svc = svc,
                                 .workers = cfg->workers,
                                 .pv_changed = kick_inventory,
                                 .pv_changed_ud = k};
        k->prov = prov_start(&pc);
        if (!k->prov)
            goto fail;
        struct inv_config ic = {.client = k->client, .svc = svc, .pvs = prov_pv_cache(k->prov)};
        atomic_store(&k->inv, inv_start(&ic));
        if (!atomic_load(&k->inv))
            goto fail;
    } else {
        char name[80];
        struct rec_config rc = {.client = k->client,
                                .driver_name = svc->driver_name,
                                .identity = cfg->identity,
                                .leading = is_leading,
                                .leading_ud = k};
        k->rec = rec_start(&rc);
        if (!k->rec)
            goto fail;
        lease_name(name, sizeof(name), svc->driver_name);
        struct kube_leader_config lc = {
            .namespace =
                cfg->lease_namespace ? cfg->lease_namespace : kube_client_namespace(k->client),
            .name = name,
            .identity = cfg->identity,
            .on_started_leading = started_leading,
            .on_stopped_leading = stopped_leading,
            .ud = k,
        };
        k->leader = kube_leader_new(k->client, &lc);
        if (!k->leader || kube_leader_start(k->leader) < 0) {
            log_error("leader election: %s", be_last_error());
            goto fail;
        }
        log_info("leader election: candidate %s for Lease %s/%s", cfg->identity, lc.namespace,
                 name);
    }
    kube_config_release(&kc);
    return k;
fail:
    kube_config_release(&kc);
    kube_side_stop(k);
    return NULL;
}

void kube_side_stop(struct kube_side *k)
{
    if (!k)
        return;
    if (k->leader) {
        /* releases the lease (bounded): before the client shuts down */
        kube_leader_stop(k->leader);
        kube_leader_free(k->leader);
    }
    /* Abort what is in flight (a list the informers wait on, a worker's retries) before joining
     * the threads that wait on it: prompt even when the API server is away or slow. */
    if (k->client)
        kube_client_shutdown(k->client);
    if (k->events_client)
        kube_client_shutdown(k->events_client);
    rec_stop(k->rec); /* after the elector: nothing acts once the lease is released */
    /* The inventory borrows the provisioner's PV cache: it stops first. It is freed only after
     * the provisioner, whose PV informer may have loaded k->inv for kick_inventory just before
     * the exchange. */
    struct inv *inv = atomic_exchange(&k->inv, NULL);
    inv_halt(inv);
    prov_stop(k->prov);
    inv_stop(inv);
    kube_client_free(k->client);
    kube_client_free(k->events_client); /* after prov_stop: its recorder posts through it */
    free(k);
}

void kube_side_status(const struct kube_side *k, struct kube_side_status *ret)
{
    *ret = (struct kube_side_status){0};
    if (!k)
        return;
    ret->configured = true;
    ret->connected = k->client && kube_client_connected(k->client);
    if (k->prov) {
        ret->synced = prov_synced(k->prov);
        ret->events_dropped = prov_events_dropped(k->prov);
    }
    if (k->leader) {
        ret->synced = kube_leader_lease_known(k->leader);
        ret->leader = kube_leader_is_leader(k->leader);
    }
}
