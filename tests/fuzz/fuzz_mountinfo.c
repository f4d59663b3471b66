/*
 * Fuzz target: /proc/self/mountinfo text (mnt_table_parse, backends/common/mount.c) and CSI mount
 * flags (mnt_flags_parse, mnt_flag_describe). The input is mountinfo text; every entry parsed
 * must be found again by its mount point, and each line is also read as a list of mount flags.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mount.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void flags_of_lines(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    const char *flags[16];
    size_t n = 0;
    unsigned long bits;
    char buf[96];

    if (!copy)
        return;
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (char *save = NULL, *tok = strtok_r(copy, "\n", &save); tok && n < 16;
         tok = strtok_r(NULL, "\n", &save))
        flags[n++] = tok;
    if (mnt_flags_parse(flags, n, &bits) == 0 && (bits & 0x1000 /* MS_BIND */)) {
        fprintf(stderr, "mnt_flags_parse returned MS_BIND\n");
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        mnt_flag_describe(flags[i], i, buf, sizeof(buf));
        if (strlen(buf) >= sizeof(buf))
            abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mnt_table t;

    if (mnt_table_parse((const char *)data, size, &t) == 0) {
        for (size_t i = 0; i < t.n; i++) {
            const struct mnt_entry *e = mnt_table_find(&t, t.entries[i].mount_point);
            if (!e || strcmp(e->mount_point, t.entries[i].mount_point) != 0) {
                fprintf(stderr, "entry %zu (%s) not found by its mount point\n", i,
                        t.entries[i].mount_point);
                abort();
            }
        }
        mnt_table_release(&t);
    }
    flags_of_lines(data, size);
    return 0;
}
