/*
 * Fuzz target: a Kubernetes watch stream (kube/kube_watch.c). The input is the stream; it is fed
 * to the framer once whole and once in chunks whose sizes come from the input itself, and the
 * two must deliver the same lines and end with the same result (framing must not depend on
 * where the network cut the stream). Each line is then decoded as a watch event; objects are
 * keyed as the informer's store would, ERROR objects decoded as Status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "kube_client.h"
#include "kube_informer.h"
#include "kube_watch.h"

#define MAX_LINE 4096 /* small, so that the over-long line path is reached */

struct lines {
    uint64_t hash; /* FNV-1a over every delivered line and its length */
    size_t n;
};

static int on_line(void *ud, const char *line, size_t len)
{
    struct lines *l = ud;

    for (size_t i = 0; i < len; i++)
        l->hash = (l->hash ^ (uint8_t)line[i]) * 1099511628211ull;
    l->hash = (l->hash ^ len) * 1099511628211ull;
    l->n++;

    struct kube_event ev = {0};
    if (kube_event_parse(line, len, &ev) == 0) {
        char key[512];
        struct kube_status st;

        if (ev.type == KUBE_EVENT_ERROR) {
            (void)kube_status_decode(410, ev.object, &st);
        } else if (ev.type != KUBE_EVENT_BOOKMARK) {
            struct kube_store *s = kube_store_new(true);
            if (s) {
                (void)kube_store_key(s, ev.object, key, sizeof(key));
                kube_store_free(s);
            }
        }
        kube_event_release(&ev);
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_framer f;
    struct lines whole = {.hash = 14695981039346656037ull}, cut = whole;
    uint32_t seed = 0;
    int r1, r2 = 0;

    for (size_t i = 0; i < size && i < 4; i++)
        seed = seed << 8 | data[i];

    kube_framer_init(&f, MAX_LINE);
    r1 = kube_framer_feed(&f, (const char *)data, size, on_line, &whole);
    kube_framer_release(&f);

    kube_framer_init(&f, MAX_LINE);
    for (size_t off = 0; off < size && r2 == 0;) {
        size_t n = 1 + fuzz_next(&seed) % 64;
        if (n > size - off)
            n = size - off;
        r2 = kube_framer_feed(&f, (const char *)data + off, n, on_line, &cut);
        off += n;
    }
    kube_framer_release(&f);

    if (r1 != r2 || whole.n != cut.n || whole.hash != cut.hash) {
        fprintf(stderr, "framing depends on chunking: whole %d/%zu lines, chunked %d/%zu\n", r1,
                whole.n, r2, cut.n);
        abort();
    }
    return 0;
}
