/* admin_token: `dcache-admin token add NAME ROLE --file FILE`, the one
 * command that talks to no node: it makes a random token, appends the line
 * a node reads (NAME ROLE HASH, never the token) to the tokens file,
 * creating it mode 0600, and prints the token, once. */
#ifndef DCACHE_ADMIN_TOKEN_H
#define DCACHE_ADMIN_TOKEN_H

#include "tools/admin.h"

int admin_token_run(const admin_opts *o);

#endif
