/*
 * Fuzz target: the API server's error answers (kube_status_decode, kube/kube_client.c): a
 * Status object or any other body with any HTTP code. The first two bytes are the HTTP code
 * (mod 600), the rest the body. The result must be 0 exactly for 2xx, else a negative errno;
 * reason and message stay NUL-terminated in their fields; retryAfterSeconds stays in 0..3600.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "kube_client.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_status st;
    cJSON *body;
    long http;
    int r;

    if (size < 2)
        return 0;
    http = (data[0] << 8 | data[1]) % 600;
    body = cJSON_ParseWithLength((const char *)data + 2, size - 2);
    r = kube_status_decode(http, body, &st);
    if ((http >= 200 && http < 300) != (r == 0) || r > 0 || r < -4095) {
        fprintf(stderr, "HTTP %ld decodes to %d\n", http, r);
        abort();
    }
    if (memchr(st.reason, 0, sizeof(st.reason)) == NULL ||
        memchr(st.message, 0, sizeof(st.message)) == NULL || st.retry_after < 0 ||
        st.retry_after > 3600) {
        fprintf(stderr, "HTTP %ld: a field out of its bounds\n", http);
        abort();
    }
    cJSON_Delete(body);
    return 0;
}
