/*
 * Logging to stderr, text or JSON lines. A line is formatted into a stack buffer (capped at
 * 2 KiB; longer messages are truncated) and written with a single write(2), so lines from
 * several threads never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_max_level_ = LOG_INFO;
static enum log_format log_format_ = LOG_TEXT;
static int log_fd_ = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_parse_level(const char *s, enum log_level *ret)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *ret = (enum log_level)i;
            return 0;
        }
    return -EINVAL;
}

int log_parse_format(const char *s, enum log_format *ret)
{
    if (strcmp(s, "text") == 0)
        *ret = LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *ret = LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

void log_setup(enum log_level level, enum log_format format)
{
    log_max_level_ = level;
    log_format_ = format;
}

void log_set_fd(int fd)
{
    log_fd_ = fd;
}

int log_json_escape(char *buf, int n, const char *s)
{
    int o = 0;

    if (n <= 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        int k;

        if (*p == '"' || *p == '\\')
            k = snprintf(tmp, sizeof(tmp), "\\%c", *p);
        else if (*p == '\n')
            k = snprintf(tmp, sizeof(tmp), "\\n");
        else if (*p < 0x20 || *p == 0x7f)
            k = snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
        else {
            tmp[0] = (char)*p;
            k = 1;
        }
        if (o + k >= n)
            break;
        memcpy(buf + o, tmp, (size_t)k);
        o += k;
    }
    buf[o] = '\0';
    return o;
}

void log_emit(enum log_level level, const char *fmt, ...)
{
    char msg[1536], line[2048], ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ldZ", now.tv_nsec / 1000000);

    if (log_format_ == LOG_JSON) {
        char esc[1800];

        log_json_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     level_names[level], esc);
    } else {
        n = snprintf(line, sizeof(line), "%s %-5s %s\n", ts, level_names[level], msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    /* A failed log write has nowhere to be reported. */
    ssize_t w = write(log_fd_, line, (size_t)n);
    (void)w;
}
