/* topo: the cluster as the data path sees it: a ring snapshot
 * (cluster/ring.h) plus, for each ring member, what it takes to reach it
 * (name, peer-channel and HTTP addresses, zone). Immutable and
 * reference-counted like the ring it holds.
 *
 * Which members are in the ring: alive and suspected ones. A suspected
 * member keeps its keys (a suspicion is often refuted, and moving keys out
 * and back costs two handoffs); requests to it fail over to the next owner
 * through the peer pool's breaker until it is declared dead.
 *
 * Ring ids are a hash of the member's name, not its per-run SWIM id, so a
 * node restarted with the same name owns the same keys again. The run id
 * is part of the snapshot all the same: a restarted node comes back empty,
 * so to handoff it is a new owner of everything it owns (topo_same_member),
 * and the ring changes (a new version) when only a run id did.
 *
 * Publishing (DESIGN.md section 3): the main loop builds snapshots from
 * gossip and publishes them in a topo_slot_t; each worker keeps a
 * topo_cache_t that holds its own reference and only takes the slot's
 * mutex when the published version changed, so the read path is one atomic
 * load.
 *
 * Threads: topo_build and topo_slot_publish on the main loop; topo_t
 * accessors and topo_cache_get from any thread holding a reference.
 * Ownership: topo_build returns one reference; the slot owns the published
 * one; a cache owns its own.
 */
#ifndef DCACHE_TOPO_H
#define DCACHE_TOPO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cluster/ring.h"
#include "node/metrics/metrics.h"
#include "cluster/swim_proto.h"

typedef struct topo_member {
    char name[SWIM_NAME_MAX];
    uint8_t run[SWIM_ID_LEN];       /* the member's SWIM id: new for every run of its process */
    char zone[LIMITS_ZONE_MAX];
    struct sockaddr_storage peer;   /* ss_family 0 when it advertised none */
    char peer_text[64];
    char http_text[64];
    bool suspect;
} topo_member_t;

typedef struct topo {
    atomic_int refs;
    uint64_t version;
    ring_t *ring;
    topo_member_t *members;         /* indexed like ring_member() */
    size_t n;
    int32_t self;                   /* this node's index, -1 when not in the ring */
    uint64_t fingerprint;           /* of the members (names, zones, runs) and replicas: equal on
                                     * two nodes when they see the same ring (version is local) */
    atomic_uint_fast64_t *heard;    /* by index: when the member last answered or pinged this node
                                     * (uv_now ms; 0 = not yet); written from any thread (owned) */
} topo_t;

/* Builds a snapshot of n members (any order; names unique) with `replicas`
 * owners per key. self_name names this node. NULL on bad input or ENOMEM. */
topo_t *topo_build(const topo_member_t *members, size_t n, const char *self_name, unsigned replicas,
                   uint64_t version);
topo_t *topo_ref(topo_t *t);
/* Members not suspected (this node is never suspected by itself). */
size_t topo_reachable(const topo_t *t);
void topo_unref(topo_t *t);
/* The owners of a key (ring indexes, primary first); returns the count. */
size_t topo_owners(const topo_t *t, const void *key, size_t len, uint32_t *out, size_t cap);
/* True when a and b are the same run of the same node (what one held, the
 * other still holds). */
bool topo_same_member(const topo_member_t *a, const topo_member_t *b);
/* True when self is among the owners. */
bool topo_is_owner(const topo_t *t, const uint32_t *owners, size_t n);
/* The ring index of the member called `name`; false when not in the ring. */
bool topo_find(const topo_t *t, const char *name, uint32_t *index);

/* Contact evidence: a member that answered this node (gossip or peer
 * channel) or pinged it at now_ms. Any thread. Unknown names are ignored. */
void topo_note_heard(topo_t *t, const char *name, uint64_t now_ms);
/* Copies what `from` heard into `to`, member by member (a new snapshot
 * starts with the evidence of the one it replaces). */
void topo_carry_heard(topo_t *to, const topo_t *from);
/* Members heard at or after since_ms, this node included. */
size_t topo_heard_since(const topo_t *t, uint64_t since_ms);

/* The slot also keeps the snapshot before the current one for a while
 * after a change (rebalancing: a new owner that misses a key asks the
 * previous owners before answering "not found"). */
typedef struct topo_slot {
    pthread_mutex_t lock;
    topo_t *cur;                    /* owned reference, NULL before the first publish */
    topo_t *prev;                   /* owned reference, NULL when no change is recent */
    atomic_uint_fast64_t generation; /* bumped by every change to cur or prev */
} topo_slot_t;

void topo_slot_init(topo_slot_t *s);
void topo_slot_destroy(topo_slot_t *s);
/* Takes over the caller's reference to t; the current one becomes prev. */
void topo_slot_publish(topo_slot_t *s, topo_t *t);
/* Takes over the caller's reference to t in place of the current one,
 * keeping prev: the same members (only who is suspected changed), so the
 * owners before the last real change stay the previous ones. */
void topo_slot_replace(topo_slot_t *s, topo_t *t);
/* Forgets prev (the change is no longer recent). */
void topo_slot_clear_prev(topo_slot_t *s);
/* A new reference to the current snapshot (NULL before the first). */
topo_t *topo_slot_get(topo_slot_t *s);

/* The published ring as /metrics shows it (zero before the first one). */
typedef struct topo_metrics {
    uint64_t version, members;
} topo_metrics_t;
void topo_slot_metrics(topo_slot_t *s, topo_metrics_t *out);
extern const metrics_table_t topo_metrics_table;

typedef struct topo_cache {
    topo_t *cur, *prev;
    uint64_t generation;
} topo_cache_t;

/* The latest snapshot, borrowed: valid until the next topo_cache_get or
 * topo_cache_clear on the same cache (callers that keep it across loop
 * turns take their own reference). */
topo_t *topo_cache_get(topo_cache_t *c, topo_slot_t *s);
/* The same, and when the snapshot changed, calls back(m, ctx) for each
 * member of the new one that is back: not in the snapshot cached before, in
 * it with another run, or suspected there and not now. */
typedef void (*topo_back_fn)(const topo_member_t *m, void *ctx);
topo_t *topo_cache_get_noting(topo_cache_t *c, topo_slot_t *s, topo_back_fn back, void *ctx);
/* The previous snapshot while a change is recent, else NULL; borrowed like
 * topo_cache_get's (call that first). */
topo_t *topo_cache_prev(topo_cache_t *c);
void topo_cache_clear(topo_cache_t *c);

#endif
