/* fuzz_shard.c - libFuzzer harness: the shard reader (shard.h) on mutated
 * shard files: open and validate, then every sample (image, mask, name), as
 * the data loader reads them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_file.h"
#include "unet/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_input(data, size);
  char err[1024];
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  if (!r) return 0;
  const ShardInfo *info = shard_reader_info(r);
  size_t pixels = (size_t)info->height * info->width;
  /* the reader accepts up to SHARD_MAX_SIDE on a side; a valid header for a
   * gigapixel sample is no finding, reading it would only be slow */
  if (pixels <= ((size_t)1 << 20)) {
    uint8_t *image = malloc(pixels * 3), *mask = malloc(pixels);
    char name[SHARD_NAME_MAX];
    long n = shard_reader_count(r);
    for (long i = 0; i < n && i < 64; i++) shard_reader_read(r, i, image, mask, name, sizeof name, err, sizeof err);
    free(image);
    free(mask);
  }
  shard_reader_close(r);
  return 0;
}
