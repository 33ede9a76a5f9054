/* swim_bcast: the queue of membership updates waiting to be piggybacked
 * (memberlist's TransmitLimitedQueue). Each update is about one member; a
 * newer update about a member replaces the older one. Packets take the
 * least-transmitted updates first, and an update retires after `limit`
 * transmissions. Internal to cluster/swim*.
 *
 * Bounded: at most `max` updates; when full, the most-transmitted one is
 * dropped (it has had the most chances to spread). Owns its array.
 */
#ifndef DCACHE_SWIM_BCAST_H
#define DCACHE_SWIM_BCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/swim_proto.h"

typedef struct swim_bcast_item {
    swim_msg_t msg;
    swim_id_t about;
    char name[SWIM_NAME_MAX];  /* ALIVE updates replace by name: a restart changes the id */
    uint32_t transmits;
} swim_bcast_item_t;

typedef struct swim_bcast {
    swim_bcast_item_t *items;   /* sorted by transmits, ascending */
    size_t n, cap, max;
    uint64_t dropped;
} swim_bcast_t;

void swim_bcast_init(swim_bcast_t *q, size_t max);
void swim_bcast_destroy(swim_bcast_t *q);
/* Queues an update about `about` (and, for ALIVE, about that name),
 * replacing older ones. */
void swim_bcast_push(swim_bcast_t *q, const swim_msg_t *m);
/* Adds as many updates as fit to the packet, counting each transmission
 * and retiring those that reached `limit`. Returns how many were added. */
unsigned swim_bcast_fill(swim_bcast_t *q, swim_packet_writer_t *w, uint32_t limit);

#endif
