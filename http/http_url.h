/* http_url: percent-decoding of paths and lookup of query parameters.
 * Pure functions; safe from any thread. */
#ifndef DCACHE_HTTP_URL_H
#define DCACHE_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Decodes %XX escapes from src[0..len) into dst (which needs len bytes; the
 * result is never longer). With `plus_is_space`, '+' becomes ' ' (query
 * strings). Returns the decoded length, or -1 on a malformed escape. */
long http_url_decode(const char *src, size_t len, char *dst, bool plus_is_space);

/* Finds parameter `name` in a query string ("a=1&b=2"). On success returns
 * true with the still-encoded value in *value / *value_len (empty for "a" or
 * "a="). */
bool http_query_find(const char *query, size_t query_len, const char *name, const char **value, size_t *value_len);

/* Finds and decodes a parameter into buf (capacity cap, NUL-terminated).
 * Returns the decoded length, -1 when absent, -2 when malformed or too long. */
long http_query_get(const char *query, size_t query_len, const char *name, char *buf, size_t cap);

#endif
