/* api_dashboard: the web dashboard (dashboard/, a Vite + React app) served
 * at / from files embedded in the binary at build time
 * (tools/dashboard-embed.sh writes the table), so every node serves the
 * same dashboard and needs nothing on disk.
 *
 * The files hold no data, so they need no token: the page asks for one and
 * sends it with its API calls. Every answer carries a strict
 * Content-Security-Policy (scripts, styles and connections to this node
 * only), so a value shown in the key explorer cannot run as script.
 * Hashed files under /assets/ are cached for a year; index.html is
 * revalidated by its ETag, so a node upgrade reaches open browsers.
 *
 * Threads: the table is read-only and shared by every worker.
 */
#ifndef DCACHE_API_DASHBOARD_H
#define DCACHE_API_DASHBOARD_H

#include <stddef.h>

#include "http/http_server.h"
#include "node/api/api.h"

typedef struct api_dashboard_asset {
    const char *path;              /* "/index.html", "/assets/index-3f2a.js" */
    const char *content_type;
    const char *etag;              /* quoted */
    const unsigned char *raw;
    size_t raw_len;
    const unsigned char *gz;       /* NULL: gzip would not be smaller */
    size_t gz_len;
} api_dashboard_asset_t;

/* The generated table (static storage). */
extern const api_dashboard_asset_t api_dashboard_assets[];
extern const size_t api_dashboard_nassets;

#define API_DASHBOARD_ASSETS_PREFIX "/assets/"

/* The asset at path ("/" is "/index.html"), or NULL. */
const api_dashboard_asset_t *api_dashboard_find(const char *path, size_t len);

/* Whether an Accept-Encoding header value accepts gzip (by name or "*",
 * with a q above 0). */
bool api_dashboard_accepts_gzip(const char *value, size_t len);

/* GET / , /index.html and /assets/...: the file, gzip'd when the client
 * takes it, 304 for a matching If-None-Match, 404 JSON for a name not in
 * the table. */
void api_dashboard_serve(api_worker_t *w, http_request_t *r);

#endif
