/* origin: read-through loading. When a key bound to an origin (--origins
 * FILE, origin_config.h) is missing at its owner, the value is loaded from
 * the origin: an HTTP GET (origin_http.h) or a PostgreSQL query (pg_uv.h).
 *
 * The loads run on a thread of their own with its own libuv loop, so that
 * neither curl nor libpq ever runs on a worker, and so that every worker
 * of the node shares one table of loads in flight: concurrent misses of a
 * key, whichever worker (or peer) they came through, share one request to
 * the origin (coalescing; the cluster's share comes from every node
 * forwarding a key's GETs to its primary). Each origin has its own bound
 * on loads in flight (concurrency, the rest wait in a FIFO of at most
 * ORIGIN_QUEUE_MAX), a breaker (ORIGIN_BREAKER when open), and a measured
 * load time (the refresh-ahead's delta).
 *
 * A load is started with a version (the route stamps it when it asks): a
 * delete newer than that version refuses the value it brings. A request
 * joins a load in flight only if that load started after min_version
 * (the newest delete of the key known to the asker): a load begun before
 * an invalidation may bring back what it removed.
 *
 * Ownership: main owns the origin_t (origin_new ... origin_stop,
 * origin_free). A worker owns its origin_client_t (origin_client_new,
 * origin_client_close; freed by the close). Results are borrowed during
 * the callback.
 * Threads: origin_client_* calls and callbacks belong to the client's
 * loop; origin_reload, origin_stats and origin_current any thread.
 */
#ifndef DCACHE_ORIGIN_H
#define DCACHE_ORIGIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "node/core/sbuf.h"
#include "node/origin/origin_config.h"

#define ORIGIN_QUEUE_MAX 4096u     /* loads waiting for one origin's concurrency */
#define ORIGIN_SLOTS 128u          /* origins counted in the metrics (names ever loaded) */

typedef enum {
    ORIGIN_OK = 0,        /* loaded */
    ORIGIN_NOT_FOUND,     /* the origin has no such value (HTTP 404 or 410, no row or NULL) */
    ORIGIN_FAILED,        /* error, other status, timeout, too large: see error */
    ORIGIN_BREAKER,       /* the origin's breaker is open: not asked */
    ORIGIN_BUSY,          /* ORIGIN_QUEUE_MAX loads already wait for it */
    ORIGIN_UNBOUND,       /* no origin serves the key (any more) */
    ORIGIN_SHUTDOWN,      /* the node is stopping */
    ORIGIN_STATUS_MAX
} origin_status_t;

/* "ok", "not_found", "failed", "breaker", "busy", "unbound", "shutdown". */
const char *origin_status_name(origin_status_t s);

typedef struct origin_result {
    origin_status_t status;
    const char *origin;         /* the origin's name ("" when unbound) */
    const void *value;
    size_t len;
    const char *ct;             /* content type; ctlen 0 = none */
    size_t ctlen;
    int64_t ttl_ms;             /* ORIGIN_OK: 0 = never expires */
    int64_t stale_ms;           /* the origin's stale-if-error window */
    bool keep;                  /* false: the origin said not to store it (no-store, max-age=0) */
    uint64_t version;           /* what the load was started with */
    const char *error;          /* ORIGIN_FAILED: why */
} origin_result_t;

typedef void (*origin_load_fn)(void *ctx, const origin_result_t *r);

typedef struct origin_stats {
    char name[ORIGIN_NAME_MAX];            /* "" = slot unused */
    atomic_uint_fast64_t requests;         /* asked for by the data path */
    atomic_uint_fast64_t coalesced;        /* ... that joined a load in flight */
    atomic_uint_fast64_t loads;            /* requests sent to the origin */
    atomic_uint_fast64_t results[ORIGIN_STATUS_MAX]; /* loads and refusals, by outcome */
    atomic_int_fast64_t in_flight, queued;
    atomic_uint_fast64_t load_us_ewma;     /* a load's time, smoothed (1/8 per load) */
    atomic_uint_fast64_t load_us_sum;      /* for a mean over a scrape interval */
    atomic_int_fast64_t breaker_open;      /* 1 while open */
} origin_stats_t;

typedef struct origin origin_t;
typedef struct origin_client origin_client_t;

/* Loads nothing yet: origin_reload gives it its set. NULL on failure. */
origin_t *origin_new(void);
/* Parses path and, if it is good, puts it in force (loads in flight finish
 * with the set they started with). false with err set otherwise: the set
 * in force stays. */
bool origin_reload(origin_t *o, const char *path, char *err, size_t errlen);
/* Starts the loader thread. 0 or -1. */
int origin_start(origin_t *o);
/* Fails what waits with ORIGIN_SHUTDOWN, closes the connections and
 * joins the thread. Clients must be closed first. */
void origin_stop(origin_t *o);
void origin_free(origin_t *o);
/* The set in force (a reference: origin_set_unref it), or NULL. */
origin_set_t *origin_current(origin_t *o);
origin_stats_t *origin_stats(origin_t *o, size_t *n);
/* The origins' series in /metrics. */
void origin_metrics(origin_t *o, sbuf_t *out);

/* An http origin's URL for a key: the template with {key} and {rest}
 * percent-encoded in their place. Like snprintf, returns the length it
 * needs (without the NUL); out may be NULL with cap 0. */
size_t origin_url_expand(const char *tmpl, const char *key, size_t klen, const char *rest, size_t rlen, char *out,
                         size_t cap);

origin_client_t *origin_client_new(origin_t *o, uv_loop_t *loop);
/* The origin serving key (from the set in force; borrowed until the
 * client's next call), or NULL; *rest_off as origin_set_match. */
const origin_def_t *origin_client_match(origin_client_t *c, const char *key, size_t klen, size_t *rest_off);
/* How long a load from d takes, smoothed, in ms (0 before the first). */
double origin_client_load_ms(origin_client_t *c, const origin_def_t *d);
/* cb runs exactly once, later, on the client's loop. */
void origin_client_load(origin_client_t *c, const char *key, size_t klen, uint64_t version, uint64_t min_version,
                        origin_load_fn cb, void *ctx);
/* Answers what is still pending for this client with ORIGIN_SHUTDOWN
 * (from inside this call) and closes it; the client is freed once its
 * handle is closed (the loop must run). */
void origin_client_close(origin_client_t *c);

#endif
