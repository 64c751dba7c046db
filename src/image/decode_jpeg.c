/* decode_jpeg.c - JPEG to 8-bit gray / RGB with libjpeg(-turbo), mirroring
 * TensorFlow's jpeg::Uncompress as reached from tf.io.decode_png on JPEG
 * bytes (the Keras example decodes its .jpg files with decode_png, which
 * dispatches on content):
 *   - dct_method JDCT_IFAST and fancy upsampling on (TF's flags for every op
 *     other than an explicit decode_jpeg(dct_method=...)),
 *   - 3 channels: out_color_space RGB, except CMYK / YCCK files, which libjpeg
 *     decodes to CMYK (YCCK -> CMYK done by libjpeg) and which are turned into
 *     RGB exactly as TF does: with an Adobe APP14 marker the samples are
 *     stored inverted (Photoshop convention), so R = K*C/255; without one,
 *     R = (255-K)*(255-C)/255 (integer division, truncating, as in TF),
 *   - 1 channel: out_color_space GRAYSCALE (libjpeg keeps Y of YCbCr, or
 *     converts RGB with its own weights; CMYK to gray is rejected by libjpeg,
 *     as in TF).
 * Errors never print: libjpeg's messages are formatted into err. A truncated
 * file, which libjpeg would "recover" by inventing an end-of-image marker
 * (warning JWRN_JPEG_EOF) and filling the rest with gray, is an error, as in
 * TF (which does not try to recover truncated JPEGs by default). Other
 * warnings (e.g. extraneous bytes before a marker, common in real photo sets)
 * are counted and ignored, again like TF. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image_internal.h"

typedef struct {
  struct jpeg_error_mgr pub; /* must be first: libjpeg passes &pub around */
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int truncated;             /* the fatal cause was a premature end of data */
} JpegErrorManager;

static void jpeg_error_exit_to_caller(j_common_ptr cinfo) {
  JpegErrorManager *em = (JpegErrorManager *)cinfo->err;
  em->pub.format_message(cinfo, em->message);
  longjmp(em->jump, 1);
}

/* libjpeg calls this for warnings (level -1) and trace messages (>= 0). */
static void jpeg_emit_message_quietly(j_common_ptr cinfo, int msg_level) {
  JpegErrorManager *em = (JpegErrorManager *)cinfo->err;
  if (msg_level >= 0) return;
  em->pub.num_warnings++;
  if (em->pub.msg_code == JWRN_JPEG_EOF) {
    em->pub.format_message(cinfo, em->message);
    em->truncated = 1;
    longjmp(em->jump, 1);
  }
}

static void jpeg_output_nothing(j_common_ptr cinfo) { (void)cinfo; }

/* Everything the error path must see, kept out of automatic variables that
 * setjmp/longjmp could clobber. */
typedef struct {
  struct jpeg_decompress_struct cinfo;
  JpegErrorManager em;
  uint8_t *pixels;
  JSAMPLE *cmyk_row;
} JpegDecodeState;

/* CMYK row [w, 4] -> RGB row [w, 3], TF's formulas (see top of file). */
static void cmyk_row_to_rgb(const JSAMPLE *cmyk, uint8_t *rgb, int width, int adobe_inverted) {
  for (int x = 0; x < width; x++) {
    int c = cmyk[4 * x + 0], m = cmyk[4 * x + 1], y = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
    if (adobe_inverted) {
      rgb[3 * x + 0] = (uint8_t)((k * c) / 255);
      rgb[3 * x + 1] = (uint8_t)((k * m) / 255);
      rgb[3 * x + 2] = (uint8_t)((k * y) / 255);
    } else {
      rgb[3 * x + 0] = (uint8_t)((255 - k) * (255 - c) / 255);
      rgb[3 * x + 1] = (uint8_t)((255 - k) * (255 - m) / 255);
      rgb[3 * x + 2] = (uint8_t)((255 - k) * (255 - y) / 255);
    }
  }
}

