/* png_spec.h - PNG files of any colour type, bit depth, palette and
 * transparency, written with libpng for the tests (the project's own writer
 * only makes 8-bit gray and RGB). Include in one test program each. */
#ifndef UNET_TEST_PNG_SPEC_H
#define UNET_TEST_PNG_SPEC_H
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include "unet/util.h"

typedef struct {
  int width, height, bit_depth, color_type, interlace;
  const uint8_t *samples; /* rows of raw PNG samples (16-bit big-endian) */
  const png_color *palette;
  int num_palette;
  const uint8_t *trns;
  int num_trns;
} PngSpec;

static inline void make_png(const char *path, const PngSpec *s) {
  FILE *f = fopen(path, "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (!f || !png || !info || setjmp(png_jmpbuf(png))) unet_fatal("libpng failed writing %s", path);
  png_init_io(png, f);
  png_set_IHDR(png, info, s->width, s->height, s->bit_depth, s->color_type, s->interlace,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (s->palette) png_set_PLTE(png, info, s->palette, s->num_palette);
  if (s->trns) png_set_tRNS(png, info, s->trns, s->num_trns, NULL);
  png_write_info(png, info);
  int channels = png_get_channels(png, info);
  size_t row_bytes = ((size_t)s->width * channels * s->bit_depth + 7) / 8;
  png_bytep *rows = malloc(sizeof *rows * (size_t)s->height);
  if (!rows) unet_fatal("out of memory writing %s", path);
  for (int y = 0; y < s->height; y++) rows[y] = (png_bytep)(s->samples + y * row_bytes);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  fclose(f);
}

#endif
