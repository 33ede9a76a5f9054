/* warm_hot: the cluster's predicted hot keys, as this node knows them.
 * Each node counts the GETs it receives (hotkeys.h, one per worker);
 * every few seconds main hands this node's merged top list here and
 * shares its first WARM_HOT_SHARED keys with the other members (an event
 * relayed to each, type "hot"), whose lists come back here. The cluster's
 * hot keys are the sum, by key, of the lists fresher than
 * WARM_HOT_FRESH_MS: what warming's `hot` source and the prefetch after a
 * ring change load, and what GET /api/warming/hot shows.
 *
 * Bounds: this node's list as given (main keeps it to a few hundred keys),
 * WARM_HOT_SHARED keys from each of at most WARM_HOT_NODES other members
 * (the stalest list gives way to a new member's).
 *
 * Ownership: warm_t embeds one (warm_hot_init, warm_hot_destroy); lists
 * handed in are copied; what warm_hot_merged returns is the caller's.
 * Threads: any (one mutex, held only to swap or copy the lists).
 */
#ifndef DCACHE_WARM_HOT_H
#define DCACHE_WARM_HOT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "node/core/sbuf.h"
#include "node/warm/hotkeys.h"

#define WARM_HOT_SHARED 32          /* keys of its top list a node shares with the others */
#define WARM_HOT_NODES 256          /* other members' lists kept */
#define WARM_HOT_FRESH_MS 30000     /* a list older than this is forgotten */

typedef struct warm_hot_item {
    uint64_t count;
    size_t klen;
    char *key;                   /* owned */
} warm_hot_item_t;

/* Another member's shared list. */
typedef struct warm_hot_list {
    char node[64];               /* "" = slot free */
    int64_t at;                  /* when it arrived (wall ms) */
    warm_hot_item_t *items;
    size_t n;
} warm_hot_list_t;

typedef struct warm_hot {
    pthread_mutex_t mu;          /* guards the lists */
    warm_hot_item_t *local;      /* this node's */
    size_t nlocal;
    warm_hot_list_t remote[WARM_HOT_NODES];
} warm_hot_t;

/* 0, or an error from pthread_mutex_init. */
int warm_hot_init(warm_hot_t *h);
void warm_hot_destroy(warm_hot_t *h);

/* This node's list (copied). */
void warm_hot_local(warm_hot_t *h, const hotkeys_entry_t *e, size_t n);
/* Another member's list, as its "hot" event carries it:
 * {"node": NAME, "keys": [{"key": K, "count": N}, ...]}; anything else is
 * ignored. */
void warm_hot_remote(warm_hot_t *h, const char *json, size_t len);
/* The event this node shares: its list as above (keys that are not UTF-8
 * stay this node's own). */
void warm_hot_event(const char *node, const hotkeys_entry_t *e, size_t n, sbuf_t *out);

/* This node's list and the others' fresh ones, summed by key, hottest
 * first; *out is the caller's (warm_hot_items_free). */
size_t warm_hot_merged(warm_hot_t *h, warm_hot_item_t **out);
void warm_hot_items_free(warm_hot_item_t *items, size_t n);
/* {"keys":[{"key","count"}], "nodes": lists merged}, at most limit. */
void warm_hot_json(warm_hot_t *h, size_t limit, sbuf_t *out);

#endif
