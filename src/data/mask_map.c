/* mask_map.c - raw mask values -> class ids; see mask_map.h. */
#include "unet/mask_map.h"

#include "unet/shard.h"

void mask_map_init(MaskMap *m, const int *values, int n, int threshold, int ignore_value) {
  for (int v = 0; v < 256; v++) m->lut[v] = threshold >= 0 ? (v >= threshold ? 1 : 0) : MASK_MAP_BAD;
  if (threshold < 0)
    for (int c = 0; c < n; c++)
      if (values[c] >= 0 && values[c] <= 255) m->lut[values[c]] = (uint16_t)c;
  if (ignore_value >= 0 && ignore_value <= 255) m->lut[ignore_value] = SHARD_IGNORE_ID;
}

long mask_map_count_bad(const MaskMap *m, const uint8_t *px, size_t n, long *first) {
  if (first) *first = -1;
  uint8_t any_bad = 0; /* branch-free pass; the bad pixels are looked up only on failure */
  for (size_t q = 0; q < n; q++) any_bad |= (uint8_t)(m->lut[px[q]] >> 8);
  if (!any_bad) return 0;
  long bad = 0;
  for (size_t q = 0; q < n; q++)
    if (m->lut[px[q]] == MASK_MAP_BAD) {
      if (first && *first < 0) *first = (long)q;
      bad++;
    }
  return bad;
}

long mask_map_apply(const MaskMap *m, uint8_t *px, size_t n, int ignore_value) {
  long ignored = 0;
  for (size_t q = 0; q < n; q++) {
    px[q] = (uint8_t)m->lut[px[q]];
    ignored += px[q] == SHARD_IGNORE_ID && ignore_value >= 0;
  }
  return ignored;
}
