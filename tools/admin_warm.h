/* dcache-admin warm: warming jobs (README "Warming") through
 * /api/warming/: list, add (create or replace from a JSON file), delete,
 * run, ad-hoc runs of keys or a pattern, cancel, and the history of runs.
 *
 * Same conventions as admin_cache.h: results on stdout, errors on stderr,
 * an ADMIN_EXIT_* code returned. The subcommand is o->args[0]; its arity
 * is checked here (a usage error is ADMIN_EXIT_USAGE).
 */
#ifndef DCACHE_ADMIN_WARM_H
#define DCACHE_ADMIN_WARM_H

#include "tools/admin.h"
#include "tools/admin_http.h"

int admin_warm(admin_http *h, const admin_opts *o);

#endif
