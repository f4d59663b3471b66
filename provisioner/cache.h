/*
 * What the daemon's informer caches keep of each object: the fields some code of the daemon
 * reads, nothing else (client-go's cache transforms do the same). The lists are in cache.c,
 * next to the reads they come from; a new read of a cached object needs its field there.
 */
#ifndef ORDINAL_CACHE_H
#define ORDINAL_CACHE_H

#include <cjson/cJSON.h>

/* The transforms, for tests; cache_install() registers them for every informer. */
void cache_trim_claim(cJSON *obj);
void cache_trim_pv(cJSON *obj);
void cache_trim_node(cJSON *obj);

/* Register the transforms with the Kubernetes client (kube_set_transform). Once, at start-up,
 * before any informer is made. 0 or -errno. */
int cache_install(void);

#endif
