/*
 * Logging to stderr, text or JSON lines. A line is formatted into a stack buffer (capped at
 * 2 KiB; longer messages are truncated) and written with a single write(2), so lines from
 * several threads never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when p does not start one. */
static int utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xe0 && p[0] <= 0xef) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/*
 * Write s into buf (size n), escaping everything a terminal or a line-based log reader could
 * act on: C0 controls and DEL, C1 controls (U+0080..U+009F, which terminals honour as escape
 * sequences), the Unicode line and paragraph separators, and bytes that are not UTF-8. json
 * selects JSON string escapes (\n, \uXXXX, \" and \\; a byte that is not UTF-8 becomes
 * U+FFFD); text uses \n, \t, \r and \xNN and leaves quotes and backslashes alone. An escape is
 * never cut in half; the output is always NUL-terminated.
 */
static int escape(char *buf, int n, const char *s, bool json)
{
    int o = 0;

    if (n <= 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char tmp[16];
        int k, len = utf8_len(p);
        unsigned cp = 0;

        if (len == 2)
            cp = (unsigned)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
        else if (len == 3)
            cp = (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
        if (len == 0) {
            k = json ? snprintf(tmp, sizeof(tmp), "\\ufffd")
                     : snprintf(tmp, sizeof(tmp), "\\x%02x", *p);
            len = 1;
        } else if (len == 1 && json && (*p == '"' || *p == '\\')) {
            k = snprintf(tmp, sizeof(tmp), "\\%c", *p);
        } else if (len == 1 && (*p == '\n' || (!json && (*p == '\t' || *p == '\r')))) {
            k = snprintf(tmp, sizeof(tmp), "\\%c", *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r');
        } else if (len == 1 && (*p < 0x20 || *p == 0x7f)) {
            k = json ? snprintf(tmp, sizeof(tmp), "\\u%04x", *p)
                     : snprintf(tmp, sizeof(tmp), "\\x%02x", *p);
        } else if ((len == 2 && cp >= 0x80 && cp <= 0x9f) ||
                   (len == 3 && (cp == 0x2028 || cp == 0x2029))) {
            k = snprintf(tmp, sizeof(tmp), "\\u%04x", cp);
        } else {
            memcpy(tmp, p, (size_t)len);
            k = len;
        }
        if (o + k >= n)
            break;
        memcpy(buf + o, tmp, (size_t)k);
        o += k;
        p += len;
    }
    buf[o] = '\0';
    return o;
}

int log_json_escape(char *buf, int n, const char *s)
{
    return escape(buf, n, s, true);
}

int log_text_escape(char *buf, int n, const char *s)
{
    return escape(buf, n, s, false);
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

    /* Both formats escape: a request field (a name, a path) must never start a line of its own
     * or reach a terminal as a control sequence. */
    char esc[1800];
    if (log_format_ == LOG_JSON) {
        log_json_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     level_names[level], esc);
    } else {
        log_text_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line), "%s %-5s %s\n", ts, level_names[level], esc);
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
