#include "node/api/api.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "node/api/events.h"
#include "node/core/sysinfo.h"
#include "node/route/route_serve.h"
#include "node/warm/hotkeys.h"

bool api_init(api_t *a, const config_t *cfg, store_t *store, metrics_t *metrics, metrics_history_t *history,
              char *err, size_t errcap)
{
    memset(a, 0, sizeof *a);
    route_init(&a->route, cfg, store, metrics);
    a->cfg = cfg;
    a->store = store;
    a->metrics = metrics;
    a->history = history;
    a->started_ms = sysinfo_now_ms();
    events_config_t ec = {.run = a->started_ms};
    a->feed.events = events_new(&ec);
    a->feed.route = &a->route;
    a->route.on_event = api_events_received;
    a->route.on_event_ctx = &a->feed;
    if (!a->feed.events) {
        snprintf(err, errcap, "out of memory");
        api_destroy(a);
        return false;
    }
    if (api_auth_init(&a->auth, cfg, err, errcap)) return true;
    api_destroy(a);
    return false;
}

void api_destroy(api_t *a)
{
    events_free(a->feed.events);
    a->feed.events = NULL;
    api_auth_destroy(&a->auth);
    route_destroy(&a->route);
}

static void api_worker_hot_publish(uv_timer_t *t)
{
    api_worker_t *w = t->data;
    hotkeys_publish(w->hot);
}

int api_worker_init(api_worker_t *w, api_t *a, uv_loop_t *loop)
{
    w->api = a;
    int rc = route_worker_init(&w->route, &a->route, loop, route_serve, &w->route);
    if (rc == 0) rc = api_events_worker_init(&w->events, &a->feed, loop);
    /* Seeded at random: a client must not be able to aim at a key's cells. */
    hotkeys_config_t hc = {.seed = ((uint64_t)randombytes_random() << 32) | randombytes_random()};
    if (rc == 0 && (w->hot = hotkeys_new(&hc))) {
        for (size_t i = 0; i < API_MAX_WORKERS; i++) {
            struct hotkeys *none = NULL;
            if (atomic_compare_exchange_strong(&a->hot[i], &none, w->hot)) break;
        }
        uv_timer_init(loop, &w->hot_publish);
        w->hot_publish.data = w;
        uv_timer_start(&w->hot_publish, api_worker_hot_publish, API_HOT_PUBLISH_MS, API_HOT_PUBLISH_MS);
        w->hot_timer = true;
    }
    return rc;
}

void api_worker_close(api_worker_t *w, void (*done)(void *arg), void *arg)
{
    api_events_worker_close(&w->events);
    if (w->hot_timer) uv_close((uv_handle_t *)&w->hot_publish, NULL);
    w->hot_timer = false;
    route_worker_close(&w->route, done, arg);
}

void api_worker_free(api_worker_t *w)
{
    route_worker_free(&w->route);
    for (size_t i = 0; w->hot && i < API_MAX_WORKERS; i++) {
        struct hotkeys *mine = w->hot;
        if (atomic_compare_exchange_strong(&w->api->hot[i], &mine, NULL)) break;
    }
    hotkeys_free(w->hot);
    w->hot = NULL;
}

size_t api_hotkeys(api_t *a, struct hotkeys **out)
{
    size_t n = 0;
    for (size_t i = 0; i < API_MAX_WORKERS; i++) {
        struct hotkeys *h = atomic_load(&a->hot[i]);
        if (h) out[n++] = h;
    }
    return n;
}

bool api_register_server(api_t *a, http_server_stats_t *stats)
{
    int i = atomic_load(&a->nworkers);
    if (i >= API_MAX_WORKERS) return false;
    a->http_stats[i] = stats;
    atomic_store(&a->nworkers, i + 1);
    return true;
}
