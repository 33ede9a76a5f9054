/* dcache-admin: the operator commands (invalidate, invalidate-pattern,
 * preview, metrics, health, members, ring).
 *
 * Same conventions as admin_cache.h: results on stdout, errors on stderr,
 * an ADMIN_EXIT_* code returned.
 */
#ifndef DCACHE_ADMIN_OPS_H
#define DCACHE_ADMIN_OPS_H

#include "tools/admin.h"
#include "tools/admin_http.h"

int admin_ops_invalidate(admin_http *h, const admin_opts *o);
int admin_ops_invalidate_pattern(admin_http *h, const admin_opts *o);
int admin_ops_preview(admin_http *h, const admin_opts *o);
int admin_ops_metrics(admin_http *h, const admin_opts *o);
int admin_ops_health(admin_http *h, const admin_opts *o);
int admin_ops_members(admin_http *h, const admin_opts *o);
int admin_ops_ring(admin_http *h, const admin_opts *o);

#endif
