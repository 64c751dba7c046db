/* mask_map.h - raw mask values -> class ids, as unet-preprocess maps them
 * (src/data/mask_map.c): a 256-entry table built from one of the mapping
 * options (--mask-values v0,v1,... or --mask-threshold T, each with an
 * optional --ignore-value V stored as SHARD_IGNORE_ID), checked over every
 * source pixel and applied after the nearest resize. */
#ifndef UNET_MASK_MAP_H
#define UNET_MASK_MAP_H
#include <stddef.h>
#include <stdint.h>

#define MASK_MAP_BAD 0x100 /* table entry of a raw value outside the mapping */

typedef struct {
  uint16_t lut[256]; /* raw value -> class id, SHARD_IGNORE_ID, or MASK_MAP_BAD */
} MaskMap;

/* values[c] is the raw value of class c (n classes, each 0..255); threshold
 * >= 0 instead maps raw >= threshold to 1 and below to 0 (values ignored);
 * ignore_value >= 0 maps that raw value to SHARD_IGNORE_ID (it wins over a
 * class). Values outside 0..255 are left out. */
void mask_map_init(MaskMap *m, const int *values, int n, int threshold, int ignore_value);
/* Pixels of px[n] whose value is outside the mapping; *first (may be NULL)
 * gets the index of the first one, -1 when none. */
long mask_map_count_bad(const MaskMap *m, const uint8_t *px, size_t n, long *first);
/* px[i] = class id of px[i] for every pixel (all must be in the mapping);
 * returns how many became SHARD_IGNORE_ID through ignore_value. */
long mask_map_apply(const MaskMap *m, uint8_t *px, size_t n, int ignore_value);

#endif
