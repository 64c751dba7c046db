/* decode_png.c - PNG to 8-bit gray / RGB with libpng, applying the same
 * libpng transformations, in the same order, as TensorFlow's
 * png::CommonInitDecode for decode_png(channels=1|3, dtype=uint8):
 *   - alpha (RGBA, gray+alpha, tRNS) is stripped,
 *   - 16-bit samples keep their high byte (png_set_strip_16, not scale_16:
 *     TF's choice, so 0x12FF -> 0x12),
 *   - palette -> RGB, gray 1/2/4-bit -> 8-bit,
 *   - 3 channels from gray: replicated (png_set_gray_to_rgb),
 *   - 1 channel from colour (RGB or palette): png_set_rgb_to_gray(1, 0.299,
 *     0.587), i.e. libpng's fixed-point (9797 R + 19234 G + 3737 B) >> 15
 *     (29900 and 58700 / 100000 scaled to 1/32768, truncated; blue = rest),
 *     truncating, for pixels whose R, G, B differ; gray pixels pass through.
 *     Masks that are already gray (Oxford trimaps 1/2/3, membrane 0/255) are
 *     returned exactly as stored.
 * One deliberate difference, for masks only (palette_index): a palette PNG keeps
 * its palette indices as the values (PASCAL VOC style class ids, as PIL,
 * torchvision and the VOC tools read them), where TF would convert the palette
 * colours to gray. Images always follow TF.
 * libpng errors (bad CRC in a critical chunk, truncated data, missing IEND)
 * come back as -1 with libpng's message; warnings are dropped silently. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

typedef struct {
  const uint8_t *data;
  size_t left;
  char message[PNG_MESSAGE_LEN];
  uint8_t *pixels;
  png_bytep *rows;
} PngDecodeState;

void png_error_to_message(png_structp png, png_const_charp msg) {
  snprintf((char *)png_get_error_ptr(png), PNG_MESSAGE_LEN, "%s", msg);
  png_longjmp(png, 1);
}

void png_warning_ignored(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void png_read_from_memory(png_structp png, png_bytep dst, png_size_t n) {
  PngDecodeState *st = png_get_io_ptr(png);
  if (n > st->left) png_error(png, "unexpected end of data (truncated file)");
  memcpy(dst, st->data, n);
  st->data += n;
  st->left -= n;
}

int png_decode_channels(const uint8_t *data, size_t len, int channels, int palette_index, Image *out, int *was_palette,
                        char *err, size_t err_len) {
  if (was_palette) *was_palette = 0;
  memset(out, 0, sizeof *out);
  PngDecodeState *st = calloc(1, sizeof *st);
  if (!st) {
    snprintf(err, err_len, "out of memory decoding PNG");
    return -1;
  }
  st->data = data;
  st->left = len;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st->message, png_error_to_message, png_warning_ignored);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    snprintf(err, err_len, "out of memory creating the PNG decoder");
    png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
    free(st);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    snprintf(err, err_len, "truncated or corrupt PNG (libpng: %s)", st->message);
    png_destroy_read_struct(&png, &info, NULL);
    free(st->pixels);
    free(st->rows);
    free(st);
    return -1;
  }
  png_set_read_fn(png, st, png_read_from_memory);
  png_read_info(png, info);
  png_uint_32 width, height;
  int bit_depth, color_type;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, NULL, NULL, NULL);

  /* TF's transformation sequence for desired_channels 1 or 3, 8 bits. */
  const int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  const int has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;
  if (has_alpha || has_trns) png_set_strip_alpha(png);
  if (bit_depth > 8) png_set_strip_16(png);
  png_set_packing(png);
  int passes = png_set_interlace_handling(png);
  const int keep_index = palette_index && channels == 1 && color_type == PNG_COLOR_TYPE_PALETTE;
  if (color_type == PNG_COLOR_TYPE_PALETTE && !keep_index) png_set_palette_to_rgb(png);
  if (keep_index && was_palette) *was_palette = 1;
  /* an index image is one 8-bit channel once unpacked: treat it as gray from here */
  const int is_gray = (color_type & PNG_COLOR_MASK_COLOR) == 0 || keep_index;
  if (is_gray && bit_depth < 8 && !keep_index) png_set_expand_gray_1_2_4_to_8(png); /* indices: png_set_packing */
  if (channels == 1) {
    if (!is_gray) png_set_rgb_to_gray(png, 1, 0.299, 0.587);
  } else if (is_gray) {
    png_set_gray_to_rgb(png);
  }
  png_read_update_info(png, info);

  size_t row_bytes = png_get_rowbytes(png, info);
  if ((size_t)width * height * (size_t)channels > IMAGE_MAX_DECODED_BYTES) {
    snprintf(err, err_len, "PNG size %lux%lu is too large", (unsigned long)width, (unsigned long)height);
    png_destroy_read_struct(&png, &info, NULL);
    free(st);
    return -1;
  }
  if (png_get_channels(png, info) != channels || row_bytes != (size_t)width * (size_t)channels) {
    snprintf(err, err_len, "PNG transformed to %d channels / %zu row bytes, expected %d / %zu",
             png_get_channels(png, info), row_bytes, channels, (size_t)width * (size_t)channels);
    png_destroy_read_struct(&png, &info, NULL);
    free(st);
    return -1;
  }
  st->pixels = malloc(row_bytes * height);
  st->rows = malloc(sizeof(png_bytep) * height);
  if (!st->pixels || !st->rows) {
    snprintf(err, err_len, "out of memory for a %lux%lu PNG", (unsigned long)width, (unsigned long)height);
    png_destroy_read_struct(&png, &info, NULL);
    free(st->pixels);
    free(st->rows);
    free(st);
    return -1;
  }
  for (png_uint_32 y = 0; y < height; y++) st->rows[y] = st->pixels + (size_t)y * row_bytes;
  for (int p = 0; p < passes; p++)
    for (png_uint_32 y = 0; y < height; y++) png_read_row(png, st->rows[y], NULL);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);

  out->width = (int)width;
  out->height = (int)height;
  out->channels = channels;
  out->pixels = st->pixels;
  free(st->rows);
  free(st);
  return 0;
}
