/* swim: SWIM membership with Lifeguard, as a sans-I/O state machine
 * (DESIGN.md section 2).
 *
 * The driver feeds it time and datagrams (swim_tick, swim_recv) and carries
 * what it emits (the send and push_pull callbacks). The same core runs under
 * node/ (libuv, UDP/TCP) and under tests/sim (virtual time and network).
 *
 * Protocol (Das et al. 2002, with HashiCorp memberlist's refinements):
 *   - each protocol period one member is probed, in a randomised round-robin
 *     order; no ACK within the probe timeout -> PING_REQ through k others;
 *     no ACK by the end of the period -> the member is suspected;
 *   - a suspected member that hears of it refutes with a higher incarnation;
 *     a suspicion that nobody refutes in time becomes DEAD;
 *   - updates piggyback on every packet and on periodic gossip to a few
 *     random members, each sent retransmit_mult * ceil(log10(N+1)) times;
 *   - push-pull full-state exchange with one random member now and then
 *     (anti-entropy, and how a new member joins);
 *   - leaving members announce it (DEAD from themselves = LEFT).
 * Lifeguard (Dadgar et al. 2018), switchable off for comparison:
 *   - local health awareness: a member that misses NACKs or has to refute
 *     raises its health score, which stretches its own probe interval and
 *     timeout (score+1 times) so a slow member stops accusing healthy ones;
 *   - dynamic suspicion: the timeout starts at suspicion_max_mult times the
 *     minimum and shrinks towards the minimum as independent members confirm
 *     the suspicion;
 *   - buddy system: a ping to a suspected member carries the suspicion, so
 *     it can refute at once.
 * Incarnations: a member starts at an incarnation given by its driver (the
 * start time in ms, so a restarted member outranks its old record) and adds
 * one per refutation. A member record is identified by its name; the 128-bit
 * id names one run of the process, so a restart with the same name replaces
 * the old record.
 *
 * Threads: not thread-safe; one owner calls everything. Callbacks run inside
 * the calls that trigger them and must not call back into the same core.
 * Ownership: the core owns its member table and copies of member info (or
 * borrows them through info_acquire/info_release when the driver interns
 * them, as the simulator does to hold thousands of cores).
 */
#ifndef DCACHE_SWIM_H
#define DCACHE_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/swim_proto.h"

typedef struct swim swim_t;

typedef struct swim_member_view {
    const swim_member_info_t *info;
    swim_state_t state;
    uint64_t incarnation;
    int64_t state_change_ms;
    bool is_self;
} swim_member_view_t;

typedef enum {
    SWIM_EV_JOIN = 0,    /* a member appeared (alive) */
    SWIM_EV_UPDATE,      /* a member's info changed (same name, e.g. restarted with a new id) */
    SWIM_EV_SUSPECT,
    SWIM_EV_ALIVE,       /* back from suspect or dead */
    SWIM_EV_DEAD,
    SWIM_EV_LEFT,
    SWIM_EV_REAPED,      /* a dead or left member's record was dropped */
    SWIM_EV_DECLARED_DEAD, /* this node learned that others declared it dead (it refutes): the
                            * cluster went on without it meanwhile; member is this node */
} swim_event_type_t;

typedef struct swim_event {
    swim_event_type_t type;
    const swim_member_view_t *member;
} swim_event_t;

typedef struct swim_callbacks {
    /* A datagram (payload only; the driver seals it). Required. */
    void (*send)(void *ctx, const swim_addr_t *to, const uint8_t *buf, size_t len);
    /* Asks the driver to exchange full state with `to` (swim_state_export /
     * swim_state_import on both sides). May be NULL (no anti-entropy). */
    void (*push_pull)(void *ctx, const swim_addr_t *to);
    /* Membership changes. May be NULL. */
    void (*event)(void *ctx, const swim_event_t *ev);
    /* Optional interning of member info: return a stable pointer equal in
     * content to `info`; released once per acquire. NULL = the core keeps
     * its own malloc'd copies. */
    const swim_member_info_t *(*info_acquire)(void *ctx, const swim_member_info_t *info);
    void (*info_release)(void *ctx, const swim_member_info_t *info);
    /* A member answered this node directly or pinged it: a path between
     * them works now (the data path's evidence that this node is not cut
     * off, node/route). May be NULL. */
    void (*heard)(void *ctx, const swim_member_info_t *info);
    void *ctx;
} swim_callbacks_t;

