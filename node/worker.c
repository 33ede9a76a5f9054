#include "node/worker.h"

#include <string.h>

#include "node/api/api_router.h"
#include "node/core/log.h"

static void worker_peers_closed(void *arg)
{
    worker_t *w = arg;
    uv_close((uv_handle_t *)&w->stop, NULL);
}

/* HTTP first: the requests still in flight may need peers to finish. */
static void worker_drained(void *arg)
{
    worker_t *w = arg;
    if (w->aw_ready) api_worker_close(&w->aw, worker_peers_closed, w);
    else worker_peers_closed(w);
}

static void worker_stop_cb(uv_async_t *a)
{
    worker_t *w = a->data;
    http_server_shutdown(w->server, worker_drained, w);
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    w->start_rc = api_worker_init(&w->aw, w->api, &w->loop);
    if (w->start_rc != 0) {
        uv_sem_post(&w->started);
        return;
    }
    w->aw_ready = true;
    http_handler_t h = api_router_handler(&w->aw);
    w->server = http_server_new(&w->loop, &w->limits, &h);
    if (!w->server) {
        w->start_rc = UV_ENOMEM;
        uv_sem_post(&w->started);
        return;
    }
    w->start_rc = http_server_listen(w->server, w->host, w->port);
    if (w->start_rc == 0) {
        w->port = http_server_port(w->server);
        api_register_server(w->api, http_server_stats(w->server));
        if (w->peer_shared) {
            w->start_rc = peer_server_adopt_start(w->aw.route.peer_server);
        } else if (w->peer_host) {
            w->start_rc = peer_server_listen(w->aw.route.peer_server, w->peer_host, w->peer_port);
            if (w->start_rc == 0) w->peer_port = peer_server_port(w->aw.route.peer_server);
        }
    }
    uv_sem_post(&w->started);
    if (w->start_rc != 0) return;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

int worker_start(worker_t *w)
{
    int rc;
    if ((rc = uv_loop_init(&w->loop)) != 0) return rc;
    uv_async_init(&w->loop, &w->stop, worker_stop_cb);
    w->stop.data = w;
    uv_sem_init(&w->started, 0);
    if ((rc = uv_thread_create(&w->thread, worker_main, w)) != 0) return rc;
    uv_sem_wait(&w->started);
    if (w->start_rc != 0) uv_thread_join(&w->thread);
    return w->start_rc;
}

int worker_adopt_peer(worker_t *w, uv_os_sock_t fd, const uint8_t *data, size_t len)
{
    return peer_server_adopt(w->aw.route.peer_server, fd, data, len);
}

void worker_stop(worker_t *w)
{
    uv_async_send(&w->stop);
}

void worker_join(worker_t *w)
{
    uv_thread_join(&w->thread);
    uv_sem_destroy(&w->started);
    uv_loop_close(&w->loop);
    http_server_free(w->server);
    w->server = NULL;
    if (w->aw_ready) api_worker_free(&w->aw);
    w->aw_ready = false;
}
