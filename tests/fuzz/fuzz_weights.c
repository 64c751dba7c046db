/* fuzz_weights.c - libFuzzer harness: the Keras weights loader on mutated
 * files: weights_read_info (class count, training size) and
 * weights_load_keras into a 2-class model (the seeds' model). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "unet/model.h"
#include "unet/weights_info.h"
#include "unet/weights_keras.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static UNet model;
  static int built = 0;
  char err[1024];
  if (!built) {
    if (unet_create(&model, 16, 16, 2, err, sizeof err) != 0) abort();
    built = 1;
  }
  const char *path = fuzz_write_input(data, size);
  WeightsInfo info;
  weights_read_info(path, &info, err, sizeof err);
  weights_load_keras(&model, path, err, sizeof err);
  return 0;
}