int jpeg_decode_channels(const uint8_t *data, size_t len, int channels, Image *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  JpegDecodeState *st = calloc(1, sizeof *st);
  if (!st) {
    snprintf(err, err_len, "out of memory decoding JPEG");
    return -1;
  }
  st->cinfo.err = jpeg_std_error(&st->em.pub);
  st->em.pub.error_exit = jpeg_error_exit_to_caller;
  st->em.pub.emit_message = jpeg_emit_message_quietly;
  st->em.pub.output_message = jpeg_output_nothing;
  if (setjmp(st->em.jump)) {
    if (st->em.truncated)
      snprintf(err, err_len, "truncated or corrupt JPEG (libjpeg: %s)", st->em.message);
    else
      snprintf(err, err_len, "corrupt or unsupported JPEG (libjpeg: %s)", st->em.message);
    jpeg_destroy_decompress(&st->cinfo);
    free(st->pixels);
    free(st->cmyk_row);
    free(st);
    return -1;
  }
  jpeg_create_decompress(&st->cinfo);
  jpeg_mem_src(&st->cinfo, data, (unsigned long)len);
  jpeg_read_header(&st->cinfo, TRUE);

  int use_cmyk = 0;
  if (channels == 1) {
    st->cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (st->cinfo.jpeg_color_space == JCS_CMYK || st->cinfo.jpeg_color_space == JCS_YCCK) {
    st->cinfo.out_color_space = JCS_CMYK;
    use_cmyk = 1;
  } else {
    st->cinfo.out_color_space = JCS_RGB;
  }
  st->cinfo.dct_method = JDCT_IFAST;
  st->cinfo.do_fancy_upsampling = TRUE;
  jpeg_calc_output_dimensions(&st->cinfo);

  size_t width = st->cinfo.output_width, height = st->cinfo.output_height;
  if (width == 0 || height == 0 || width * height * 4 > IMAGE_MAX_DECODED_BYTES) {
    snprintf(err, err_len, "JPEG size %zux%zu is empty or too large", width, height);
    jpeg_destroy_decompress(&st->cinfo);
    free(st);
    return -1;
  }
  jpeg_start_decompress(&st->cinfo);
  if (st->cinfo.output_components != (use_cmyk ? 4 : channels)) {
    snprintf(err, err_len, "JPEG decoded to %d components, expected %d", st->cinfo.output_components,
             use_cmyk ? 4 : channels);
    jpeg_destroy_decompress(&st->cinfo);
    free(st);
    return -1;
  }
  st->pixels = malloc(width * height * (size_t)channels);
  if (use_cmyk) st->cmyk_row = malloc(width * 4);
  if (!st->pixels || (use_cmyk && !st->cmyk_row)) {
    snprintf(err, err_len, "out of memory for a %zux%zu JPEG", width, height);
    jpeg_destroy_decompress(&st->cinfo);
    free(st->pixels);
    free(st->cmyk_row);
    free(st);
    return -1;
  }
  while (st->cinfo.output_scanline < st->cinfo.output_height) {
    uint8_t *row = st->pixels + (size_t)st->cinfo.output_scanline * width * (size_t)channels;
    JSAMPROW target = use_cmyk ? st->cmyk_row : row;
    if (jpeg_read_scanlines(&st->cinfo, &target, 1) != 1) {
      snprintf(err, err_len, "truncated or corrupt JPEG (stopped at row %u of %zu)",
               st->cinfo.output_scanline, height);
      jpeg_destroy_decompress(&st->cinfo);
      free(st->pixels);
      free(st->cmyk_row);
      free(st);
      return -1;
    }
    if (use_cmyk) cmyk_row_to_rgb(st->cmyk_row, row, (int)width, st->cinfo.saw_Adobe_marker);
  }
  jpeg_finish_decompress(&st->cinfo);
  jpeg_destroy_decompress(&st->cinfo);

  out->width = (int)width;
  out->height = (int)height;
  out->channels = channels;
  out->pixels = st->pixels;
  free(st->cmyk_row);
  free(st);
  return 0;
}
