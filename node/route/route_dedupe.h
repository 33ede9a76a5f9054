/* route_dedupe: the client writes this node carried out lately, by request
 * id, so that the same request tried again on another owner is answered
 * with the version it got instead of stamped afresh.
 *
 * Why: a node that forwards a PUT or DELETE to the key's primary and hears
 * nothing in time tries the next owner. If the primary did apply it (the
 * answer was what got lost), the next owner would stamp it again, newer
 * than a write another client made in between, and the older request's
 * value would come back over the newer one. The forwarder gives the request
 * one random id (rid) for every owner it tries; the primary notes it when it
 * stamps the write and passes it on with the replica writes, which note it
 * too; an owner asked to coordinate a rid it holds answers with what it
 * noted. (The peer channel's sessions already make a recorded frame
 * useless; this is about the forwarder's own retries.)
 *
 * Bounds: ROUTE_DEDUPE_SLOTS entries, each kept ROUTE_DEDUPE_WINDOW_MS (far
 * longer than a forwarder tries owners); when a probe run is full, the
 * oldest entry gives way (counted): forgetting one only loses the
 * protection for that request.
 *
 * Ownership: the caller owns the table (route_dedupe_new/free).
 * Threads: any, at once (striped mutexes); stats are atomic.
 */
#ifndef DCACHE_ROUTE_DEDUPE_H
#define DCACHE_ROUTE_DEDUPE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/peer_proto.h"
#include "node/metrics/metrics.h"

#define ROUTE_DEDUPE_SLOTS 65536
#define ROUTE_DEDUPE_WINDOW_MS 60000

typedef struct route_dedupe route_dedupe_t;

typedef struct route_dedupe_stats {
    atomic_uint_fast64_t noted, hits, evictions;
} route_dedupe_stats_t;

/* What a request got: its version, and whether it created the key (PUT) or
 * found one to delete (DELETE). */
typedef struct route_dedupe_result {
    uint64_t version;
    bool flag;
} route_dedupe_result_t;

route_dedupe_t *route_dedupe_new(void);
void route_dedupe_free(route_dedupe_t *d);

/* True (with what it got) when rid was noted within the window. An all-zero
 * rid is never found. */
bool route_dedupe_find(route_dedupe_t *d, const uint8_t rid[PEER_ID_LEN], int64_t now_ms, route_dedupe_result_t *out);
/* Notes what rid got (a later note of the same rid keeps the newer version). */
void route_dedupe_note(route_dedupe_t *d, const uint8_t rid[PEER_ID_LEN], const route_dedupe_result_t *r,
                       int64_t now_ms);
/* True when rid is not all zero. */
bool route_dedupe_rid_set(const uint8_t rid[PEER_ID_LEN]);

route_dedupe_stats_t *route_dedupe_stats(route_dedupe_t *d);

/* route_dedupe_stats_t's series in /metrics. */
extern const metrics_table_t route_dedupe_metrics_table;

#endif
