/* limits: the sizes every layer agrees on, named once. A key or a content
 * type that one layer accepts must fit every other (L1, the peer wire, the
 * Redis envelope), and a zone label travels in gossip and lives in the
 * ring. Header only. */
#ifndef DCACHE_LIMITS_H
#define DCACHE_LIMITS_H

#define LIMITS_KEY_MAX 1024u    /* key bytes */
#define LIMITS_CTYPE_MAX 255u   /* content type bytes (one length byte on the wire and in the journal) */
#define LIMITS_ZONE_MAX 32      /* zone label bytes including the NUL */
/* A value travels between nodes (forwarding, replication, handoff) in one
 * peer frame, so no node may accept a larger one. */
#define LIMITS_VALUE_MAX (8u << 20)

#endif
