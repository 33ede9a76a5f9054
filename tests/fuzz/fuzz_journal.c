/* libFuzzer target for the journal reader: a node restarted after a crash
 * reads whatever its journal files hold. Arbitrary bytes as journal.active
 * must open (a torn or corrupt tail is cut off) or fail with a message,
 * never crash; every record read back is well-formed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/l2/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static volatile uint8_t sink;

static int check_rec(const journal_rec_t *rec, void *ctx)
{
    (void)ctx;
    if (rec->op != JOURNAL_OP_SET && rec->op != JOURNAL_OP_DEL) __builtin_trap();
    if (!rec->klen || rec->klen > 65535 || rec->ctlen > 255) __builtin_trap();
    /* Touch every byte, so ASan sees a record pointing past the file. */
    uint8_t sum = 0;
    for (size_t i = 0; i < rec->klen; i++) sum += ((const uint8_t *)rec->key)[i];
    for (size_t i = 0; i < rec->vlen; i++) sum += ((const uint8_t *)rec->value)[i];
    for (size_t i = 0; i < rec->ctlen; i++) sum += (uint8_t)rec->ct[i];
    sink = sum;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/dev/shm/dcache-fuzz-journal.%d", (int)getpid());
        mkdir(dir, 0700);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/journal.active", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    journal_t *j = NULL;
    char err[256];
    if (journal_open(&j, dir, 65536, err, sizeof err) == 0) {
        if (journal_drain_begin(j) > 0) {
            uint64_t pos = 0;
            while (journal_drain_read(j, &pos, 64, check_rec, NULL) > 0) {
            }
        }
        journal_close(j);
    }
    snprintf(path, sizeof path, "%s/journal.draining", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/journal.active", dir);
    unlink(path);
    return 0;
}
