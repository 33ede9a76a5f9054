/* events: the node's live feed (GET /api/events): invalidations and
 * deletes, membership and ring changes, warming progress and a metrics
 * tick, kept in a bounded ring so a client that reconnects resumes where it
 * stopped (Last-Event-ID).
 *
 * An event is a type ("invalidate", "member", "metrics", ...) and a JSON
 * object, numbered in publishing order. Ids are "<run>-<seq>": run is the
 * process's start time in ms, so an id from before a restart is known as
 * such (what the client missed cannot be told: it is told so).
 *
 * Bounds: at most max_events events and max_bytes of data are kept; older
 * ones are dropped (a reader that asks for them learns of the gap). At
 * most EVENTS_SUBSCRIBERS loops subscribe.
 *
 * Threads: every function may be called from any thread (one mutex).
 * Subscribers' wake callbacks run on the publishing thread, under the
 * lock: they must only signal their loop (uv_async_send).
 * Ownership: the creator owns the events_t; events own copies of their
 * data.
 */
#ifndef DCACHE_EVENTS_H
#define DCACHE_EVENTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/metrics/metrics.h"

#define EVENTS_SUBSCRIBERS 64
#define EVENTS_TYPE_MAX 24

typedef struct events_config {
    size_t max_events;           /* 4096 */
    size_t max_bytes;            /* 4 MiB */
    int64_t run;                 /* this run's id (start time in ms) */
} events_config_t;

typedef struct events_stats {
    atomic_uint_fast64_t published;
    atomic_uint_fast64_t relayed, relay_failed;  /* sent to other members (api_events' relay) */
    atomic_uint_fast64_t received;              /* relayed here by other members */
    atomic_uint_fast64_t redis_published, redis_failed; /* --events-channel */
    atomic_uint_fast64_t dropped;       /* pushed out of the ring by newer ones */
    atomic_int_fast64_t kept, bytes;
} events_stats_t;

extern const metrics_table_t events_metrics_table;

typedef struct events events_t;

events_t *events_new(const events_config_t *cfg);
void events_free(events_t *e);
/* Publishes an event; returns its sequence number (0: no memory, not
 * published). data is a JSON object, copied. relay: this node is where it
 * happened and the other members' feeds should have it too (api_events'
 * relay sends it on); false for what only this node sees (its view of
 * membership) or what another member relayed here. */
uint64_t events_publish(events_t *e, const char *type, const char *data, size_t len, bool relay);
/* Registers wake(ctx), called after each publish; returns a slot for
 * events_unsubscribe, or -1 when full. */
int events_subscribe(events_t *e, void (*wake)(void *ctx), void *ctx);
void events_unsubscribe(events_t *e, int slot);

/* Calls fn for each event after sequence `after`, oldest first, at most
 * max of them, without the lock held (copies are taken); returns the
 * sequence of the last one given (or `after`). *gap is set when events
 * after `after` were already dropped (fn then starts at the oldest kept). */
typedef void (*events_fn)(uint64_t seq, const char *type, const char *data, size_t len, bool relay, void *ctx);
uint64_t events_read(events_t *e, uint64_t after, size_t max, events_fn fn, void *ctx, bool *gap);
/* The newest sequence number (0: none yet). */
uint64_t events_last(events_t *e);
int64_t events_run(const events_t *e);
events_stats_t *events_stats(events_t *e);

/* Parses a Last-Event-ID ("<run>-<seq>"): the sequence to resume after
 * when it is of this run; false when malformed or of another run. */
bool events_parse_id(const events_t *e, const char *s, size_t len, uint64_t *seq);

#endif
