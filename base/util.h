/*
 * Small helpers shared by every module: cleanup attributes, ownership hand-over, and the
 * thread-local error message that explains a negative errno to the RPC boundary.
 *
 * Threading: be_error()/be_last_error() use a thread-local buffer, so a message set by a
 * backend on a worker thread is read back by the service code on the same thread.
 */
#ifndef ORDINAL_UTIL_H
#define ORDINAL_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void *take_ptr_(void **pp)
{
    void *t = *pp;
    *pp = NULL;
    return t;
}
#define TAKE_PTR(p) take_ptr_((void **)&(p))

static inline int take_fd_(int *fd)
{
    int t = *fd;
    *fd = -1;
    return t;
}
#define TAKE_FD(fd) take_fd_(&(fd))

static inline void freep_(void *p)
{
    free(*(void **)p);
}
static inline void closep_(const int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void fclosep_(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep_)
#define _cleanup_close_ _cleanup_(closep_)
#define _cleanup_fclose_ _cleanup_(fclosep_)

/*
 * Record a human-readable explanation for error r (a negative errno) on this thread and return
 * r, so that a backend can write `return be_error(-EEXIST, "volume %s ...", id);`. The message
 * must never contain a secret.
 */
int be_error(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message of the last be_error() on this thread, or "" if none since be_error_clear(). */
const char *be_last_error(void);
void be_error_clear(void);

#endif
