/* swim_internal: the core's state, shared by swim.c (membership rules,
 * push-pull, lifecycle) and swim_probe.c (probing, gossip, receiving).
 * Not a public interface. */
#ifndef DCACHE_SWIM_INTERNAL_H
#define DCACHE_SWIM_INTERNAL_H

#include "cluster/swim.h"
#include "cluster/swim_bcast.h"
#include "cluster/swim_table.h"

/* A ping sent on behalf of another member's PING_REQ. */
typedef struct swim_relay {
    uint32_t our_seq;        /* the seq of our ping to the target */
    uint32_t their_seq;      /* the seq the requester is waiting on */
    swim_addr_t requester;
    swim_id_t target;
    int64_t deadline_ms;
    bool nack;
} swim_relay_t;

#define SWIM_MAX_RELAYS 256

struct swim {
    swim_config_t cfg;
    swim_callbacks_t cb;
    swim_id_t self_id;
    uint64_t rng;
    swim_table_t table;
    swim_bcast_t bcast;
    size_t live;                 /* alive + suspect records, self included */
    uint32_t health;             /* Lifeguard local health score */
    uint32_t seq;

    /* The probe of this protocol period. */
    uint32_t probe_index;        /* position in the probe order */
    bool probing;
    bool probe_acked;
    bool indirect_sent;
    swim_id_t probe_target;
    uint32_t probe_seq;
    unsigned nacks_expected, nacks_received;
    int64_t probe_timeout_at;    /* send PING_REQs then */
    int64_t next_probe_ms;       /* end of this period, start of the next */
    int64_t next_gossip_ms;
    int64_t next_push_pull_ms;
    bool push_pull_placed;       /* the first exchange got its random place */
    int64_t susp_next_ms;        /* earliest suspicion deadline (or later) */

    swim_relay_t *relays;        /* SWIM_MAX_RELAYS, allocated on first use */
    unsigned nrelays;
    swim_stats_t stats;
};

uint64_t swim_rand(swim_t *s);
size_t swim_live_count(const swim_t *s);
void swim_emit(swim_t *s, swim_event_type_t type, const swim_rec_t *r);
void swim_set_state(swim_t *s, swim_rec_t *r, swim_state_t st, int64_t now);
int64_t swim_scaled(const swim_t *s, uint32_t ms);
void swim_health_add(swim_t *s, int delta);
void swim_send_msgs(swim_t *s, const swim_addr_t *to, const swim_msg_t *msgs, size_t n);
void swim_broadcast(swim_t *s, const swim_msg_t *m);
void swim_alive_msg(const swim_rec_t *r, swim_msg_t *m);
void swim_on_alive(swim_t *s, uint64_t inc, const swim_member_info_t *info, int64_t now);
void swim_on_suspect(swim_t *s, uint64_t inc, const swim_id_t *id, const swim_id_t *from, int64_t now);
void swim_on_dead(swim_t *s, uint64_t inc, const swim_id_t *id, const swim_id_t *from, int64_t now);
void swim_gossip(swim_t *s, int64_t now);

#endif