typedef struct swim_config {
    swim_member_info_t self;
    uint64_t incarnation;            /* starting incarnation (the driver uses start time in ms) */
    uint32_t probe_interval_ms;      /* 1000 */
    uint32_t probe_timeout_ms;       /* 500 */
    uint32_t indirect_checks;        /* 3 */
    uint32_t suspicion_mult;         /* 4: min timeout = mult * max(1, log10(N)) * probe interval */
    uint32_t suspicion_max_mult;     /* 6: max timeout = this * min (Lifeguard) */
    uint32_t retransmit_mult;        /* 6 (memberlist uses 4; 6 closes the epidemic's tail, see tools/bench/swim-sim) */
    uint32_t gossip_interval_ms;     /* 200 */
    uint32_t gossip_nodes;           /* 3 */
    uint32_t gossip_to_dead_ms;      /* 30000: dead members still receive gossip this long */
    uint32_t push_pull_interval_ms;  /* 30000 (scaled up past 32 members, as memberlist does); 0 = off */
    uint32_t awareness_max;          /* 8 */
    uint32_t reap_ms;                /* 3600000: dead/left records kept this long (stale updates stay refused) */
    uint32_t max_members;            /* 65536 */
    uint32_t max_broadcasts;         /* 4096 queued updates */
    size_t packet_max;               /* payload bytes per datagram (1400 minus sealing) */
    bool lifeguard;                  /* true; false = plain SWIM */
    uint64_t seed;                   /* PRNG seed; 0 is replaced by a fixed constant */
} swim_config_t;

typedef struct swim_stats {
    uint64_t probes;              /* direct pings sent for probing */
    uint64_t probe_failures;      /* probes that ended without an ACK */
    uint64_t ping_reqs_sent;
    uint64_t pings_relayed;       /* pings sent on behalf of a PING_REQ */
    uint64_t acks_received;
    uint64_t nacks_received;
    uint64_t suspicions_raised;   /* members this node began to suspect */
    uint64_t refutations;         /* times this node refuted a suspicion of itself */
    uint64_t deaths_declared;     /* suspicions this node timed out into DEAD */
    uint64_t packets_in, packets_out, bytes_in, bytes_out;
    uint64_t drops_malformed;     /* datagrams that failed to decode */
    uint64_t drops_wrong_target;  /* pings meant for another run of this name */
    uint64_t drops_state;         /* push-pull states that failed to decode */
    uint64_t push_pulls;          /* exchanges requested */
    uint64_t broadcasts_dropped;  /* updates dropped because the queue was full */
    uint32_t health_score;        /* 0 = healthy .. awareness_max - 1 */
} swim_stats_t;

void swim_config_default(swim_config_t *cfg);

/* Returns NULL on allocation failure or an invalid config. cfg and cb are
 * copied. The local member starts alive. */
swim_t *swim_new(const swim_config_t *cfg, const swim_callbacks_t *cb, int64_t now_ms);
void swim_free(swim_t *s);

/* Runs whatever is due at now_ms (probes, timeouts, gossip, push-pull). */
void swim_tick(swim_t *s, int64_t now_ms);
/* The earliest time swim_tick has work to do. */
int64_t swim_next_deadline(const swim_t *s);
/* A datagram payload (already opened by the driver) from `from`. */
void swim_recv(swim_t *s, const swim_addr_t *from, const uint8_t *buf, size_t len, int64_t now_ms);

/* Push-pull: the full state as a malloc'd buffer the caller frees (NULL on
 * allocation failure), and merging a peer's. `join` marks the exchange a
 * new member starts. Returns false (and counts a drop) when malformed. */
uint8_t *swim_state_export(swim_t *s, bool join, size_t *len);
bool swim_state_import(swim_t *s, const uint8_t *buf, size_t len, int64_t now_ms);

/* Adds a member as alive without announcing it or raising an event: for
 * simulations that start from an already converged cluster. Returns false
 * when the member is known already or the table is full. */
bool swim_add_quiet(swim_t *s, const swim_member_info_t *info, uint64_t incarnation, int64_t now_ms);

/* Graceful leave: announces it (the announcement is gossiped; the driver
 * keeps ticking for a moment so it spreads) and stops probing. */
void swim_leave(swim_t *s, int64_t now_ms);

/* Member table. The views are valid until the next call into the core. */
size_t swim_member_count(const swim_t *s, int state_mask); /* mask of 1 << swim_state_t; -1 = all */
typedef void (*swim_member_fn)(const swim_member_view_t *m, void *ctx);
void swim_members_foreach(const swim_t *s, swim_member_fn fn, void *ctx);
/* Finds a member by name; false when unknown. */
bool swim_member_find(const swim_t *s, const char *name, swim_member_view_t *out);
const swim_member_info_t *swim_self(const swim_t *s);
uint64_t swim_self_incarnation(const swim_t *s);
void swim_get_stats(const swim_t *s, swim_stats_t *out);

/* The suspicion timeout bounds for n members (Lifeguard's min and max; with
 * Lifeguard off both are the min). Exposed for tests and the benchmark. */
void swim_suspicion_bounds(const swim_config_t *cfg, size_t n, int64_t *min_ms, int64_t *max_ms);
/* The timeout after `confirmations` independent confirmations out of the
 * `expected` ones (memberlist's formula). */
int64_t swim_suspicion_timeout(int64_t min_ms, int64_t max_ms, unsigned confirmations, unsigned expected);
/* How many times an update is retransmitted in a cluster of n members. */
unsigned swim_retransmit_limit(const swim_config_t *cfg, size_t n);

#endif
