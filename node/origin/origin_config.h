/* origin_config: what --origins FILE declares: where a missing value comes
 * from (an origin) and which keys each origin serves. Parsed once per load
 * (start, SIGHUP) into an immutable, reference-counted origin_set_t that
 * the loader and every worker read without locks and that a reload
 * replaces whole.
 *
 * The file is JSON:
 *   {"origins": [
 *     {"name": "catalog", "type": "http",
 *      "url": "http://127.0.0.1:9000/items/{rest}", "headers": {"Authorization": "Bearer x"},
 *      "keys": ["products:*"], "ttl": "5m", "stale_if_error": "10m",
 *      "timeout": "2s", "concurrency": 16, "max_value_bytes": "1mb"},
 *     {"name": "db", "type": "postgres", "conninfo": "host=127.0.0.1 dbname=app",
 *      "query": "SELECT body FROM items WHERE id = $1", "param": "rest", "keys": ["items:*"]}
 *   ],
 *   "jobs": [...]}                    (warming jobs: node/warm reads them)
 * The first origin (in file order) with a matching pattern serves a key.
 * {key} is the whole key, {rest} what follows the matching pattern's
 * literal prefix ("products:42" under "products:*" -> "42"); both are
 * percent-encoded in a URL. A postgres query gets one parameter, $1: the
 * key, or the rest with "param": "rest". Durations are strings ("500ms",
 * "2s", "5m") or numbers of seconds; sizes strings ("1mb") or bytes.
 * Unknown fields are errors, so a typo does not silently do nothing.
 *
 * Ownership: origin_set_parse/load return a set with one reference, the
 * caller's; origin_set_ref adds one, origin_set_unref drops one and frees
 * the set with the last. Everything inside belongs to the set.
 * Threads: a set is immutable: any thread may read it; refs are atomic.
 */
#ifndef DCACHE_ORIGIN_CONFIG_H
#define DCACHE_ORIGIN_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ORIGIN_NAME_MAX 64          /* bytes, NUL included: [A-Za-z0-9_.-]{1,63} */
#define ORIGIN_MAX 64               /* origins in one file */
#define ORIGIN_PATTERNS_MAX 64      /* key patterns of one origin */
#define ORIGIN_CONCURRENCY_MAX 1024 /* loads in flight per origin, at most */

typedef enum { ORIGIN_KIND_HTTP = 0, ORIGIN_KIND_POSTGRES = 1 } origin_kind_t;

typedef struct origin_def {
    char name[ORIGIN_NAME_MAX];
    origin_kind_t kind;
    char *url;                  /* http: the template */
    char **headers;             /* http: "Name: value", NULL-terminated (never NULL) */
    char *conninfo, *query;     /* postgres */
    bool param_rest;            /* postgres: $1 is the rest, not the key */
    char **keys;                /* patterns (Redis globs) */
    size_t nkeys;
    uint64_t ttl_ms;            /* when the origin says nothing (HTTP max-age wins); 0 = never expires */
    uint64_t stale_ms;          /* stale-if-error window after expiry; 0 = none */
    uint64_t timeout_ms;        /* one load, connecting included */
    unsigned concurrency;       /* loads in flight at once */
    size_t max_value_bytes;     /* larger answers are errors */
    unsigned slot;              /* origin.c's counters for this name (set before the set is shared) */
} origin_def_t;

typedef struct origin_set {
    atomic_uint refs;
    origin_def_t *defs;
    size_t n;
    char *path;                 /* the file it came from ("" when parsed from memory) */
} origin_set_t;

/* NULL on error, with a message naming the origin and field in err. */
origin_set_t *origin_set_parse(const char *json, size_t len, char *err, size_t errlen);
origin_set_t *origin_set_load(const char *path, char *err, size_t errlen);
origin_set_t *origin_set_ref(origin_set_t *s);
void origin_set_unref(origin_set_t *s);

/* The origin serving key (NULL when none does, or s is NULL); *rest_off
 * (may be NULL) is where the rest starts in the key. */
const origin_def_t *origin_set_match(const origin_set_t *s, const char *key, size_t klen, size_t *rest_off);
/* The index of the origin named name in s, or -1. */
int origin_set_find(const origin_set_t *s, const char *name);

#endif
