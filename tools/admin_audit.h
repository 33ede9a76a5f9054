/* dcache-admin audit: the node's audit trail (GET /api/audit), newest
 * first, as a table or JSON. */
#ifndef DCACHE_ADMIN_AUDIT_H
#define DCACHE_ADMIN_AUDIT_H

#include "tools/admin.h"
#include "tools/admin_http.h"

int admin_audit(admin_http *h, const admin_opts *o);

#endif
