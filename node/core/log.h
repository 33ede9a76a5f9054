/* log: structured JSON-lines logs on stderr, one object per line:
 *   {"ts":"2026-11-25T10:00:00.123Z","level":"info","msg":"...",<fields>}
 * Safe from any thread: each line is written with one write(2). */
#ifndef DCACHE_LOG_H
#define DCACHE_LOG_H

#include <stdbool.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_set_level(log_level_t level);
bool log_enabled(log_level_t level);
/* Parses "debug", "info", "warn"/"warning", "error". */
bool log_parse_level(const char *name, log_level_t *out);

/* `fields` is NULL or a printf format producing JSON members without braces,
 * e.g. "\"port\":%d". Strings from outside must be escaped by the caller
 * (log_escape). */
void log_emit(log_level_t level, const char *msg, const char *fields, ...) __attribute__((format(printf, 3, 4)));

/* Escapes `s` for use inside a JSON string into buf (cap bytes, always
 * NUL-terminated, truncated if needed); returns buf. */
const char *log_escape(const char *s, char *buf, unsigned cap);

#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_emit(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__)

#endif
