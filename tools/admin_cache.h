/* dcache-admin: the key/value commands (get, put, del, keys).
 *
 * Each takes the parsed command line (positional arity already checked by
 * the caller), prints its result on stdout and its errors on stderr, and
 * returns a process exit code (ADMIN_EXIT_*).
 */
#ifndef DCACHE_ADMIN_CACHE_H
#define DCACHE_ADMIN_CACHE_H

#include "tools/admin.h"
#include "tools/admin_http.h"

/* The URL path of a key: /api/cache/ + every byte percent-encoded except
 * unreserved characters. Malloc'd. */
char *admin_cache_path(const char *key);

int admin_cache_get(admin_http *h, const admin_opts *o);
int admin_cache_put(admin_http *h, const admin_opts *o);
int admin_cache_del(admin_http *h, const admin_opts *o);
int admin_cache_keys(admin_http *h, const admin_opts *o);

/* Append "?name=value" or "&name=value" (value percent-encoded) to *query,
 * a malloc'd string (or NULL to start one). */
void admin_cache_query_add(char **query, const char *name, const char *value);

#endif
