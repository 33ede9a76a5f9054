/* route_scatter: cluster-wide operations by scatter-gather. One request to
 * every member of the ring (this node does its own part without the
 * network, route_local), the answers merged into one result. A member that
 * does not answer is named in the result, never silently skipped.
 *
 * Invalidation is versioned: the node that received it stamps one version
 * for the whole request, and every step uses it, like a DELETE's (Redis
 * keeps a tombstone of each key it held or named, L1 removes only what is
 * older and every member keeps a tombstone of each key or of the pattern,
 * so fills older than the invalidation are refused; see route_local.h).
 * It clears Redis first, once per cluster operation, by the node that
 * received it: the other way round, a miss between the two would read
 * the old value back from Redis into L1. When Redis misses a key
 * invalidation, journal mode keeps the deletes in the journal (the result
 * waits for the journal's sync, off the loop); otherwise the result says
 * Redis is unavailable (it may still hold old values).
 *
 * Listing goes one member per page (the cursor names the member and its
 * own cursor).
 *
 * Callbacks: `done` runs exactly once on the worker's loop, before the
 * starting call returns when nothing had to wait (this node alone, no
 * Redis); what the result points to is valid during the callback only.
 * Threads: the worker's loop only.
 */
#ifndef DCACHE_ROUTE_SCATTER_H
#define DCACHE_ROUTE_SCATTER_H

#include "node/route/route.h"

typedef enum {
    ROUTE_SCATTER_INVALIDATE = 0,  /* remove matching keys everywhere (a dry run counts them) */
    ROUTE_SCATTER_PREVIEW,         /* count matches and gather a sample of their keys */
} route_scatter_kind_t;

/* What happened in Redis. */
typedef enum {
    ROUTE_SCATTER_L2_NONE = 0,     /* no L2, or nothing to do there (a dry run, a preview) */
    ROUTE_SCATTER_L2_OK,
    ROUTE_SCATTER_L2_JOURNALED,    /* Redis was down: the deletes wait in the journal */
    ROUTE_SCATTER_L2_UNAVAILABLE,  /* Redis was down: it may still hold the old values */
} route_scatter_l2_t;

/* One member's part of a cluster-wide operation. */
typedef struct route_scatter_node {
    const char *name;
    bool answered;                   /* false: unreachable (its counts are 0) */
    uint64_t matched, invalidated;   /* of the keys it is primary for */
} route_scatter_node_t;

typedef struct route_scatter_result {
    uint64_t matched, invalidated;   /* each key counted once, by its primary */
    const peer_bytes_t *sample;      /* PREVIEW: keys of matches */
    size_t nsample;
    const char *const *unreachable;  /* members that did not answer */
    size_t nunreachable;
    size_t nodes;                    /* members asked, this one included */
    const route_scatter_node_t *per_node;  /* `nodes` of them, in ring order */
    route_scatter_l2_t l2;
    uint64_t l2_unlinked;
} route_scatter_result_t;

typedef void (*route_scatter_done_fn)(void *ctx, const route_scatter_result_t *res);

/* Invalidates keys on every member (the keys are copied). False when out
 * of memory: `done` will not run. */
bool route_scatter_keys(route_worker_t *w, const peer_bytes_t *keys, size_t n, route_scatter_done_fn done,
                        void *ctx);
/* Invalidates (or, dry_run, counts) or previews keys matching a glob
 * pattern on every member; PREVIEW gathers up to sample_max keys and is
 * always a dry run. False
 * when out of memory: `done` will not run. */
bool route_scatter_pattern(route_worker_t *w, route_scatter_kind_t kind, const char *pattern, size_t plen,
                           bool dry_run, size_t sample_max, route_scatter_done_fn done, void *ctx);

/* One page of a listing. */
typedef struct route_scatter_page {
    const peer_keyinfo_t *items;
    size_t n;
    const char *node;                /* whose keys these are */
    uint32_t node_index;             /* its place in the ring */
    size_t nodes;                    /* members of the ring; 0 = no ring (this node alone) */
    uint64_t next;                   /* that member's next cursor; 0 = it has no more */
    bool unreachable;                /* the member did not answer (no items) */
    bool no_memory;
} route_scatter_page_t;

typedef void (*route_scatter_page_fn)(void *ctx, const route_scatter_page_t *page);

typedef enum { ROUTE_SCATTER_STARTED = 0, ROUTE_SCATTER_BAD_NODE, ROUTE_SCATTER_NO_MEMORY } route_scatter_start_t;

/* Lists up to `limit` keys matching pattern from member node_index (its
 * position in the ring; 0 without one), from its cursor. Anything but
 * STARTED means `done` will not run: BAD_NODE when node_index names no
 * member. */
route_scatter_start_t route_scatter_list(route_worker_t *w, const char *pattern, size_t plen, uint32_t node_index,
                                         uint64_t cursor, uint32_t limit, route_scatter_page_fn done, void *ctx);

#endif
