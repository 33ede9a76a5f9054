/* swim_table: the member records of one SWIM core, indexed by id and by
 * name, stored in one array whose order is also the probe order (the core
 * shuffles it each round, as memberlist does). Internal to cluster/swim*.
 *
 * Ownership: the table owns its arrays; records point at member info the
 * core acquired (the table never frees info). Not thread-safe.
 */
#ifndef DCACHE_SWIM_TABLE_H
#define DCACHE_SWIM_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/swim_proto.h"

#define SWIM_NONE UINT32_MAX
#define SWIM_MAX_CONFIRM 8

typedef struct swim_suspicion {
    int64_t start_ms;
    int64_t min_ms, max_ms;
    int64_t deadline_ms;
    unsigned expected;                    /* confirmations that shrink the timeout to min */
    unsigned confirmations;
    swim_id_t origin;                     /* who raised it: not a confirmation */
    swim_id_t confirmers[SWIM_MAX_CONFIRM];
} swim_suspicion_t;

typedef struct swim_rec {
    swim_id_t id;
    const swim_member_info_t *info;
    uint64_t incarnation;
    int64_t state_change_ms;
    swim_suspicion_t *susp;               /* owned; set while suspect */
    uint8_t state;                        /* swim_state_t */
} swim_rec_t;

typedef struct swim_table {
    swim_rec_t *recs;
    uint32_t n, cap;
    uint32_t *by_id, *by_name;            /* open addressing, values are record index + 1 */
    uint32_t slots;                       /* power of two, >= 2 * n */
    uint8_t hkey[16];                     /* SipHash key for names */
} swim_table_t;

bool swim_table_init(swim_table_t *t, uint64_t seed);
void swim_table_destroy(swim_table_t *t);
uint32_t swim_table_find_id(const swim_table_t *t, const swim_id_t *id);
uint32_t swim_table_find_name(const swim_table_t *t, const char *name);
/* Appends a record (its id and info->name must be new); returns its index
 * or SWIM_NONE on allocation failure. */
uint32_t swim_table_add(swim_table_t *t, const swim_rec_t *r);
/* Removes record i by moving the last record into its place. */
void swim_table_remove(swim_table_t *t, uint32_t i);
void swim_table_swap(swim_table_t *t, uint32_t i, uint32_t j);
/* Changes record i's id (a restarted member keeps its name). */
void swim_table_set_id(swim_table_t *t, uint32_t i, const swim_id_t *id);

#endif
