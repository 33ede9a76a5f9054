/* metrics: the node's counters and latency histograms, updated lock-free
 * from any thread (relaxed atomics) and rendered as Prometheus text or
 * summarised as percentiles.
 *
 * Latency histograms use fixed bucket bounds (METRICS_BUCKETS, from 50 us to
 * 10 s); percentiles interpolate inside a bucket, so they are estimates with
 * the bucket's resolution, as Prometheus's histogram_quantile() gives.
 *
 * Ownership: metrics_t is a plain struct the caller owns (embed it or
 * allocate it); it holds no pointers. Bounded: every series is fixed at
 * compile time (operations, error types, status codes 100..599).
 */
#ifndef DCACHE_METRICS_H
#define DCACHE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "node/core/sbuf.h"

typedef enum {
    METRICS_OP_GET = 0,
    METRICS_OP_PUT,
    METRICS_OP_DELETE,
    METRICS_OP_KEYS,
    METRICS_OP_INVALIDATE,
    METRICS_OP_INVALIDATE_PATTERN,
    METRICS_OP_OTHER,   /* every other HTTP endpoint */
    METRICS_OP_COUNT
} metrics_op_t;

typedef enum {
    METRICS_ERR_BAD_REQUEST = 0, /* malformed or invalid client input */
    METRICS_ERR_TOO_LARGE,       /* header or body over a limit */
    METRICS_ERR_TIMEOUT,         /* client too slow */
    METRICS_ERR_NO_MEMORY,       /* allocation failure, value over the memory limit */
    METRICS_ERR_INTERNAL,
    METRICS_ERR_OWNER_UNAVAILABLE, /* 503: no owner of the key answered */
    METRICS_ERR_L2_UNAVAILABLE,  /* 503: Redis was needed and is down */
    METRICS_ERR_NOT_REPLICATED,  /* 503: fewer owners than --write-acks stored a write */
    METRICS_ERR_DRAINING,        /* 503: the node is shutting down */
    METRICS_ERR_OVERLOADED,      /* 503: over a connection limit */
    METRICS_ERR_SYNCING,         /* 503: this node is syncing and could not check with another owner */
    METRICS_ERR_INCOMPLETE,      /* 503: an invalidation some members did not answer */
    METRICS_ERR_MINORITY,        /* 503: this node sees less than half of the cluster */
    METRICS_ERR_JOURNAL_PENDING, /* 503: a newer write of the key waits in a journal for Redis */
    METRICS_ERR_CLOCK_SKEW,      /* 503: this node's clock is apart from the cluster's */
    METRICS_ERR_UNAUTHORIZED,    /* 401: no token, or an unknown one */
    METRICS_ERR_FORBIDDEN,       /* 403: the token's role is too low */
    METRICS_ERR_RATE_LIMITED,    /* 429: over --rate-limit, or too many scans at once */
    METRICS_ERR_ORIGIN,          /* 502: the key's origin failed and no stale copy could stand in */
    METRICS_ERR_COUNT
} metrics_err_t;

#define METRICS_BUCKETS 20

typedef struct metrics_histogram {
    atomic_uint_fast64_t buckets[METRICS_BUCKETS + 1]; /* last = +Inf */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
} metrics_histogram_t;

typedef struct metrics {
    atomic_uint_fast64_t hits;
    atomic_uint_fast64_t misses;
    atomic_uint_fast64_t invalidations;  /* keys removed by invalidation */
    atomic_uint_fast64_t errors[METRICS_ERR_COUNT];
    atomic_uint_fast64_t http_status[500]; /* index status - 100 */
    metrics_histogram_t latency[METRICS_OP_COUNT];
} metrics_t;

typedef struct metrics_percentiles {
    uint64_t count;
    double p50_s, p90_s, p95_s, p99_s, mean_s;
} metrics_percentiles_t;

void metrics_init(metrics_t *m);
const char *metrics_op_name(metrics_op_t op);
const char *metrics_err_name(metrics_err_t e);

void metrics_observe(metrics_t *m, metrics_op_t op, uint64_t ns);
void metrics_count_status(metrics_t *m, int status);
/* Responses sent: the sum over status codes. */
uint64_t metrics_requests(metrics_t *m);
void metrics_count_error(metrics_t *m, metrics_err_t e);
static inline void metrics_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
static inline uint64_t metrics_read(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_percentiles(metrics_histogram_t *h, metrics_percentiles_t *out);

/* Appends the counters and histograms this module owns in Prometheus text
 * format (HELP and TYPE lines included). */
void metrics_render_prometheus(metrics_t *m, sbuf_t *out);

/* ---------- metric tables ----------
 *
 * Each module declares its series once, in a table of rows (name, labels,
 * counter or gauge, help, where the value lives in the module's stats
 * struct), next to the struct; /metrics walks the tables. Rows of one name
 * must be consecutive (HELP and TYPE are written once per name). A module
 * whose values are computed (sums over shards, a snapshot) fills a plain
 * struct and describes that. Libraries below node/ (http/, cluster/) know
 * nothing of this: the node module that runs them declares their table. */

typedef enum { METRICS_COUNTER = 0, METRICS_GAUGE } metrics_kind_t;

/* How a value is stored at its offset. */
typedef enum {
    METRICS_ATOMIC_U64 = 0,   /* atomic_uint_fast64_t */
    METRICS_ATOMIC_I64,       /* atomic_int_fast64_t */
    METRICS_U64,              /* uint64_t */
    METRICS_U32,              /* uint32_t */
    METRICS_I64,              /* int64_t */
    METRICS_DOUBLE,           /* double */
} metrics_repr_t;

typedef struct metrics_desc {
    const char *name;
    const char *labels;       /* e.g. "direction=\"in\""; NULL = none */
    metrics_kind_t kind;
    metrics_repr_t repr;
    size_t offset;            /* offsetof(the stats struct, field) */
    const char *help;
    unsigned divisor;         /* exported as value / divisor (ms -> s: 1000); 0 = 1 */
} metrics_desc_t;

typedef struct metrics_table {
    const metrics_desc_t *rows;
    size_t n;
} metrics_table_t;

#define METRICS_TABLE(rows) {(rows), sizeof(rows) / sizeof((rows)[0])}

/* A row: T is the stats struct type, F the field (an array element is
 * fine: requests[PEER_MSG_GET]). */
#define METRICS_ROW(T, F, kind, repr, name, labels, help) {name, labels, kind, repr, offsetof(T, F), help, 0}
#define METRICS_ATOMIC_COUNTER(T, F, name, labels, help) \
    METRICS_ROW(T, F, METRICS_COUNTER, METRICS_ATOMIC_U64, name, labels, help)
#define METRICS_ATOMIC_GAUGE(T, F, name, labels, help) \
    METRICS_ROW(T, F, METRICS_GAUGE, METRICS_ATOMIC_I64, name, labels, help)

/* Appends every row of the table in Prometheus text, each value summed
 * over the structs in stats[0 .. nstats) (one struct per worker, or one). */
void metrics_render_table(sbuf_t *out, const metrics_table_t *t, const void *const *stats, size_t nstats);
/* The same for one struct. */
void metrics_render_one(sbuf_t *out, const metrics_table_t *t, const void *stats);

/* Helpers for series that are not in a table (labelled arrays walked by
 * their owner, histograms). */
void metrics_prom_header(sbuf_t *out, const char *name, const char *type, const char *help);
void metrics_prom_value(sbuf_t *out, const char *name, const char *labels, double value);
void metrics_prom_uint(sbuf_t *out, const char *name, const char *labels, uint64_t value);

#endif
