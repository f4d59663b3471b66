/*
 * kubectl-ordinal: a kubectl plugin (krew naming: `kubectl ordinal VERB`) that shows every
 * StatefulSet ordinal's pod, claim, volume and store, plans what a scale or delete would do to
 * each ordinal's data, lists Ordinal's volume inventory and reclaims orphaned stores.
 *
 * Exit status: 0 success, 1 an error from the cluster (or not found, or refused), 2 a usage
 * error. Errors go to stderr, results to stdout. Single-threaded.
 */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "kube_client.h"
#include "kube_config.h"
#include "log.h"
#include "util.h"
#include "verbs.h"

static const char *verb_word(enum kctl_verb v)
{
    switch (v) {
    case KCTL_STATUS:
        return "status";
    case KCTL_PLAN_SCALE:
        return "plan scale";
    case KCTL_PLAN_DELETE:
        return "plan delete";
    case KCTL_VOLUMES:
        return "volumes";
    case KCTL_RECLAIM:
        return "reclaim";
    case KCTL_VERSION:
        return "version";
    case KCTL_HELP:
    default:
        return NULL;
    }
}

int main(int argc, char *argv[])
{
    struct kctl_args a;
    struct kube_config cfg;
    struct kube_client *client;
    struct kctl_ctx ctx;
    char err[512];
    int r, rc;

    if (kctl_parse_args(argc, argv, &a, err, sizeof(err)) < 0) {
        const char *w = verb_word(a.verb);
        fprintf(stderr, "error: %s\nSee 'kubectl ordinal %s%s--help' for usage.\n", err, w ? w : "",
                w ? " " : "");
        return KCTL_EXIT_USAGE;
    }
    if (a.help) {
        fputs(kctl_help(a.verb), stdout);
        return 0;
    }
    if (a.verb == KCTL_VERSION) {
        printf("kubectl-ordinal %s\n", ORDINAL_VERSION);
        return 0;
    }

    /* the client's own lines (connection changes, retries) stay quiet; errors are ours */
    log_setup(LOG_ERROR, LOG_TEXT);
    kube_config_init(&cfg);
    r = kube_config_load(&cfg, a.kubeconfig, a.context);
    if (r < 0) {
        fprintf(stderr, "error: %s\n",
                be_last_error()[0] ? be_last_error() : "no kubeconfig (use --kubeconfig)");
        kube_config_release(&cfg);
        return 1;
    }
    if (kube_global_init() < 0) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        kube_config_release(&cfg);
        return 1;
    }
    cfg.max_retries = 2; /* a person is waiting */
    client = kube_client_new(&cfg);
    if (!client) {
        fprintf(stderr, "error: %s\n", be_last_error());
        kube_config_release(&cfg);
        kube_global_cleanup();
        return 1;
    }
    kube_client_set_user_agent(client, "kubectl-ordinal/" ORDINAL_VERSION);
    ctx.client = client;
    ctx.args = &a;
    ctx.ns = a.namespace ? a.namespace : kube_client_namespace(client);

    switch (a.verb) {
    case KCTL_STATUS:
        rc = kctl_status(&ctx);
        break;
    case KCTL_PLAN_SCALE:
    case KCTL_PLAN_DELETE:
        rc = kctl_plan(&ctx);
        break;
    case KCTL_VOLUMES:
        rc = kctl_volumes(&ctx);
        break;
    case KCTL_RECLAIM:
        rc = kctl_reclaim(&ctx);
        break;
    default:
        rc = KCTL_EXIT_USAGE;
        break;
    }
    kube_client_free(client);
    kube_config_release(&cfg);
    kube_global_cleanup();
    return rc;
}
