/* swim_relay: the pings a SWIM member sends on behalf of others. A PING_REQ
 * asks us to ping a target for the requester; the target's ACK is forwarded
 * back under the requester's sequence number, and with Lifeguard a relay
 * that times out answers the requester with a NACK ("I could not reach it
 * either"), so the requester can tell a dead target from its own lost
 * packets. This table keeps those relays; the core sends the packets.
 * Internal to cluster/swim*.
 *
 * Bounds: at most SWIM_MAX_RELAYS relays; a new one replaces an old one when
 * the table is full (a flood of PING_REQs cannot grow it).
 *
 * Ownership: the table owns its array (allocated on first use, freed by
 * swim_relay_free()). Not thread-safe: one owner, the core.
 */
#ifndef DCACHE_SWIM_RELAY_H
#define DCACHE_SWIM_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/swim_proto.h"

#define SWIM_MAX_RELAYS 256

/* A ping sent on behalf of another member's PING_REQ. */
typedef struct swim_relay {
    uint32_t our_seq;        /* the seq of our ping to the target */
    uint32_t their_seq;      /* the seq the requester is waiting on */
    swim_addr_t requester;
    swim_id_t target;
    int64_t deadline_ms;
    bool nack;               /* answer with a NACK if the target stays silent */
} swim_relay_t;

typedef struct swim_relays {
    swim_relay_t *v;         /* SWIM_MAX_RELAYS slots, NULL until first used */
    unsigned n;
} swim_relays_t;

/* A slot for a new relay, for the caller to fill in; when the table is
 * full an old relay is dropped to make room. NULL when the array cannot be
 * allocated. */
swim_relay_t *swim_relay_add(swim_relays_t *t);
/* Takes out the relay waiting for the ACK `our_seq` from `target` into
 * *out; false when there is none. */
bool swim_relay_take(swim_relays_t *t, uint32_t our_seq, const swim_id_t *target, swim_relay_t *out);
/* Takes out every relay whose deadline is at or before now_ms, calling
 * fn(relay, ctx) for each, in table order, just before it goes. fn runs
 * inside this call and must not add or take relays. */
void swim_relay_expire(swim_relays_t *t, int64_t now_ms, void (*fn)(const swim_relay_t *r, void *ctx), void *ctx);
/* The earliest relay deadline; INT64_MAX when there is none. */
int64_t swim_relay_next_deadline(const swim_relays_t *t);
void swim_relay_free(swim_relays_t *t);

#endif
