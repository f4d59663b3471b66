/* The thread-local error message of util.h. */
#include "util.h"

#include <stdarg.h>

static _Thread_local char last_error[512];

int be_error(int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return r;
}

const char *be_last_error(void)
{
    return last_error;
}

void be_error_clear(void)
{
    last_error[0] = '\0';
}
