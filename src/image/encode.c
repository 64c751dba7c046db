/* encode.c - atomic PNG (gray / RGB) and baseline JPEG (RGB) writers.
 * Each writes "<path>.tmp.<pid>" next to path, then fsyncs and renames it
 * over path (unet_tmp_path / unet_commit_file), so a reader never sees a
 * half-written image; on any failure the temporary is removed and an old
 * file at path is left untouched. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>

#include "image_internal.h"
#include "unet/image.h"
#include "unet/util.h"

/* fclose (checking the flush) + commit, or remove the temporary. */
static int finish_tmp_file(FILE *f, int write_ok, const char *tmp, const char *path, char *err, size_t err_len) {
  int close_failed = fclose(f) != 0;
  if (!write_ok) {
    unlink(tmp);
    return -1;
  }
  if (close_failed) {
    snprintf(err, err_len, "write failed: %s", strerror(errno));
    unlink(tmp);
    return -1;
  }
  if (unet_commit_file(tmp, path) != 0) {
    snprintf(err, err_len, "cannot rename into place: %s", strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

static FILE *open_tmp(const char *path, char *tmp, size_t tmp_len, char *err, size_t err_len) {
  unet_tmp_path(tmp, tmp_len, path);
  FILE *f = fopen(tmp, "wb");
  if (!f) snprintf(err, err_len, "cannot create %s: %s", tmp, strerror(errno));
  return f;
}

/* ---- PNG ----------------------------------------------------------------- */


/* Encodes pixels [height, width, channels] into the open file f; 0 ok. */
static int png_encode_to_file(FILE *f, const uint8_t *pixels, int width, int height, int channels, char *err,
                              size_t err_len) {
  char png_message[PNG_MESSAGE_LEN] = "";
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, png_message, png_error_to_message, png_warning_ignored);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    snprintf(err, err_len, "out of memory creating the PNG encoder");
    png_destroy_write_struct(png ? &png : NULL, NULL);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    snprintf(err, err_len, "PNG encoding failed (libpng: %s)", png_message);
    png_destroy_write_struct(&png, &info);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  size_t stride = (size_t)width * (size_t)channels;
  for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * stride));
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  if (ferror(f)) {
    snprintf(err, err_len, "write failed: %s", strerror(errno));
    return -1;
  }
  return 0;
}

int image_write_png(const char *path, const uint8_t *pixels, int width, int height, int channels, char *err,
                    size_t err_len) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3) || !pixels) {
    snprintf(err, err_len, "cannot write a %dx%dx%d PNG (need width, height > 0 and 1 or 3 channels)", width,
             height, channels);
    return -1;
  }
  char tmp[UNET_TMP_PATH_MAX];
  FILE *f = open_tmp(path, tmp, sizeof tmp, err, err_len);
  if (!f) return -1;
  int ok = png_encode_to_file(f, pixels, width, height, channels, err, err_len) == 0;
  return finish_tmp_file(f, ok, tmp, path, err, err_len);
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct {
  struct jpeg_error_mgr pub; /* first: libjpeg hands &pub around */
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} JpegWriteErrors;

static void jpeg_write_error_exit(j_common_ptr cinfo) {
  JpegWriteErrors *e = (JpegWriteErrors *)cinfo->err;
  e->pub.format_message(cinfo, e->message);
  longjmp(e->jump, 1);
}

static void jpeg_write_output_nothing(j_common_ptr cinfo) { (void)cinfo; }

typedef struct {
  struct jpeg_compress_struct cinfo;
  JpegWriteErrors errors;
} JpegEncodeState;

static int jpeg_encode_to_file(FILE *f, const uint8_t *rgb, int width, int height, int quality, char *err,
                               size_t err_len) {
  JpegEncodeState *st = calloc(1, sizeof *st);
  if (!st) {
    snprintf(err, err_len, "out of memory creating the JPEG encoder");
    return -1;
  }
  st->cinfo.err = jpeg_std_error(&st->errors.pub);
  st->errors.pub.error_exit = jpeg_write_error_exit;
  st->errors.pub.output_message = jpeg_write_output_nothing;
  if (setjmp(st->errors.jump)) {
    snprintf(err, err_len, "JPEG encoding failed (libjpeg: %s)", st->errors.message);
    jpeg_destroy_compress(&st->cinfo);
    free(st);
    return -1;
  }
  jpeg_create_compress(&st->cinfo);
  jpeg_stdio_dest(&st->cinfo, f);
  st->cinfo.image_width = (JDIMENSION)width;
  st->cinfo.image_height = (JDIMENSION)height;
  st->cinfo.input_components = 3;
  st->cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&st->cinfo);
  jpeg_set_quality(&st->cinfo, quality, TRUE);
  jpeg_start_compress(&st->cinfo, TRUE);
  size_t stride = (size_t)width * 3;
  while (st->cinfo.next_scanline < st->cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)(rgb + (size_t)st->cinfo.next_scanline * stride);
    jpeg_write_scanlines(&st->cinfo, &row, 1);
  }
  jpeg_finish_compress(&st->cinfo);
  jpeg_destroy_compress(&st->cinfo);
  free(st);
  if (ferror(f)) {
    snprintf(err, err_len, "write failed: %s", strerror(errno));
    return -1;
  }
  return 0;
}

int image_write_jpeg(const char *path, const uint8_t *rgb, int width, int height, int quality, char *err,
                     size_t err_len) {
  if (width <= 0 || height <= 0 || width > 65500 || height > 65500 || !rgb) {
    snprintf(err, err_len, "cannot write a %dx%d JPEG (need 1..65500 pixels per side)", width, height);
    return -1;
  }
  if (quality < 1 || quality > 100) {
    snprintf(err, err_len, "JPEG quality %d is outside 1..100", quality);
    return -1;
  }
  char tmp[UNET_TMP_PATH_MAX];
  FILE *f = open_tmp(path, tmp, sizeof tmp, err, err_len);
  if (!f) return -1;
  int ok = jpeg_encode_to_file(f, rgb, width, height, quality, err, err_len) == 0;
  return finish_tmp_file(f, ok, tmp, path, err, err_len);
}
