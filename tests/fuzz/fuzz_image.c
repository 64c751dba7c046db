/* fuzz_image.c - libFuzzer harness: JPEG and PNG decoding (by content) to RGB
 * and to gray, then the resizes the data pipeline applies (bilinear u8 and
 * float, nearest) to an output size taken from the input's first bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "unet/image.h"
#include "unet/resize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int oh = 1 + data[0] % 40, ow = 1 + data[1] % 40; /* small outputs: every input pixel path, little time */
  data += 2, size -= 2;
  char err[512];
  Image img = {0};
  if (image_decode_rgb(data, size, &img, err, sizeof err) == 0) {
    uint8_t *u8 = malloc((size_t)oh * ow * 3);
    float *f32 = malloc((size_t)oh * ow * 3 * sizeof(float));
    resize_bilinear_u8(img.pixels, img.height, img.width, 3, u8, oh, ow);
    resize_bilinear_f32(img.pixels, img.height, img.width, 3, f32, oh, ow);
    free(u8);
    free(f32);
    image_free(&img);
  }
  if (image_decode_gray(data, size, &img, err, sizeof err) == 0) {
    uint8_t *u8 = malloc((size_t)oh * ow);
    resize_nearest_u8(img.pixels, img.height, img.width, 1, u8, oh, ow);
    free(u8);
    image_free(&img);
  }
  return 0;
}
