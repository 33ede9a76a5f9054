/* swim_bcast: the queue of membership updates waiting to be piggybacked
 * (memberlist's TransmitLimitedQueue). Each update is about one member; a
 * newer update about a member replaces the older one. Packets take the
 * least-transmitted updates first, and an update retires after `limit`
 * transmissions. Internal to cluster/swim*.
 *
 * Layout: updates sit in lists by transmit count, so filling a packet
 * visits only what it sends, and an index by member id finds the update
 * to replace; both are O(1) per update, which matters when a thousand
 * members join at once and every one of them is news.
 *
 * Bounded: at most `max` updates; when full, one of the most-transmitted
 * goes (it has had the most chances to spread). Owns its arrays.
 */
#ifndef DCACHE_SWIM_BCAST_H
#define DCACHE_SWIM_BCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/swim_proto.h"

#define SWIM_BCAST_LEVELS 64  /* transmit counts tracked; limits stay far below */

typedef struct swim_bcast_item {
    swim_msg_t msg;
    swim_id_t about;
    uint32_t transmits;
    uint32_t size;            /* encoded size of msg */
    int32_t prev, next;       /* list of its transmit level, or the free list */
} swim_bcast_item_t;

typedef struct swim_bcast {
    swim_bcast_item_t *items;
    uint32_t cap, n, max;
    int32_t free_head;
    int32_t head[SWIM_BCAST_LEVELS], tail[SWIM_BCAST_LEVELS];
    int32_t *index;           /* open addressing by member id: item + 1, 0 = empty */
    uint32_t slots;
    uint64_t dropped;
} swim_bcast_t;

void swim_bcast_init(swim_bcast_t *q, size_t max);
void swim_bcast_destroy(swim_bcast_t *q);
/* Queues an update about its member, replacing an older one. */
void swim_bcast_push(swim_bcast_t *q, const swim_msg_t *m);
/* Adds the least-transmitted updates that fit to the packet, counting each
 * transmission and retiring those that reached `limit`. Returns how many
 * were added. */
unsigned swim_bcast_fill(swim_bcast_t *q, swim_packet_writer_t *w, uint32_t limit);

#endif
