/* l2: Redis as the durable second level behind L1 (DESIGN.md section 4).
 *
 * Values live in Redis under `prefix + key` as an envelope that carries
 * what L1 needs to rebuild an entry:
 *
 *   envelope = "dc1" version(16 hex) expires_at_ms(16 hex, 0 = never)
 *              content_type_len(2 hex) content_type value
 *
 * The version is fixed-width hex so Redis can compare versions as strings:
 * every write goes through a small Lua script that stores only if what
 * Redis holds is not newer (a replayed or late write never overwrites a
 * newer one), and deletes likewise only remove older values.
 *
 * Failures: a breaker (node/core/breaker.h, locked form) around Redis,
 * shared by every loop: after BREAKER_THRESHOLD_DEFAULT consecutive errors
 * or timeouts calls fail at once for a pause, then one trial goes through.
 * Callers turn "unavailable" into 503 (reads that miss L1, writes in sync
 * mode) or a journal append (writes in journal mode, node/l2/journal.h).
 *
 * Threads: l2_shared_t is shared by every loop. Its breaker, journal and
 * counters are thread-safe, and l2_shared_set_master() and l2_state_name()
 * may be called from any thread; l2_shared_init() and l2_shared_destroy()
 * run while no loop uses it. Each loop has its own l2_t client: every l2_t
 * call, and every callback it makes, runs on that loop's thread. In journal
 * mode the l2_t also owns the loop's journal port, so journaling a write
 * never blocks the loop: the journal's own writer thread syncs it and the
 * port brings the outcome back.
 *
 * Callbacks: a call that takes a callback (l2_get, l2_set, l2_del,
 * l2_del_matching, l2_del_keys) calls it exactly once, and never from
 * inside the call: one that fails at once is answered from the loop, so the
 * caller may finish its own bookkeeping first (l2_journal_append alone
 * refuses at once with an errno instead). Calls still in flight at
 * l2_close() are answered (L2_UNAVAILABLE) before its `done`, and so are
 * appends to the journal. No call may follow l2_close(), but a callback it
 * answers may still journal its write (the port closes last).
 *
 * Ownership: main owns l2_shared_t, which must outlive every l2_t (and the
 * drainer and Sentinel watcher); the strings of its redis config stay the
 * config's. Each worker owns its l2_t: l2_close(), then l2_free() after
 * `done`. Keys, values, content types and patterns are copied before a call
 * returns; what a callback receives is valid during the callback only.
 */
#ifndef DCACHE_L2_H
#define DCACHE_L2_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/limits.h"
#include "node/core/breaker.h"
#include "node/l2/journal.h"
#include "node/l2/redis_uv.h"
#include "node/metrics/metrics.h"

#define L2_PREFIX_MAX 128

typedef enum { L2_WRITE_SYNC = 0, L2_WRITE_JOURNAL = 1 } l2_write_mode_t;

typedef struct l2_stats {
    atomic_uint_fast64_t gets, hits, misses, sets, dels, errors;
    atomic_uint_fast64_t fills_stale;      /* L2 values older than L1's, not kept */
    atomic_uint_fast64_t writes_refused;   /* writes answered 503: Redis down in sync mode, or journal full */
    atomic_uint_fast64_t writes_journaled; /* writes accepted into the journal */
    atomic_uint_fast64_t journal_drained;  /* journal records replayed into Redis */
    atomic_uint_fast64_t keys_scanned;     /* pattern invalidation: keys SCAN found */
    atomic_uint_fast64_t keys_unlinked;    /* invalidation: values replaced by its tombstone */
    /* Reads through to Redis of a key with a newer record in this node's
     * journal (l2_journal_pending; counted by the route layer): refused
     * (503 journal_pending: the value is only in the journal file),
     * answered "not found" (a pending DELETE), and refused because the
     * pending table overflowed (any key may be pending). */
    atomic_uint_fast64_t reads_journal_pending, reads_journal_deleted, reads_journal_in_doubt;
} l2_stats_t;

