/*
 * /proc sampling (see bench_proc.h). Reads are capped at 16 KiB per file; no state.
 */
#include "bench_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define PROC_FILE_MAX 16384

/* Reads path into buf (cap bytes, NUL-terminated). 0, -ESRCH (gone) or -EIO. */
static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n;

    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? -ESRCH : -EIO;
    while (len + 1 < cap) {
        n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;

            close(fd);
            return e == ESRCH ? -ESRCH : -EIO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return 0;
}

/* The value of "Key:   123 kB" lines, or -1 when the key is absent. */
static int64_t status_field(const char *text, const char *key)
{
    size_t klen = strlen(key);
    const char *p = text;

    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
            char *end;
            long long v;

            errno = 0;
            v = strtoll(p + klen + 1, &end, 10);
            return errno == 0 && end != p + klen + 1 && v >= 0 ? (int64_t)v : -1;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

int proc_parse_status(const char *text, struct proc_sample *ret)
{
    int64_t rss = status_field(text, "VmRSS");

    if (rss < 0)
        return -EIO;
    ret->vm_rss_kib = rss;
    ret->rss_anon_kib = status_field(text, "RssAnon");
    ret->rss_file_kib = status_field(text, "RssFile");
    ret->vm_hwm_kib = status_field(text, "VmHWM");
    ret->threads = status_field(text, "Threads");
    return 0;
}

int proc_parse_stat(const char *text, long ticks_per_s, struct proc_sample *ret)
{
    /* "pid (comm) state ppid ..." where comm may hold spaces and parentheses: fields are
     * counted from the last ')'. utime and stime are fields 14 and 15. */
    const char *p = strrchr(text, ')');
    unsigned long long utime, stime;
    int field = 2;

    if (!p || ticks_per_s <= 0)
        return -EIO;
    p++;
    while (*p && field < 13) {
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
        field++;
    }
    if (field != 13 || sscanf(p, " %llu %llu", &utime, &stime) != 2)
        return -EIO;
    ret->cpu_s = (double)(utime + stime) / (double)ticks_per_s;
    return 0;
}

int proc_sample(pid_t pid, struct proc_sample *ret)
{
    char path[64], buf[PROC_FILE_MAX];
    struct proc_sample s;
    int r;

    memset(&s, 0, sizeof(s));
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    r = read_small(path, buf, sizeof(buf));
    if (r == 0)
        r = proc_parse_status(buf, &s);
    if (r < 0)
        return r;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    r = read_small(path, buf, sizeof(buf));
    if (r == 0)
        r = proc_parse_stat(buf, sysconf(_SC_CLK_TCK), &s);
    if (r < 0)
        return r;
    *ret = s;
    return 0;
}

static double psi_some_avg10(const char *path)
{
    char buf[512];
    double v;
    const char *p;

    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    p = strstr(buf, "some avg10=");
    if (!p || sscanf(p, "some avg10=%lf", &v) != 1)
        return -1;
    return v;
}

void machine_sample(struct machine_sample *ret)
{
    char buf[256];

    ret->load1 = -1;
    if (read_small("/proc/loadavg", buf, sizeof(buf)) == 0 && sscanf(buf, "%lf", &ret->load1) != 1)
        ret->load1 = -1;
    ret->cpu_some_avg10 = psi_some_avg10("/proc/pressure/cpu");
    ret->io_some_avg10 = psi_some_avg10("/proc/pressure/io");
    ret->cores = sysconf(_SC_NPROCESSORS_ONLN);
}

double self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
