/*
 * exec_run(): posix_spawn, pipes drained with poll(), capped output, timeout with SIGKILL of
 * the child's process group. See exec.h.
 */
#include "exec.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXEC_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
#define ENV_MAX 8

struct capbuf {
    char *data; /* owned */
    size_t len, cap, max;
    bool truncated;
};

static int capbuf_add(struct capbuf *b, const char *p, size_t n)
{
    size_t room = b->max - b->len;

    if (n > room) {
        b->truncated = true;
        n = room;
    }
    if (n == 0)
        return 0;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        char *nd;

        while (nc < b->len + n + 1)
            nc *= 2;
        if (nc > b->max + 1)
            nc = b->max + 1;
        nd = realloc(b->data, nc);
        if (!nd)
            return -ENOMEM;
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int capbuf_finish(struct capbuf *b)
{
    if (!b->data) {
        b->data = calloc(1, 1);
        if (!b->data)
            return -ENOMEM;
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int exec_find(const char *name, char *ret, size_t cap)
{
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    char path[256];
    struct stat st;

    if (!name || !*name || strchr(name, '/'))
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        int n = snprintf(path, sizeof(path), "%s/%s", dirs[i], name);

        if (n < 0 || (size_t)n >= sizeof(path))
            return -ENAMETOOLONG;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0) {
            if ((size_t)n >= cap)
                return -ENAMETOOLONG;
            memcpy(ret, path, (size_t)n + 1);
            return 0;
        }
    }
    return -ENOENT;
}

/* The next line of s: its trimmed start and length; returns where the line after begins. */
static const char *next_line(const char *s, const char **ret_start, size_t *ret_len)
{
    const char *e = strchr(s, '\n');
    size_t n;

    if (!e)
        e = s + strlen(s);
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    n = (size_t)(e - s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        n--;
    *ret_start = s;
    *ret_len = n;
    return *e ? e + 1 : e;
}

void exec_reason(const char *text, char *ret, size_t max)
{
    const char *best = NULL, *p = text ? text : "", *ls;
    size_t best_n = 0, ln, o = 0;

    if (max == 0)
        return;
    while (*p) {
        p = next_line(p, &ls, &ln);
        if (ln == 0)
            continue;
        if (ln < 8 || strncmp(ls, "WARNING:", 8) != 0) {
            best = ls;
            best_n = ln;
            break;
        }
        if (!best) {
            best = ls;
            best_n = ln;
        }
    }
    for (size_t i = 0; best && i < best_n && o + 1 < max; i++) {
        unsigned char c = (unsigned char)best[i];
        ret[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    ret[o] = '\0';
}

/* The environment of the child: fixed entries plus inherited LVM_SYSTEM_DIR. Strings point
 * into buf or into the daemon's environment (read only). */
static void build_env(bool inherit_lvm, char *buf, size_t cap, char **env)
{
    size_t n = 0;
    const char *lvm = inherit_lvm ? getenv("LVM_SYSTEM_DIR") : NULL;

    env[n++] = (char *)(uintptr_t) "LC_ALL=C";
    env[n++] = (char *)(uintptr_t) "PATH=" EXEC_PATH;
    env[n++] = (char *)(uintptr_t) "LVM_SUPPRESS_FD_WARNINGS=1";
    if (lvm && *lvm && strlen(lvm) + sizeof("LVM_SYSTEM_DIR=") <= cap) {
        snprintf(buf, cap, "LVM_SYSTEM_DIR=%s", lvm);
        env[n++] = buf;
    }
    env[n] = NULL;
}

/* Drain both pipes until EOF on both, the deadline (returns 1) or an error. */
static int drain(int fds[2], struct capbuf *bufs[2], int64_t deadline)
{
    char chunk[16384];
    int open_fds = 2;

    while (open_fds > 0) {
        struct pollfd p[2];
        nfds_t np = 0;
        int idx[2];
        int64_t left = deadline - now_ms();
        int r;

        if (left <= 0)
            return 1;
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0) {
                p[np] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                idx[np++] = i;
            }
        r = poll(p, np, left > 1000 ? 1000 : (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (nfds_t k = 0; k < np; k++) {
            int i = idx[k];
            ssize_t got;

            if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = read(fds[i], chunk, sizeof(chunk));
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                close(fds[i]);
                fds[i] = -1;
                open_fds--;
                continue;
            }
            if (capbuf_add(bufs[i], chunk, (size_t)got) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

/* Reap pid, bounded by deadline: EOF on the pipes says nothing about when the child exits (it
 * may close them and linger), so poll with WNOHANG and short sleeps that never pass the
 * deadline. Returns 1 when the deadline passed first (the child is still running), 0 when it was
 * reaped, -errno on a waitpid failure. */
static int wait_bounded(pid_t pid, int *status, int64_t deadline)
{
    long nap_ms = 1;

    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        int64_t left;

        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -errno;
        left = deadline - now_ms();
        if (left <= 0)
            return 1;
        if (nap_ms > left)
            nap_ms = (long)left;
        nanosleep(&(struct timespec){.tv_sec = nap_ms / 1000, .tv_nsec = (nap_ms % 1000) * 1000000},
                  NULL);
        if (nap_ms < 50)
            nap_ms *= 2;
    }
}

int exec_run(const char *const *argv, const struct exec_opts *opts, struct exec_result *ret)
{
    struct exec_opts o = opts ? *opts : (struct exec_opts){0};
    struct capbuf out = {0}, err = {0};
    struct capbuf *bufs[2] = {&out, &err};
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, fds[2];
    char envbuf[4200];
    char *env[ENV_MAX];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    pid_t pid;
    int status = 0, r, dr, wr;
    int64_t deadline;
    size_t argc = 0;
    bool timed_out = false, reaped = false;

    if (!argv || !argv[0] || argv[0][0] != '/')
        return -EINVAL;
    while (argv[argc]) {
        if (++argc > EXEC_ARGS_MAX)
            return -E2BIG;
    }
    if (o.timeout_ms <= 0)
        o.timeout_ms = EXEC_TIMEOUT_MS_DEFAULT;
    out.max = o.out_max ? o.out_max : EXEC_OUT_MAX_DEFAULT;
    err.max = o.err_max ? o.err_max : EXEC_ERR_MAX_DEFAULT;
    build_env(o.inherit_lvm, envbuf, sizeof(envbuf), env);

    if (pipe2(outp, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(errp, O_CLOEXEC) < 0) {
        r = -errno;
        close(outp[0]);
        close(outp[1]);
        return r;
    }
    r = posix_spawn_file_actions_init(&fa);
    if (r) {
        close(outp[0]);
        close(outp[1]);
        close(errp[0]);
        close(errp[1]);
        return -r;
    }
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&all);
    r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!r)
        r = posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    if (!r)
        r = posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    if (!r)
        r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (!r)
        r = posix_spawnattr_setsigmask(&attr, &none);
    if (!r)
        r = posix_spawnattr_setsigdefault(&attr, &all);
    if (!r)
        r = posix_spawnattr_setpgroup(&attr, 0);
    if (!r)
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETPGROUP);
    if (!r)
        r = posix_spawn(&pid, argv[0], &fa, &attr, (char *const *)(uintptr_t)argv,
                        o.env ? o.env : env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(outp[1]);
    close(errp[1]);
    if (r) {
        close(outp[0]);
        close(errp[0]);
        return -r;
    }

    fds[0] = outp[0];
    fds[1] = errp[0];
    deadline = now_ms() + o.timeout_ms;
    dr = drain(fds, bufs, deadline);
    if (dr == 0) {
        wr = wait_bounded(pid, &status, deadline);
        if (wr != 0)
            dr = wr; /* 1: the deadline passed after the pipes closed */
        reaped = wr == 0;
    }
    if (dr != 0) {
        /* timeout or a local failure: the child must not outlive the call */
        timed_out = dr == 1;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* after SIGKILL the child cannot delay its exit: this wait ends at once */
    while (!reaped && waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = 0;
            break;
        }
    }
    if (dr < 0 || capbuf_finish(&out) < 0 || capbuf_finish(&err) < 0) {
        free(out.data);
        free(err.data);
        return dr < 0 ? dr : -ENOMEM;
    }
    *ret = (struct exec_result){
        .exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1,
        .term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
        .timed_out = timed_out,
        .out = out.data,
        .out_len = out.len,
        .out_truncated = out.truncated,
        .err = err.data,
        .err_len = err.len,
        .err_truncated = err.truncated,
    };
    return timed_out ? -ETIMEDOUT : 0;
}

void exec_result_release(struct exec_result *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->out_len = r->err_len = 0;
}