/* l2_stats_t's series in /metrics. */
extern const metrics_table_t l2_stats_metrics_table;

/* The L2 state /metrics shows, taken by l2_get_metrics. */
typedef struct l2_metrics {
    uint64_t up;                  /* 1: configured and its breaker closed */
    uint64_t breaker_state;       /* breaker_state_t */
    uint64_t breaker_opens, breaker_rejected;
    uint64_t journal_records, journal_bytes;
    /* Group commit (journal_stats_t): the writer's queue and its bound, and
     * how many records and appends each fdatasync carried. */
    uint64_t journal_queued_bytes, journal_queued_appends, journal_max_bytes;
    uint64_t journal_fsyncs, journal_group_records, journal_group_appends, journal_failed_groups;
    /* The table of keys waiting in the journal (journal_pending.h). */
    uint64_t journal_pending_keys, journal_pending_max, journal_pending_overflows, journal_pending_in_doubt;
} l2_metrics_t;
extern const metrics_table_t l2_metrics_table;

typedef struct l2_shared {
    bool enabled;
    char prefix[L2_PREFIX_MAX];
    size_t prefix_len;
    l2_write_mode_t write_mode;
    uint64_t tombstone_ttl_ms;      /* how long a delete's version stays in Redis */
    redis_uv_config_t redis;        /* strings owned by the config; host and port unused (below) */
    /* Where the master is: from --redis, or found through Sentinel (and
     * changed by a failover). Clients reconnect when addr_gen moves. */
    pthread_mutex_t addr_lock;
    char master_host[256];
    int master_port;
    atomic_uint_fast64_t addr_gen;  /* 0: not known yet (Sentinel has not answered) */
    breaker_t breaker;
    journal_t *journal;             /* journal mode only */
    l2_stats_t stats;
    redis_uv_stats_t redis_stats;
} l2_shared_t;

/* What waits in this node's journal for the key with this ring_key_hash
 * (journal_lookup): JOURNAL_PENDING_NONE without a journal. A read through
 * to Redis must not serve or cache a value older than a pending SET (it
 * is only in the journal), must answer "not found" below a pending DEL,
 * and can trust nothing while the table is in doubt. Any thread. */
journal_pending_state_t l2_journal_pending(l2_shared_t *s, uint64_t hash, uint64_t *version);

/* Fills what /metrics shows of L2; s may be NULL (no --redis: all zero). */
void l2_get_metrics(l2_shared_t *s, l2_metrics_t *out);

typedef struct l2 l2_t;

typedef enum {
    L2_OK = 0,           /* done (GET: found) */
    L2_MISS,             /* GET: no such key */
    L2_UNAVAILABLE,      /* breaker open, error or timeout */
} l2_result_t;

/* A value read from L2; pointers valid during the callback only. */
typedef struct l2_value {
    const char *value;
    size_t len;
    const char *ct;
    size_t ctlen;
    uint64_t version;
    int64_t expires_at_ms;   /* 0 = never */
} l2_value_t;

typedef void (*l2_get_fn)(void *ctx, l2_result_t res, const l2_value_t *v);
typedef void (*l2_done_fn)(void *ctx, l2_result_t res);

/* On a zeroed struct, before any loop uses it; the caller then fills in
 * the configuration (enabled, prefix, write_mode, redis, journal, the
 * master). Breaker transitions are logged. */
void l2_shared_init(l2_shared_t *s);
/* Points every client at this master (they reconnect on their next call);
 * returns true when it changed. Any thread. */
bool l2_shared_set_master(l2_shared_t *s, const char *host, int port);
void l2_shared_destroy(l2_shared_t *s);
/* "closed", "open", "half_open", or "disabled". */
const char *l2_state_name(l2_shared_t *s);

/* A client for `loop`, borrowing `s`. NULL on allocation failure. It
 * connects on first use, and again when the master moves. */
l2_t *l2_new(uv_loop_t *loop, l2_shared_t *s);
void l2_get(l2_t *l, const void *key, size_t klen, l2_get_fn cb, void *ctx);
/* SET prefix+key to the envelope, with PX when expires_at_ms > 0, unless
 * Redis holds a newer version. */
