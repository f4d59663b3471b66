/*
 * Logging: one line per event on stderr, as text or JSON. The level is tested in the macro so
 * that arguments of suppressed messages are not evaluated.
 *
 * Threading: safe from any thread; each line is written with one write(2).
 * Never pass a secret (CSI secrets, mount flags, tokens) to these functions.
 */
#ifndef ORDINAL_LOG_H
#define ORDINAL_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

extern enum log_level log_max_level_;

/* Parse "debug", "info", "warn", "error": 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *ret);
/* Parse "text", "json": 0 or -EINVAL. */
int log_parse_format(const char *s, enum log_format *ret);
void log_setup(enum log_level level, enum log_format format);
/* Send log lines to fd instead of stderr (tests). */
void log_set_fd(int fd);

void log_emit(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at_(lvl, ...)                                                                          \
    do {                                                                                           \
        if ((lvl) >= log_max_level_)                                                               \
            log_emit((lvl), __VA_ARGS__);                                                          \
    } while (0)
#define log_debug(...) log_at_(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_at_(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_at_(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at_(LOG_ERROR, __VA_ARGS__)

/* Write s as a JSON string body (no quotes) into buf of size n; returns the length written.
 * Output is always NUL-terminated and truncated to fit. Control characters (C0, DEL, C1), U+2028,
 * U+2029 are escaped; a byte that is not UTF-8 becomes \ufffd. */
int log_json_escape(char *buf, int n, const char *s);
/* The same for text lines and status messages: control characters become \n, \t, \r, \xNN or
 * \uXXXX, bytes that are not UTF-8 \xNN; quotes and backslashes stay as they are. */
int log_text_escape(char *buf, int n, const char *s);

#endif
