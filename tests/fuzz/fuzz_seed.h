/* What the fuzz targets share: writing a seed input into run.sh's corpus
 * directory (FUZZ_SEED_DIR). */
#ifndef DCACHE_FUZZ_SEED_H
#define DCACHE_FUZZ_SEED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static inline void fuzz_write_seed(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, len, f);
    fclose(f);
}

#endif