void l2_set(l2_t *l, const void *key, size_t klen, const void *value, size_t vlen, const char *ct, size_t ctlen,
            uint64_t version, int64_t expires_at_ms, l2_done_fn cb, void *ctx);
/* Removes prefix+key unless Redis holds a version newer than `version`. */
void l2_del(l2_t *l, const void *key, size_t klen, uint64_t version, l2_done_fn cb, void *ctx);
/* Any other command (the warming jobs' records, leases and key scans),
 * through this loop's connection to the master and the shared breaker.
 * cb runs once, later, from the loop: L2_OK with the reply (an error
 * reply is L2_OK too: look at its type), else L2_UNAVAILABLE and NULL.
 * The reply is valid during the call only. Keys are the caller's: add
 * l2_prefix's prefix to keep them beside dcache's others. */
typedef void (*l2_reply_fn)(void *ctx, l2_result_t res, const redisReply *reply);
void l2_command(l2_t *l, int argc, const char **argv, const size_t *lens, l2_reply_fn cb, void *ctx);
const char *l2_prefix(const l2_t *l, size_t *len);
/* PUBLISH msg on channel (events for applications: --events-channel);
 * L2_OK once Redis took it, whoever listens. */
void l2_publish(l2_t *l, const char *channel, const void *msg, size_t len, l2_done_fn cb, void *ctx);
/* Invalidation at `version`: each key is deleted as by l2_del (unless
 * Redis holds a newer version, it becomes the tombstone `dc0` + version for
 * --l2-tombstone-ttl), many keys per script call. cb(count) at the end,
 * count = the keys that held a value (res L2_UNAVAILABLE when Redis failed
 * part way). */
typedef void (*l2_count_fn)(void *ctx, l2_result_t res, uint64_t unlinked);
/* The keys SCAN MATCH prefix+pattern finds, batch by batch. A key written
 * after the SCAN passed it gets no tombstone. */
void l2_del_matching(l2_t *l, const char *pattern, size_t plen, uint64_t version, l2_count_fn cb, void *ctx);
/* n keys (longer than LIMITS_KEY_MAX: cut there), in chunks. */
void l2_del_keys(l2_t *l, const void *const *keys, const size_t *lens, size_t n, uint64_t version, l2_count_fn cb,
                 void *ctx);
/* Journal mode: appends to the shared journal through this loop's port
 * (journal_append_async, node/l2/journal.h): returns at once, and
 * cb(ctx, status) runs later on this loop, with 0 only once the records
 * are fdatasync'd. Otherwise a negative errno and cb will not run:
 * -ENOTSUP without a journal, -ENOSPC when it is full, -EINVAL, -ENOMEM,
 * -ESHUTDOWN once the port is closing. The records are copied. */
int l2_journal_append(l2_t *l, const journal_rec_t *recs, size_t n, journal_done_fn cb, void *ctx);
/* True once l2_close was called. */
bool l2_closing(const l2_t *l);
/* True when a call now would go to Redis (breaker not open). */
bool l2_available(l2_t *l);
/* Answers what it had deferred (from inside this call), fails the calls in
 * flight, closes the client and its timer, then closes the journal port
 * (its appends still in flight complete first, so a write its caller
 * journaled while the client closed is still answered), and calls `done`
 * once, on the loop, after all of that, never from inside this call. */
void l2_close(l2_t *l, void (*done)(void *arg), void *arg);
/* Only after l2_close's `done`. NULL is ignored. */
void l2_free(l2_t *l);

/* Envelope codec (exposed for tests). */
size_t l2_envelope_size(size_t ctlen, size_t vlen);
void l2_envelope_encode(char *out, uint64_t version, int64_t expires_at_ms, const char *ct, size_t ctlen,
                        const void *value, size_t vlen);
bool l2_envelope_decode(const char *in, size_t len, l2_value_t *out);

#endif
