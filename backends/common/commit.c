/*
 * Group commit by leader/follower (see commit.h).
 *
 * Flushes are numbered: started is the number of the last flush started, completed the number
 * of the last one completed (flushes run one at a time, so completed == started or
 * started - 1). A caller needs flush number started + 1 when one is running (it may have begun
 * before the caller's changes), or started + 1 when none is (the next one) - the same number
 * either way. It waits until completed reaches it, starting it itself when no flush runs.
 * The result reported is that of the last flush completed: any flush numbered >= the one needed
 * began after the caller's changes, so its success covers them.
 */
#include "commit.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct commit {
    int fd; /* owned: the directory whose filesystem is flushed */
    pthread_mutex_t lock;
    pthread_cond_t done; /* signalled when a flush completes */
    uint64_t started, completed;
    bool running;
    int last_result; /* of flush number completed */
    struct commit_stats stats;
};

int commit_new(const char *path, struct commit **ret)
{
    struct commit *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->fd < 0) {
        int r = -errno;

        free(c);
        return be_error(r, "cannot open %s: %s", path, strerror(-r));
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        close(c->fd);
        free(c);
        return -ENOMEM;
    }
    if (pthread_cond_init(&c->done, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        close(c->fd);
        free(c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

void commit_free(struct commit *c)
{
    if (!c)
        return;
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->lock);
    close(c->fd);
    free(c);
}

int commit_wait(struct commit *c)
{
    uint64_t need;
    int r;

    pthread_mutex_lock(&c->lock);
    c->stats.waits++;
    need = c->started + 1;
    while (c->completed < need) {
        if (c->running) {
            pthread_cond_wait(&c->done, &c->lock);
            continue;
        }
        /* lead: start the next flush for everyone waiting */
        uint64_t mine = ++c->started;

        c->running = true;
        c->stats.flushes++;
        pthread_mutex_unlock(&c->lock);
        r = syncfs(c->fd) < 0 ? -errno : 0;
        pthread_mutex_lock(&c->lock);
        c->running = false;
        c->completed = mine;
        c->last_result = r;
        if (r < 0)
            c->stats.errors++;
        pthread_cond_broadcast(&c->done);
    }
    r = c->last_result;
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return be_error(r, "flushing the filesystem failed: %s", strerror(-r));
    return 0;
}

void commit_get_stats(struct commit *c, struct commit_stats *ret)
{
    pthread_mutex_lock(&c->lock);
    *ret = c->stats;
    pthread_mutex_unlock(&c->lock);
}
