/*
 * Shared bits of the libFuzzer targets: quiet logging, a deterministic split of one input into
 * pieces. Header-only so that every target stays one file.
 */
#ifndef ORDINAL_FUZZ_COMMON_H
#define ORDINAL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Errors only: a target runs millions of inputs and most of them are refused with a log line. */
static inline void fuzz_quiet(void)
{
    log_setup(LOG_ERROR, LOG_TEXT);
}

/* A small deterministic generator (xorshift32) for chunk sizes, seeded from the input. */
static inline uint32_t fuzz_next(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/*
 * Cut data at the first occurrence of the 4-byte separator "\0\0\0\n" (an unlikely sequence in
 * text inputs): returns the number of bytes before it
 *, size when absent. Used by targets that take two or three documents from one input.
 */
static inline size_t fuzz_cut(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 4 <= size; i++)
        if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 0 && data[i + 3] == '\n')
            return i;
    return size;
}

#endif
