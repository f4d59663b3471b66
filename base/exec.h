/*
 * Running external tools (lvm2, mkfs, blkid, ...) safely: posix_spawn with an argument vector
 * (never a shell), a clean environment (LC_ALL=C, a fixed PATH, plus LVM_SYSTEM_DIR when the
 * daemon has it), stdin from /dev/null, every other descriptor closed in the child, stdout and
 * stderr drained with poll() into capped buffers, and a timeout (covering the whole run, the wait
 * for the child after its pipes close included) after which the child's whole
 * process group is killed with SIGKILL. The child gets an empty signal mask and default
 * dispositions, whatever the daemon blocks.
 *
 * Threading: no shared state; exec_run() may be called from several threads at once (it only
 * blocks the calling thread). Every descriptor it opens is O_CLOEXEC.
 */
#ifndef ORDINAL_EXEC_H
#define ORDINAL_EXEC_H

#include <stdbool.h>
#include <stddef.h>

#define EXEC_OUT_MAX_DEFAULT (4u << 20) /* stdout kept by default; the rest is drained */
#define EXEC_ERR_MAX_DEFAULT (64u << 10)
#define EXEC_TIMEOUT_MS_DEFAULT 60000
#define EXEC_ARGS_MAX 64

struct exec_opts {
    int timeout_ms;   /* 0 = EXEC_TIMEOUT_MS_DEFAULT */
    size_t out_max;   /* 0 = EXEC_OUT_MAX_DEFAULT */
    size_t err_max;   /* 0 = EXEC_ERR_MAX_DEFAULT */
    bool inherit_lvm; /* pass LVM_SYSTEM_DIR of the daemon's environment on */
    /* NULL-terminated "NAME=value" list that replaces the fixed environment, or NULL (for a
     * credential plugin, which needs HOME, its own PATH and its settings as kubectl gives them) */
    char *const *env;
};

struct exec_result {
    int exit_code;   /* 0..255, or -1 when killed by a signal */
    int term_signal; /* the signal that ended the child, 0 if it exited */
    bool timed_out;  /* killed because the timeout passed */
    char *out;       /* owned, NUL-terminated, at most out_max bytes */
    size_t out_len;
    bool out_truncated;
    char *err; /* owned, NUL-terminated, at most err_max bytes */
    size_t err_len;
    bool err_truncated;
};

/*
 * Run argv[0] (an absolute path) with argv, wait for it and collect its output into *ret
 * (written only on success; release with exec_result_release()). Returns 0 when the child ran,
 * whatever its exit code; -ETIMEDOUT when it was killed after the timeout (ret is written then
 * too); -EINVAL for a bad argv; -errno when it could not be started.
 */
int exec_run(const char *const *argv, const struct exec_opts *opts, struct exec_result *ret);
void exec_result_release(struct exec_result *r);

/* The absolute path of tool `name` in /usr/sbin, /sbin, /usr/bin, /bin (the first executable
 * regular file), copied into ret (cap bytes): 0 or -ENOENT. */
int exec_find(const char *name, char *ret, size_t cap);

/* For messages: the first line of text that is not a "WARNING:" line (or the first line when
 * all are), trimmed, control characters replaced by '?', at most max - 1 bytes, into ret. */
void exec_reason(const char *text, char *ret, size_t max);

#endif
