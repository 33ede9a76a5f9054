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
/* The physical part, in ms since the epoch. */
int64_t hlc_physical_ms(uint64_t version);

#endif
