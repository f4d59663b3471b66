/*
 * Fuzz target: Kubernetes quantities (prov_parse_quantity, provisioner/provision.c), as found in
 * a claim's spec.resources. A quantity that parses must format to a canonical quantity that
 * parses back to the same byte count.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "provision.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[128], back[64];
    int64_t n = -1, m = -1;

    if (size >= sizeof(s))
        size = sizeof(s) - 1; /* the parser refuses anything over 64 bytes anyway */
    memcpy(s, data, size);
    s[size] = '\0';
    if (prov_parse_quantity(s, &n) < 0)
        return 0;
    if (n < 0) {
        fprintf(stderr, "\"%s\" parsed to a negative size %" PRId64 "\n", s, n);
        abort();
    }
    prov_format_quantity(n, back, sizeof(back));
    if (prov_parse_quantity(back, &m) < 0 || m != n) {
        fprintf(stderr, "\"%s\" = %" PRId64 " formats as \"%s\" = %" PRId64 "\n", s, n, back, m);
        abort();
    }
    return 0;
}
