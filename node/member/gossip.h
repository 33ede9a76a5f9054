/* gossip: the real driver of the SWIM core (cluster/swim.h) on the main
 * libuv loop: a UDP socket for probes and gossip, TCP on the same port for
 * push-pull state exchange (and, through `divert`, for whoever else shares
 * the port: the peer channel), sealing with the cluster keyring, joining
 * through seed addresses (resolved with uv_getaddrinfo, retried with
 * backoff), graceful leave, and a thread-safe snapshot of the member list
 * and counters for the HTTP workers.
 *
 * Threads: gossip_start, gossip_leave and gossip_stop run on the main loop
 * thread; gossip_members_json and gossip_get_metrics may be called from any
 * thread (they read a snapshot under a mutex).
 * Ownership: gossip_t owns the core, its sockets and its exchanges.
 */
#ifndef DCACHE_GOSSIP_H
#define DCACHE_GOSSIP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "cluster/seal.h"
#include "cluster/swim.h"
#include "node/core/sbuf.h"
#include "node/metrics/metrics.h"

typedef struct gossip gossip_t;

#define GOSSIP_PEER_SHARED (-1)

typedef struct gossip_config {
    const char *name;            /* unique in the cluster; NULL/"" = host name:cluster port */
    const char *bind_host;       /* UDP/TCP bind address */
    int port;                    /* 0 = pick one (tests) */
    const char *advertise_host;  /* address others use to reach us */
    const char *seeds;           /* "host:port,host:port" or NULL */
    const char *zone;
    int http_port;               /* advertised with the member */
    int peer_port;               /* the peer channel, advertised; 0 = none;
                                  * GOSSIP_PEER_SHARED = this (cluster) port */
    const char *http_host;
    /* Sharing the TCP port: a connection whose first byte is divert_byte is
     * not push-pull (whose first byte is the top of a length of at most
     * 32 MiB: 0x00..0x02). divert gets a duplicate of its socket (gossip
     * closes its own) and the bytes read after that first byte (valid during
     * the call); it owns the socket from then on and closes it if it cannot
     * serve it. Runs on the main loop. NULL: every connection is push-pull. */
    void (*divert)(void *ctx, uv_os_sock_t fd, const uint8_t *data, size_t len);
    void *divert_ctx;
    uint8_t divert_byte;
    seal_keyring_t keyring;
    swim_config_t swim;          /* timings; self, incarnation and seed are filled in */
} gossip_config_t;

typedef struct gossip_metrics {
    swim_stats_t swim;
    uint64_t members[4];         /* by swim_state_t */
    uint64_t drops_auth;         /* failed authentication (wrong key, forged) */
    uint64_t drops_checksum;
    uint64_t drops_version;      /* unknown framing byte, or plain when a key is set */
    uint64_t drops_short;
    uint64_t send_errors;
    uint64_t exchanges_ok, exchanges_failed;
    uint64_t accepts_refused;    /* cluster-port connections refused: over the
                                  * per-address or total limit */
    bool joined;
} gossip_metrics_t;

/* gossip_metrics_t's series in /metrics, the SWIM core's counters
 * included (cluster/ knows nothing of metric tables). */
extern const metrics_table_t gossip_metrics_table;

/* Membership changes, delivered on the main loop (the ring subscribes). */
typedef void (*gossip_event_fn)(const swim_event_t *ev, void *ctx);

/* Binds and starts; returns 0 or a negative uv error (message logged). */
int gossip_start(gossip_t **out, uv_loop_t *loop, const gossip_config_t *cfg);
int gossip_port(const gossip_t *g);
void gossip_subscribe(gossip_t *g, gossip_event_fn fn, void *ctx);
/* Called on the main loop, with the member's name, each time a member
 * pings this node or answers it (swim_callbacks_t.heard). One listener;
 * a later call replaces it. */
typedef void (*gossip_heard_fn)(const char *name, void *ctx);
void gossip_on_heard(gossip_t *g, gossip_heard_fn fn, void *ctx);
/* Every member record, self included (main loop thread only). */
void gossip_foreach(gossip_t *g, swim_member_fn fn, void *ctx);
/* A SWIM address as a socket address (returns its length), or as text
 * ("1.2.3.4:7946", "[::1]:7946"; "" when unset). */
socklen_t gossip_sockaddr(const swim_addr_t *a, struct sockaddr_storage *ss);
void gossip_addr_text(const swim_addr_t *a, char *buf, size_t cap);
/* Announces the leave and calls `done` once it had time to spread (on the
 * next loop turn when there is nobody to tell). */
void gossip_leave(gossip_t *g, void (*done)(void *arg), void *arg);
/* Closes everything; `done` runs when the handles are closed. */
void gossip_stop(gossip_t *g, void (*done)(void *arg), void *arg);
/* Frees what gossip_start allocated; after gossip_stop's `done`, or after
 * a failed start once its handles are closed. */
void gossip_free(gossip_t *g);
const char *gossip_name(const gossip_t *g);
/* This run's SWIM id (SWIM_ID_LEN bytes, fixed for the process's life). */
const uint8_t *gossip_run(const gossip_t *g);

/* JSON {"self":..,"members":[...]} of the latest snapshot (any thread). */
void gossip_members_json(gossip_t *g, sbuf_t *out);
void gossip_get_metrics(gossip_t *g, gossip_metrics_t *out);

#endif
