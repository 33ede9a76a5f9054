/* ratelimit: token buckets by key (a client's token or address), shared by
 * every worker, in a table of bounded size.
 *
 * A bucket holds up to `burst` requests and refills at `rps` a second; a
 * request takes one or is refused with the time until one is there. The
 * table has RATELIMIT_STRIPES stripes of RATELIMIT_SLOTS slots, each stripe
 * under its own mutex so workers rarely meet. A key finds its slot among
 * RATELIMIT_PROBE in its stripe; when all are taken by other keys, the one
 * touched longest ago is given up (counted): it was the least active, and
 * forgetting a bucket only gives its key a full burst again, so a table full
 * of clients costs accuracy, never memory.
 *
 * The clock is the caller's (milliseconds), so tests drive it.
 *
 * Ownership: ratelimit_new's caller owns the table (ratelimit_free).
 * Threads: every function may run on any thread at once.
 */
#ifndef DCACHE_RATELIMIT_H
#define DCACHE_RATELIMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_STRIPES 64
#define RATELIMIT_SLOTS 256
#define RATELIMIT_PROBE 8

typedef struct ratelimit ratelimit_t;

typedef struct ratelimit_stats {
    atomic_uint_fast64_t allowed, refused, evictions;
    atomic_int_fast64_t keys;   /* buckets in the table */
} ratelimit_stats_t;

/* rps > 0, burst >= 1. Returns NULL on allocation failure. */
ratelimit_t *ratelimit_new(double rps, double burst);
void ratelimit_free(ratelimit_t *rl);

/* Takes one request from key's bucket: 0 when allowed, else the
 * milliseconds until the bucket holds one (at least 1). */
uint64_t ratelimit_take(ratelimit_t *rl, uint64_t key, int64_t now_ms);

ratelimit_stats_t *ratelimit_stats(ratelimit_t *rl);

/* A key for a byte string (a token's name, an address), seeded per process. */
uint64_t ratelimit_key(const char *kind, const char *s, size_t len);

#endif
