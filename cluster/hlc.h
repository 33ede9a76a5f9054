/* hlc: hybrid logical clock versions (Kulkarni et al., 2014).
 *
 * A version is a 64-bit number: the upper 48 bits are milliseconds since the
 * Unix epoch, the lower 16 a logical counter. Versions stamped by one clock
 * strictly increase even when the wall clock stalls or steps back, and
 * hlc_observe() keeps them ahead of every version seen from other nodes, so
 * "newer" means "happened later" across the cluster. Ties between nodes are
 * broken by the stamping node's id, carried beside the version.
 *
 * Pure: the caller passes the physical time in. Not thread-safe: one owner
 * (the caller serialises access).
 */
#ifndef DCACHE_HLC_H
#define DCACHE_HLC_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hlc {
    uint64_t last;
} hlc_t;

#define HLC_LOGICAL_BITS 16

void hlc_init(hlc_t *c);
/* A new version, greater than every version this clock returned or observed. */
uint64_t hlc_stamp(hlc_t *c, int64_t now_ms);
/* Merges a version received from elsewhere. */
void hlc_observe(hlc_t *c, uint64_t remote, int64_t now_ms);
/* The same, unless the version's physical time is more than max_ahead_ms
 * ahead of now_ms: a clock that far ahead would drag this one (and every
 * version it stamps) along. Returns false, merging nothing, then. */
bool hlc_observe_within(hlc_t *c, uint64_t remote, int64_t now_ms, int64_t max_ahead_ms);
/* True when the version's physical time is at most max_ahead_ms ahead of now_ms. */
bool hlc_plausible(uint64_t version, int64_t now_ms, int64_t max_ahead_ms);
/* The physical part, in ms since the epoch. */
int64_t hlc_physical_ms(uint64_t version);

#endif
