/*
 * Small helpers for the Kubernetes client (kube_util.h). Nothing here logs or keeps state except
 * the per-thread random generator and the heap trim's once-flag.
 */
#include "kube_util.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static double clock_seconds(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double kube__now(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

double kube__wall(void)
{
    return clock_seconds(CLOCK_REALTIME);
}

int kube__cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int r;

    r = pthread_condattr_init(&attr);
    if (r != 0)
        return -r;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    r = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return -r;
}

void kube__cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, double deadline)
{
    struct timespec ts;
    double whole;

    if (deadline > 1e12)
        deadline = 1e12;
    whole = (double)(long long)deadline;
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = (long)((deadline - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
    if (ts.tv_nsec < 0)
        ts.tv_nsec = 0;
    pthread_cond_timedwait(cond, mu, &ts);
}

/* Whether the process allocates with a sanitizer's allocator (ASan, TSan, MSan interpose malloc
 * and leave glibc's heap all but unused). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_INTERPOSED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define HEAP_INTERPOSED 1
#endif
#endif

#ifndef HEAP_INTERPOSED
static pthread_once_t trim_once = PTHREAD_ONCE_INIT;
static _Thread_local bool trimmed_in_once;

static void first_trim(void)
{
    malloc_trim(0);
    trimmed_in_once = true;
}
#endif

void kube__trim_heap(void)
{
#ifndef HEAP_INTERPOSED
    /* glibc sets up its allocator lazily, in whichever thread calls into it first, and that
     * set-up is not safe from two threads at once: each makes the main arena its own without
     * counting itself, and the second of them to exit aborts ("a->attached_threads > 0"). The
     * daemon's main thread has always allocated before any informer runs, but a program whose
     * malloc is not glibc's never has, so the first call is made by one thread only. */
    pthread_once(&trim_once, first_trim);
    if (trimmed_in_once)
        trimmed_in_once = false;
    else
        malloc_trim(0);
#endif
}

static _Thread_local uint64_t rand_state;

double kube__rand(void)
{
    uint64_t x;

    if (rand_state == 0) {
        if (getrandom(&rand_state, sizeof(rand_state), 0) != (ssize_t)sizeof(rand_state) ||
            rand_state == 0)
            rand_state = (uint64_t)(kube__now() * 1e9) | 1;
    }
    /* xorshift64* */
    x = rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rand_state = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

int kube__format_microtime(double wall, char *buf, size_t n)
{
    struct tm tm;
    time_t secs;
    long usec;
    int w;

    if (wall < 0 || wall > 253402300799.0 || n < 28)
        return -EINVAL;
    secs = (time_t)wall;
    usec = (long)((wall - (double)secs) * 1e6);
    if (usec > 999999)
        usec = 999999;
    if (!gmtime_r(&secs, &tm))
        return -EINVAL;
    w = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
    return w > 0 && (size_t)w < n ? 0 : -EINVAL;
}

static int digits(const char *s, int n, int *ret)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return 0;
}

int kube__parse_time(const char *s, double *ret)
{
    int year, mon, day, hour, min, sec, off = 0;
    double frac = 0;
    struct tm tm = {0};
    const char *p;
    time_t t;

    if (!s || strlen(s) < 20)
        return -EINVAL;
    if (digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &mon) || s[7] != '-' ||
        digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &hour) ||
        s[13] != ':' || digits(s + 14, 2, &min) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -EINVAL;
    p = s + 19;
    if (*p == '.') {
        double scale = 0.1;

        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        for (int i = 0; *p >= '0' && *p <= '9'; p++, i++) {
            if (i >= 9)
                return -EINVAL;
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;

        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ret = (double)t - off + frac;
    return 0;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kube__base64_decode(const char *in, size_t len, unsigned char **ret, size_t *ret_len)
{
    _cleanup_free_ unsigned char *out = malloc(len / 4 * 3 + 4);
    uint32_t acc = 0;
    size_t o = 0;
    int bits = 0, pad = 0;

    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;

        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        v = b64_value(c);
        if (v < 0 || pad)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (pad > 2 || bits >= 6)
        return -EINVAL;
    out[o] = 0;
    *ret_len = o;
    *ret = TAKE_PTR(out);
    return 0;
}

int kube__read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0, cap = 0;

    if (fd < 0)
        return -errno;
    for (;;) {
        ssize_t k;

        if (len + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb;

            if (cap > max + 1)
                return -EFBIG;
            nb = realloc(buf, ncap);
            if (!nb)
                return -ENOMEM;
            buf = nb;
            cap = ncap;
        }
        k = read(fd, buf + len, cap - len - 1);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            break;
        len += (size_t)k;
        if (len > max)
            return -EFBIG;
    }
    buf[len] = 0;
    *ret_len = len;
    *ret = TAKE_PTR(buf);
    return 0;
}

static size_t hash_key(const char *key)
{
    uint64_t h = 1469598103934665603ULL;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

void kube__map_init(struct kube__map *m)
{
    memset(m, 0, sizeof(*m));
}

void kube__map_release(struct kube__map *m, void (*free_val)(void *))
{
    for (size_t b = 0; b < m->nbuckets; b++) {
        struct kube__map_node *n = m->buckets[b];

        while (n) {
            struct kube__map_node *next = n->next;

            if (free_val)
                free_val(n->val);
            free(n->key);
            free(n);
            n = next;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

void *kube__map_get(const struct kube__map *m, const char *key)
{
    if (m->nbuckets == 0)
        return NULL;
    for (struct kube__map_node *n = m->buckets[hash_key(key) % m->nbuckets]; n; n = n->next)
        if (strcmp(n->key, key) == 0)
            return n->val;
    return NULL;
}

static int grow(struct kube__map *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
    struct kube__map_node **b = calloc(nb, sizeof(*b));

    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct kube__map_node *n = m->buckets[i];

        while (n) {
            struct kube__map_node *next = n->next;
            size_t h = hash_key(n->key) % nb;

            n->next = b[h];
            b[h] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

int kube__map_put(struct kube__map *m, const char *key, void *val, void **ret_old)
{
    struct kube__map_node *n;
    size_t h;

    if (ret_old)
        *ret_old = NULL;
    if (m->nbuckets) {
        for (n = m->buckets[hash_key(key) % m->nbuckets]; n; n = n->next)
            if (strcmp(n->key, key) == 0) {
                if (ret_old)
                    *ret_old = n->val;
                n->val = val;
                return 0;
            }
    }
    if (m->count >= m->nbuckets * 2 && grow(m) < 0)
        return -ENOMEM;
    n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->key = strdup(key);
    if (!n->key) {
        free(n);
        return -ENOMEM;
    }
    n->val = val;
    h = hash_key(key) % m->nbuckets;
    n->next = m->buckets[h];
    m->buckets[h] = n;
    m->count++;
    return 0;
}

void *kube__map_del(struct kube__map *m, const char *key)
{
    struct kube__map_node **pp;

    if (m->nbuckets == 0)
        return NULL;
    for (pp = &m->buckets[hash_key(key) % m->nbuckets]; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0) {
            struct kube__map_node *n = *pp;
            void *val = n->val;

            *pp = n->next;
            free(n->key);
            free(n);
            m->count--;
            return val;
        }
    return NULL;
}

struct kube__map_node *kube__map_next(const struct kube__map *m, size_t *bucket,
                                      struct kube__map_node *it)
{
    if (it && it->next)
        return it->next;
    if (it)
        (*bucket)++;
    for (; *bucket < m->nbuckets; (*bucket)++)
        if (m->buckets[*bucket])
            return m->buckets[*bucket];
    return NULL;
}
