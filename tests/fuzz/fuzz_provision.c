/*
 * Fuzz target: the provisioner's decisions on a claim, its class and a PV, as pure functions
 * (provisioner/provision.c): prov_claim_decide, prov_build_create, prov_build_pv and
 * prov_owner_decide. The input is three JSON documents (claim, class, the PV that owns the
 * claim's store) separated by "\0\0\0\n"; a missing or unparsable one is absent (NULL). The
 * last byte picks the result of reading the owner PV (found, gone, an API error).
 *
 * Checked beyond crashes and leaks: PROVISION only for a claim selected for this node; a
 * request that builds has a positive size and names the claim in its parameters; the PV made
 * from it is ours (driver, claimRef uid, name pvc-<uid>) and its capacity parses back to the
 * volume's size; an owner PV that does not hold the store never makes the claim wait for it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "provision.h"

#define DRIVER "ordinal.csi.dev"
#define NODE "node-1"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static const char *str_at(const cJSON *o, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);

    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c)
        x = cJSON_GetObjectItemCaseSensitive(x, c);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_pv(const cJSON *claim, const cJSON *sc, const struct prov_create_args *a)
{
    Csi__V1__Volume vol;
    cJSON *pv;
    const char *uid = str_at(claim, "metadata", "uid", NULL), *cap;
    int64_t bytes = -1;

    csi__v1__volume__init(&vol);
    vol.volume_id = (char *)(uintptr_t) "dir:ns/claim";
    vol.capacity_bytes = a->range.required_bytes;
    pv = prov_build_pv(DRIVER, "1-" DRIVER "-" NODE, claim, sc, "class", &vol, a);
    if (!pv)
        return; /* out of memory */
    CHECK(strcmp(str_at(pv, "spec", "csi", "driver"), DRIVER) == 0, "PV of another driver");
    CHECK(strncmp(str_at(pv, "metadata", "name", NULL), "pvc-", 4) == 0, "PV name");
    if (uid && strlen(uid) < 200) {
        CHECK(strcmp(str_at(pv, "metadata", "name", NULL) + 4, uid) == 0, "PV name is not pvc-uid");
        CHECK(str_at(pv, "spec", "claimRef", "uid") &&
                  strcmp(str_at(pv, "spec", "claimRef", "uid"), uid) == 0,
              "claimRef uid");
    }
    cap = str_at(pv, "spec", "capacity", "storage");
    CHECK(cap && prov_parse_quantity(cap, &bytes) == 0 && bytes == vol.capacity_bytes,
          "PV capacity %s is not %lld bytes", cap ? cap : "(none)", (long long)vol.capacity_bytes);
    char *text = cJSON_PrintUnformatted(pv);
    free(text);
    cJSON_Delete(pv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *doc[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    cJSON *claim, *sc, *owner;
    struct prov_create_args *a;
    char msg[512];
    int owner_rc;

    if (size < 1)
        return 0;
    owner_rc = data[size - 1] % 3 == 0 ? 0 : data[size - 1] % 3 == 1 ? -ENOENT : -EIO;
    size--;
    for (int i = 0; i < 3 && size > 0; i++) {
        size_t cut = fuzz_cut(data, size);
        doc[i] = (const char *)data;
        len[i] = cut;
        if (cut == size)
            break;
        data += cut + 4;
        size -= cut + 4;
    }
    claim = doc[0] ? cJSON_ParseWithLength(doc[0], len[0]) : NULL;
    sc = doc[1] ? cJSON_ParseWithLength(doc[1], len[1]) : NULL;
    owner = doc[2] ? cJSON_ParseWithLength(doc[2], len[2]) : NULL;
    if (!claim)
        claim = cJSON_CreateObject();

    enum prov_claim_step step = prov_claim_decide(DRIVER, NODE, claim, sc);
    if (step == PROV_CLAIM_PROVISION) {
        const char *sel =
            str_at(claim, "metadata", "annotations", "volume.kubernetes.io/selected-node");
        CHECK(sel && strcmp(sel, NODE) == 0, "PROVISION for a claim not selected for this node");
    }

    a = malloc(sizeof(*a));
    if (a && prov_build_create(NODE, claim, sc, a, msg, sizeof(msg)) == 0) {
        bool names_claim = false;

        CHECK(a->range.required_bytes > 0, "a request of %lld bytes",
              (long long)a->range.required_bytes);
        for (size_t i = 0; i < a->req.n_parameters; i++)
            if (strcmp(a->req.parameters[i]->key, "csi.storage.k8s.io/pvc/name") == 0)
                names_claim = true;
        CHECK(names_claim, "a request without the claim's name");
        /* the request must be one the CSI service can read: it packs and unpacks */
        size_t n = protobuf_c_message_get_packed_size(&a->req.base);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf) {
            CHECK(protobuf_c_message_pack(&a->req.base, buf) == n, "pack");
            ProtobufCMessage *back = protobuf_c_message_unpack(
                &csi__v1__create_volume_request__descriptor, NULL, n, buf);
            CHECK(back, "the request does not unpack");
            protobuf_c_message_free_unpacked(back, NULL);
            free(buf);
        }
        check_pv(claim, sc, a);
    }
    free(a);

    const char *uid = str_at(claim, "metadata", "uid", NULL);
    enum prov_owner o = prov_owner_decide(DRIVER, "pvc-mine", uid, "pvc-earlier", "dir:ns/claim",
                                          owner_rc, owner_rc == 0 ? owner : NULL);
    if (owner_rc == 0 && owner) {
        const char *drv = str_at(owner, "spec", "csi", "driver");
        const char *h = str_at(owner, "spec", "csi", "volumeHandle");
        if (!drv || !h || strcmp(drv, DRIVER) != 0 || strcmp(h, "dir:ns/claim") != 0)
            CHECK(o == PROV_OWNER_ADOPT, "a PV that does not hold the store decides %d", (int)o);
    }
    if (owner_rc == -ENOENT)
        CHECK(o == PROV_OWNER_ADOPT, "a gone owner decides %d", (int)o);
    /* a store of the claim's own name is always its own */
    CHECK(prov_owner_decide(DRIVER, "pvc-mine", uid, "pvc-mine", "dir:ns/claim", owner_rc, owner) ==
              PROV_OWNER_NEW,
          "own store");

    cJSON_Delete(claim);
    cJSON_Delete(sc);
    cJSON_Delete(owner);
    return 0;
}
