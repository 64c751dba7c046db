/* fuzz_mask.c - libFuzzer harness: mask decoding (image_decode_mask: gray,
 * RGB, palette PNG by index, JPEG luma) with each of unet-preprocess's
 * mapping options chosen by the first input byte: --mask-values (a list of
 * raw values from the input), --mask-threshold T, each with or without
 * --ignore-value V; then the source check, the nearest resize and the
 * mapping, as the preprocessor runs them (mask_map.h). */
#include <stdint.h>
#include <stdlib.h>

#include "unet/image.h"
#include "unet/mask_map.h"
#include "unet/resize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  const int option = data[0] % 4;   /* 0 values, 1 values + ignore, 2 threshold, 3 threshold + ignore */
  const int nvalues = 1 + data[1] % 6;
  int values[6];
  for (int c = 0; c < nvalues; c++) values[c] = data[2 + c % 4];
  const int threshold = option >= 2 ? 1 + data[6] % 255 : -1;
  const int ignore = option % 2 ? data[7] : -1;
  const int oh = 1 + data[2] % 33, ow = 1 + data[3] % 33;
  data += 8, size -= 8;
  char err[512];
  Image mask = {0};
  int was_palette = 0;
  if (image_decode_mask(data, size, &mask, &was_palette, err, sizeof err) != 0) return 0;
  MaskMap map;
  mask_map_init(&map, values, nvalues, threshold, ignore);
  long first = -1;
  long bad = mask_map_count_bad(&map, mask.pixels, (size_t)mask.width * mask.height, &first);
  if ((bad > 0) != (first >= 0) || (bad > 0 && map.lut[mask.pixels[first]] != MASK_MAP_BAD)) abort();
  if (bad == 0) {
    uint8_t *out = malloc((size_t)oh * ow);
    resize_nearest_u8(mask.pixels, mask.height, mask.width, 1, out, oh, ow);
    mask_map_apply(&map, out, (size_t)oh * ow, ignore);
    /* every stored id is a class of the mapping or the ignore id */
    int classes = threshold >= 0 ? 2 : nvalues;
    for (int q = 0; q < oh * ow; q++)
      if (out[q] >= classes && !(ignore >= 0 && out[q] == 255)) abort();
    free(out);
  }
  image_free(&mask);
  return 0;
}
