/* test_image.c - decoders and writers of unet_image on files generated here
 * (every PNG colour type via libpng, JPEG RGB / gray / CMYK / YCCK /
 * progressive via libjpeg), error paths (GIF/BMP/WEBP/unknown, truncated,
 * corrupt, empty, missing), atomic writers, and, when the shared data is
 * present, all 302 Oxford pet images and trimaps. */
#include <dirent.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "check.h"
#include "png_spec.h"
#include "unet/image.h"
#include "unet/util.h"

static char tmp_dir[4096];

static void path_in_tmp(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmp_dir, name); }

static void write_bytes(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len) unet_fatal("cannot write test file %s", path);
  fclose(f);
}

static uint8_t *slurp(const char *path, size_t *len) {
  uint8_t *d;
  char err[256];
  if (read_file_bytes(path, &d, len, err, sizeof err) != 0) unet_fatal("%s: %s", path, err);
  return d;
}

/* image_decode_mask of path: exact values and the palette flag. */
static void check_mask(const char *path, int w, int h, const uint8_t *want, int want_palette) {
  size_t len;
  uint8_t *data = slurp(path, &len);
  Image img;
  char err[256];
  int palette = -1;
  int rc = image_decode_mask(data, len, &img, &palette, err, sizeof err);
  free(data);
  CHECK_MSG(rc == 0, "%s: %s", path, err);
  if (rc != 0) return;
  CHECK_MSG(img.width == w && img.height == h && img.channels == 1, "%s: %dx%dx%d", path, img.width, img.height,
            img.channels);
  CHECK_MSG(palette == want_palette, "%s: was_palette %d, want %d", path, palette, want_palette);
  int diff = 0;
  for (int i = 0; i < w * h && img.width == w && img.height == h; i++) diff += img.pixels[i] != want[i];
  CHECK_MSG(diff == 0, "%s: %d of %d mask values differ (first %d, want %d)", path, diff, w * h, img.pixels[0],
            want[0]);
  image_free(&img);
}

/* Decode path as RGB and gray; compare against expected (NULL = skip). */
static void check_decode(const char *path, int w, int h, const uint8_t *want_rgb, const uint8_t *want_gray,
                         int tolerance) {
  Image img;
  char err[256];
  if (want_rgb) {
    int rc = image_load_rgb(path, &img, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: %s", path, err);
    if (rc == 0) {
      CHECK(img.width == w && img.height == h && img.channels == 3);
      int worst = 0;
      for (int i = 0; i < w * h * 3; i++) {
        int d = abs((int)img.pixels[i] - (int)want_rgb[i]);
        if (d > worst) worst = d;
      }
      CHECK_MSG(worst <= tolerance, "%s rgb: max error %d > %d (first pixel %d %d %d, want %d %d %d)", path, worst,
                tolerance, img.pixels[0], img.pixels[1], img.pixels[2], want_rgb[0], want_rgb[1], want_rgb[2]);
      image_free(&img);
    }
  }
  if (want_gray) {
    int rc = image_load_gray(path, &img, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: %s", path, err);
    if (rc == 0) {
      CHECK(img.width == w && img.height == h && img.channels == 1);
      int worst = 0;
      for (int i = 0; i < w * h; i++) {
        int d = abs((int)img.pixels[i] - (int)want_gray[i]);
        if (d > worst) worst = d;
      }
      CHECK_MSG(worst <= tolerance, "%s gray: max error %d > %d (first %d want %d)", path, worst, tolerance,
                img.pixels[0], want_gray[0]);
      image_free(&img);
    }
  }
}

/* libpng's png_set_rgb_to_gray(png, 1, 0.299, 0.587) fixed-point weights, as
 * TF decode_png(channels=1): red = 29900 * 32768 / 100000 = 9797,
 * green = 58700 * 32768 / 100000 = 19234, blue = 32768 - both = 3737;
 * result truncated (>> 15); pixels with R == G == B pass through. */
static uint8_t tf_png_gray(int r, int g, int b) {
  if (r == g && g == b) return (uint8_t)r;
  return (uint8_t)((9797 * r + 19234 * g + 3737 * b) >> 15);
}

static void test_png_colour_types(void) {
  char path[4200];
  /* gray 8: 2x2 */
  {
    const uint8_t g[4] = {0, 1, 2, 255};
    const uint8_t rgb[12] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 255, 255, 255};
    PngSpec s = {2, 2, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "gray8.png");
    make_png(path, &s);
    check_decode(path, 2, 2, rgb, g, 0);
  }
  /* gray 1-bit: 0/1 expand to 0/255. 4x1, packed 1010 0000 */
  {
    const uint8_t packed[1] = {0xA0};
    const uint8_t g[4] = {255, 0, 255, 0};
    PngSpec s = {4, 1, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, packed, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "gray1.png");
    make_png(path, &s);
    check_decode(path, 4, 1, NULL, g, 0);
  }
  /* gray 16: TF keeps the high byte (png_set_strip_16): 0x12FF -> 0x12 */
  {
    const uint8_t g16[8] = {0x12, 0xFF, 0xAB, 0xCD, 0x00, 0xFF, 0xFF, 0x00};
    const uint8_t g[4] = {0x12, 0xAB, 0x00, 0xFF};
    PngSpec s = {2, 2, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g16, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "gray16.png");
    make_png(path, &s);
    check_decode(path, 2, 2, NULL, g, 0);
  }
  /* gray + alpha: alpha dropped */
  {
    const uint8_t ga[8] = {10, 0, 20, 255, 30, 128, 40, 7};
    const uint8_t g[4] = {10, 20, 30, 40};
    const uint8_t rgb[12] = {10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40};
    PngSpec s = {2, 2, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "gray_alpha.png");
    make_png(path, &s);
    check_decode(path, 2, 2, rgb, g, 0);
  }
  /* palette (+ tRNS, which is dropped): indices -> colours; gray via luma */
  {
    const png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {100, 100, 100}};
    const uint8_t trns[4] = {0, 128, 255, 255};
    const uint8_t idx[4] = {0, 1, 2, 3};
    const uint8_t rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100};
    uint8_t g[4];
    for (int i = 0; i < 4; i++) g[i] = tf_png_gray(pal[i].red, pal[i].green, pal[i].blue);
    /* 2498235 >> 15 = 76, 4904670 >> 15 = 149 (149.68: truncated, not rounded), 952935 >> 15 = 29 */
    CHECK(g[0] == 76 && g[1] == 149 && g[2] == 29 && g[3] == 100);
    PngSpec s = {2, 2, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, pal, 4, NULL, 0};
    path_in_tmp(path, sizeof path, "palette.png");
    make_png(path, &s);
    check_decode(path, 2, 2, rgb, g, 0);
    s.trns = trns;
    s.num_trns = 4;
    path_in_tmp(path, sizeof path, "palette_trns.png");
    make_png(path, &s);
    check_decode(path, 2, 2, rgb, g, 0);
    check_mask(path, 2, 2, idx, 1); /* a mask keeps the indices (VOC class ids), tRNS or not */
  }
  /* palette masks as VOC stores them: 8-bit indices with 255 as the void border,
   * and packed 4-, 2- and 1-bit indices, plain and interlaced */
  {
    png_color pal[256];
    for (int i = 0; i < 256; i++) pal[i] = (png_color){(uint8_t)(i * 37), (uint8_t)(255 - i), (uint8_t)(i * 11)};
    uint8_t idx[6 * 4];
    for (int i = 0; i < 24; i++) idx[i] = (uint8_t)(i % 6 == 0 || i % 6 == 5 ? 255 : i % 4); /* border columns 255 */
    PngSpec s = {6, 4, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, pal, 256, NULL, 0};
    path_in_tmp(path, sizeof path, "voc.png");
    make_png(path, &s);
    check_mask(path, 6, 4, idx, 1);
    s.interlace = PNG_INTERLACE_ADAM7;
    path_in_tmp(path, sizeof path, "voc_adam7.png");
    make_png(path, &s);
    check_mask(path, 6, 4, idx, 1);
    /* 5 pixels per row of packed indices, values 0..(2^bits - 1) */
    for (int bits = 1; bits <= 4; bits *= 2) {
      uint8_t want[5 * 3], packed[3 * 5] = {0};
      int per_byte = 8 / bits;
      size_t row_bytes = (5 + per_byte - 1) / per_byte;
      for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++) {
          uint8_t v = (uint8_t)((x + 2 * y) % (1 << bits));
          want[y * 5 + x] = v;
          packed[y * row_bytes + x / per_byte] |= (uint8_t)(v << (8 - bits * (x % per_byte + 1)));
        }
      PngSpec p4 = {5, 3, bits, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, packed, pal, 1 << bits, NULL, 0};
      char name[32];
      snprintf(name, sizeof name, "palette%d.png", bits);
      path_in_tmp(path, sizeof path, name);
      make_png(path, &p4);
      check_mask(path, 5, 3, want, 1);
    }
    /* gray masks pass through image_decode_mask unchanged; RGB ones become luma as in TF */
    const uint8_t tri[4] = {1, 2, 3, 2};
    PngSpec gs = {2, 2, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, tri, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "trimap_mask.png");
    make_png(path, &gs);
    check_mask(path, 2, 2, tri, 0);
    const uint8_t rgb[6] = {10, 200, 30, 255, 255, 255};
    const uint8_t luma[2] = {tf_png_gray(10, 200, 30), 255};
    PngSpec rs = {2, 1, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, rgb, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "rgb_mask.png");
    make_png(path, &rs);
    check_mask(path, 2, 1, luma, 0);
  }
  /* RGB 8, including an Adam7-interlaced copy of a 5x3 image */
  {
    uint8_t rgb[5 * 3 * 3], g[15];
    for (int i = 0; i < 15; i++) {
      rgb[3 * i] = (uint8_t)(i * 17), rgb[3 * i + 1] = (uint8_t)(255 - i * 13), rgb[3 * i + 2] = (uint8_t)(i * i);
      g[i] = tf_png_gray(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
    }
    PngSpec s = {5, 3, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, rgb, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "rgb8.png");
    make_png(path, &s);
    check_decode(path, 5, 3, rgb, g, 0);
    s.interlace = PNG_INTERLACE_ADAM7;
    path_in_tmp(path, sizeof path, "rgb8_adam7.png");
    make_png(path, &s);
    check_decode(path, 5, 3, rgb, g, 0);
  }
  /* RGBA 8: alpha dropped */
  {
    const uint8_t rgba[8] = {10, 5, 255, 0, 200, 150, 100, 255};
    const uint8_t rgb[6] = {10, 5, 255, 200, 150, 100};
    const uint8_t g[2] = {tf_png_gray(10, 5, 255), tf_png_gray(200, 150, 100)};
    /* (10, 5, 255): 1049340 >> 15 = 35 with green 19234 / blue 3737; the
     * tempting 19235 / 3736 would give 34 */
    CHECK(g[0] == 35);
    PngSpec s = {2, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "rgba8.png");
    make_png(path, &s);
    check_decode(path, 2, 1, rgb, g, 0);
  }
  /* RGB 16: high bytes */
  {
    const uint8_t rgb16[12] = {0x01, 0xFF, 0x80, 0x00, 0xFE, 0x01, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    const uint8_t rgb[6] = {0x01, 0x80, 0xFE, 0x33, 0x55, 0x77};
    PngSpec s = {2, 1, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, rgb16, NULL, 0, NULL, 0};
    path_in_tmp(path, sizeof path, "rgb16.png");
    make_png(path, &s);
    check_decode(path, 2, 1, rgb, NULL, 0);
  }
}

/* ---- JPEG generation with libjpeg ----------------------------------------- */

typedef enum { JPEG_PLAIN, JPEG_PROGRESSIVE } JpegMode;

/* samples [h, w, components] in in_space, stored as store_space. */
static void make_jpeg(const char *path, const uint8_t *samples, int w, int h, int components, J_COLOR_SPACE in_space,
                      J_COLOR_SPACE store_space, JpegMode mode) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  FILE *f = fopen(path, "wb");
  if (!f) unet_fatal("cannot create %s", path);
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = components;
  c.in_color_space = in_space;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, store_space);
  jpeg_set_quality(&c, 95, TRUE);
  if (mode == JPEG_PROGRESSIVE) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = (JSAMPROW)(samples + (size_t)c.next_scanline * w * components);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  fclose(f);
}

enum { JW = 32, JH = 24 };

static void test_jpeg_kinds(void) {
  char path[4200];
  static uint8_t rgb[JW * JH * 3], want[JW * JH * 3], gray[JW * JH], cmyk[JW * JH * 4];

  /* RGB, flat colour: decodes within a few levels */
  for (int i = 0; i < JW * JH; i++) rgb[3 * i] = 200, rgb[3 * i + 1] = 50, rgb[3 * i + 2] = 100;
  path_in_tmp(path, sizeof path, "rgb.jpg");
  make_jpeg(path, rgb, JW, JH, 3, JCS_RGB, JCS_YCbCr, JPEG_PLAIN);
  check_decode(path, JW, JH, rgb, NULL, 4);

  /* RGB smooth gradient, baseline and progressive: same pixels within JPEG error */
  for (int y = 0; y < JH; y++)
    for (int x = 0; x < JW; x++) {
      uint8_t *p = rgb + 3 * (y * JW + x);
      p[0] = (uint8_t)(x * 6), p[1] = (uint8_t)(y * 8), p[2] = (uint8_t)(128 + x - y);
    }
  path_in_tmp(path, sizeof path, "gradient.jpg");
  make_jpeg(path, rgb, JW, JH, 3, JCS_RGB, JCS_YCbCr, JPEG_PLAIN);
  check_decode(path, JW, JH, rgb, NULL, 12);
  path_in_tmp(path, sizeof path, "progressive.jpg");
  make_jpeg(path, rgb, JW, JH, 3, JCS_RGB, JCS_YCbCr, JPEG_PROGRESSIVE);
  check_decode(path, JW, JH, rgb, NULL, 12);
  {
    /* progressive and baseline files of the same pixels decode (nearly) alike */
    Image a, b;
    char err[256], p2[4200];
    path_in_tmp(p2, sizeof p2, "gradient.jpg");
    CHECK(image_load_rgb(path, &a, err, sizeof err) == 0);
    CHECK(image_load_rgb(p2, &b, err, sizeof err) == 0);
    long sum = 0;
    for (int i = 0; i < JW * JH * 3; i++) sum += abs((int)a.pixels[i] - (int)b.pixels[i]);
    CHECK_MSG(sum <= JW * JH * 3, "progressive vs baseline mean abs diff %.3f", (double)sum / (JW * JH * 3));
    image_free(&a);
    image_free(&b);
  }

  /* grayscale JPEG: RGB decode gives R = G = B; gray decode gives the value */
  for (int i = 0; i < JW * JH; i++) gray[i] = (uint8_t)(40 + (i % JW) * 3);
  for (int i = 0; i < JW * JH; i++) want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = gray[i];
  path_in_tmp(path, sizeof path, "gray.jpg");
  make_jpeg(path, gray, JW, JH, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, JPEG_PLAIN);
  check_decode(path, JW, JH, want, gray, 3);
  {
    Image img;
    char err[256];
    CHECK(image_load_rgb(path, &img, err, sizeof err) == 0);
    int equal = 1;
    for (int i = 0; i < JW * JH; i++)
      equal &= img.pixels[3 * i] == img.pixels[3 * i + 1] && img.pixels[3 * i] == img.pixels[3 * i + 2];
    CHECK_MSG(equal, "gray JPEG decoded with R, G, B not all equal");
    image_free(&img);
  }

  /* CMYK and YCCK: libjpeg writes an Adobe marker and stores the samples as
   * given, which readers take as inverted CMYK: R = K * C / 255 (TF). */
  for (int i = 0; i < JW * JH; i++) {
    uint8_t *p = cmyk + 4 * i;
    p[0] = 200, p[1] = 100, p[2] = 50, p[3] = 220;
  }
  for (int i = 0; i < JW * JH; i++)
    want[3 * i] = 220 * 200 / 255, want[3 * i + 1] = 220 * 100 / 255, want[3 * i + 2] = 220 * 50 / 255;
  path_in_tmp(path, sizeof path, "cmyk.jpg");
  make_jpeg(path, cmyk, JW, JH, 4, JCS_CMYK, JCS_CMYK, JPEG_PLAIN);
  check_decode(path, JW, JH, want, NULL, 4);
  path_in_tmp(path, sizeof path, "ycck.jpg");
  make_jpeg(path, cmyk, JW, JH, 4, JCS_CMYK, JCS_YCCK, JPEG_PLAIN);
  check_decode(path, JW, JH, want, NULL, 4);
  {
    /* gray of a CMYK JPEG: libjpeg cannot convert, a clean error (as TF) */
    Image img;
    char err[256] = "";
    CHECK(image_load_gray(path, &img, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "JPEG") != NULL, "err = %s", err);
  }
}

/* ---- errors ---------------------------------------------------------------- */

static void expect_error(const uint8_t *data, size_t len, const char *needle, const char *what) {
  Image img;
  char err[256] = "";
  int rc = image_decode_rgb(data, len, &img, err, sizeof err);
  CHECK_MSG(rc == -1, "%s: decoded instead of failing", what);
  CHECK_MSG(img.pixels == NULL, "%s: pixels left allocated", what);
  CHECK_MSG(strstr(err, needle) != NULL, "%s: error '%s' lacks '%s'", what, err, needle);
  err[0] = 0;
  rc = image_decode_gray(data, len, &img, err, sizeof err);
  CHECK_MSG(rc == -1 && strstr(err, needle) != NULL, "%s (gray): rc %d error '%s'", what, rc, err);
  if (rc == 0) image_free(&img);
}

static void test_errors(void) {
  char path[4200];
  const uint8_t gif[] = "GIF89a\x02\x00\x02\x00\x00\x00\x00;";
  expect_error(gif, sizeof gif - 1, "unsupported format GIF", "GIF");
  const uint8_t bmp[] = "BM\x3a\x00\x00\x00\x00\x00";
  expect_error(bmp, sizeof bmp - 1, "unsupported format BMP", "BMP");
  const uint8_t webp[] = "RIFF\x10\x00\x00\x00WEBPVP8 ";
  expect_error(webp, sizeof webp - 1, "unsupported format WEBP", "WEBP");
  const uint8_t text[] = "<html>not an image</html>";
  expect_error(text, sizeof text - 1, "unsupported format unknown", "text");
  expect_error(text, 0, "empty", "empty buffer");

  /* Silence check: libjpeg / libpng must not print anything on their own. */
  fflush(stderr);
  char log_path[4200];
  path_in_tmp(log_path, sizeof log_path, "stderr.log");
  int saved = dup(STDERR_FILENO);
  FILE *log = fopen(log_path, "w");
  dup2(fileno(log), STDERR_FILENO);

  size_t len;
  path_in_tmp(path, sizeof path, "gradient.jpg");
  uint8_t *jpg = slurp(path, &len);
  expect_error(jpg, len / 2, "truncated", "JPEG cut in half");
  expect_error(jpg, len - 2, "truncated", "JPEG without EOI");
  expect_error(jpg, 3, "JPEG", "JPEG magic only");
  expect_error(jpg, 200, "JPEG", "JPEG cut in the header");
  uint8_t *bad = malloc(len);
  memcpy(bad, jpg, len);
  for (size_t i = 20; i < 200 && i < len; i++) bad[i] = 0xFF; /* trash the tables */
  expect_error(bad, len, "JPEG", "JPEG with trashed tables");
  free(bad);
  free(jpg);
  path_in_tmp(path, sizeof path, "progressive.jpg");
  jpg = slurp(path, &len);
  expect_error(jpg, len * 2 / 3, "truncated", "progressive JPEG cut");
  free(jpg);

  path_in_tmp(path, sizeof path, "rgb8.png");
  uint8_t *png = slurp(path, &len);
  expect_error(png, len / 2, "truncated or corrupt PNG", "PNG cut in half");
  expect_error(png, len - 12, "PNG", "PNG without IEND");
  expect_error(png, 8, "PNG", "PNG signature only");
  bad = malloc(len);
  memcpy(bad, png, len);
  bad[len - 20] ^= 0x55; /* inside IDAT or its CRC */
  expect_error(bad, len, "PNG", "PNG with a bad CRC");
  free(bad);
  free(png);

  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  fclose(log);
  struct stat st;
  CHECK(stat(log_path, &st) == 0);
  CHECK_MSG(st.st_size == 0, "the image libraries printed %ld bytes to stderr (see %s)", (long)st.st_size, log_path);

  /* files: empty, missing */
  Image img;
  char err[256];
  path_in_tmp(path, sizeof path, "empty.jpg");
  write_bytes(path, "", 0);
  CHECK(image_load_rgb(path, &img, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "empty") != NULL, "err = %s", err);
  path_in_tmp(path, sizeof path, "does_not_exist.png");
  CHECK(image_load_gray(path, &img, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "cannot open") != NULL, "err = %s", err);
  /* by content, not by name: a PNG called .jpg decodes */
  char from[4200];
  path_in_tmp(from, sizeof from, "rgb8.png");
  path_in_tmp(path, sizeof path, "png_named.jpg");
  png = slurp(from, &len);
  write_bytes(path, png, len);
  free(png);
  CHECK(image_load_rgb(path, &img, err, sizeof err) == 0 && img.width == 5 && img.height == 3);
  image_free(&img);
  uint8_t sig[8];
  CHECK(image_sniff((const uint8_t *)"\xff\xd8\xff\xe0", 4) == IMAGE_FORMAT_JPEG);
  CHECK(image_sniff((const uint8_t *)"II*\0", 4) == IMAGE_FORMAT_TIFF);
  memcpy(sig, "\x89PNG\r\n\x1a\n", 8);
  CHECK(image_sniff(sig, 8) == IMAGE_FORMAT_PNG && image_sniff(sig, 7) == IMAGE_FORMAT_UNKNOWN);
  CHECK(strcmp(image_format_name(IMAGE_FORMAT_GIF), "GIF") == 0);
}

/* ---- writers ------------------------------------------------------------- */

static int dir_has_tmp_files(void) {
  DIR *d = opendir(tmp_dir);
  struct dirent *e;
  int found = 0;
  while (d && (e = readdir(d)) != NULL) found |= strstr(e->d_name, ".tmp.") != NULL;
  if (d) closedir(d);
  return found;
}

static void test_writers(void) {
  char path[4200], err[256];
  Image img;
  uint8_t rgb[7 * 5 * 3], gray[7 * 5];
  for (int i = 0; i < 7 * 5 * 3; i++) rgb[i] = (uint8_t)(i * 11 + 3);
  for (int i = 0; i < 7 * 5; i++) gray[i] = (uint8_t)(i * 7);

  path_in_tmp(path, sizeof path, "out_rgb.png");
  CHECK(image_write_png(path, rgb, 7, 5, 3, err, sizeof err) == 0);
  CHECK(image_load_rgb(path, &img, err, sizeof err) == 0);
  CHECK(img.width == 7 && img.height == 5 && img.channels == 3 && memcmp(img.pixels, rgb, sizeof rgb) == 0);
  image_free(&img);

  path_in_tmp(path, sizeof path, "out_gray.png");
  CHECK(image_write_png(path, gray, 7, 5, 1, err, sizeof err) == 0);
  CHECK(image_load_gray(path, &img, err, sizeof err) == 0);
  CHECK(img.width == 7 && img.height == 5 && img.channels == 1 && memcmp(img.pixels, gray, sizeof gray) == 0);
  image_free(&img);

  /* a rejected write leaves the previous file untouched */
  CHECK(image_write_png(path, gray, 7, 5, 2, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "channels") != NULL, "err = %s", err);
  CHECK(image_load_gray(path, &img, err, sizeof err) == 0 && memcmp(img.pixels, gray, sizeof gray) == 0);
  image_free(&img);
  CHECK(image_write_png("/nonexistent_dir_unet/x.png", gray, 7, 5, 1, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "cannot create") != NULL, "err = %s", err);

  /* JPEG round trip of a smooth image */
  uint8_t smooth[16 * 16 * 3];
  for (int y = 0; y < 16; y++)
    for (int x = 0; x < 16; x++) {
      uint8_t *p = smooth + 3 * (y * 16 + x);
      p[0] = (uint8_t)(x * 10), p[1] = (uint8_t)(y * 10), p[2] = 90;
    }
  path_in_tmp(path, sizeof path, "out.jpg");
  CHECK(image_write_jpeg(path, smooth, 16, 16, 95, err, sizeof err) == 0);
  check_decode(path, 16, 16, smooth, NULL, 12);
  CHECK(image_write_jpeg(path, smooth, 16, 16, 0, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "quality") != NULL, "err = %s", err);
  CHECK(!dir_has_tmp_files());
}

/* ---- real data ------------------------------------------------------------- */

static int test_shared_pets(void) {
  char images[4200], trimaps[4200], path[8600], err[256];
  snprintf(images, sizeof images, "%s/data/pets/images", UNET_SHARED_DIR);
  snprintf(trimaps, sizeof trimaps, "%s/data/pets/annotations/trimaps", UNET_SHARED_DIR);
  DIR *d = opendir(images);
  if (!d) return 0;
  struct dirent *e;
  int decoded = 0, rejected = 0, masks = 0, gif_rejected = 0;
  double t0 = unet_now();
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 4, ".jpg") != 0) continue;
    snprintf(path, sizeof path, "%s/%s", images, e->d_name);
    Image img;
    if (image_load_rgb(path, &img, err, sizeof err) == 0) {
      CHECK(img.channels == 3 && img.width > 0 && img.height > 0);
      decoded++;
      image_free(&img);
    } else {
      rejected++;
      int is_gif = strcmp(e->d_name, "Abyssinian_34.jpg") == 0;
      CHECK_MSG(is_gif, "%s: %s", e->d_name, err);
      if (is_gif) {
        CHECK_MSG(strstr(err, "unsupported format GIF") != NULL, "%s: %s", e->d_name, err);
        gif_rejected = 1;
      }
    }
    /* the trimap: gray, same size as the image, values only 1, 2, 3 */
    snprintf(path, sizeof path, "%s/%.*s.png", trimaps, (int)(n - 4), e->d_name);
    Image mask;
    if (image_load_gray(path, &mask, err, sizeof err) != 0) {
      CHECK_MSG(0, "%s: %s", path, err);
      continue;
    }
    int outside = 0;
    for (size_t i = 0; i < (size_t)mask.width * mask.height; i++) outside += mask.pixels[i] < 1 || mask.pixels[i] > 3;
    CHECK_MSG(outside == 0, "%s: %d values outside {1,2,3}", path, outside);
    masks++;
    image_free(&mask);
  }
  closedir(d);
  printf("pets: %d decoded, %d rejected, %d trimaps in %.2f s\n", decoded, rejected, masks, unet_now() - t0);
  CHECK(decoded == 301);
  CHECK(rejected == 1 && gif_rejected);
  CHECK(masks == 302);
  return 1;
}

/* ISBI membrane: 30 gray 512x512 PNG images and masks with values 0 / 255. */
static int test_shared_membrane(void) {
  char path[4200], err[256];
  snprintf(path, sizeof path, "%s/data/isbi-membrane/masks/0.png", UNET_SHARED_DIR);
  if (access(path, R_OK) != 0) return 0;
  for (int i = 0; i < 30; i++) {
    Image img, mask;
    snprintf(path, sizeof path, "%s/data/isbi-membrane/images/%d.png", UNET_SHARED_DIR, i);
    CHECK_MSG(image_load_rgb(path, &img, err, sizeof err) == 0, "%s: %s", path, err);
    snprintf(path, sizeof path, "%s/data/isbi-membrane/masks/%d.png", UNET_SHARED_DIR, i);
    if (image_load_gray(path, &mask, err, sizeof err) != 0) {
      CHECK_MSG(0, "%s: %s", path, err);
      image_free(&img);
      continue;
    }
    CHECK(mask.width == img.width && mask.height == img.height);
    int other = 0;
    for (size_t j = 0; j < (size_t)mask.width * mask.height; j++) other += mask.pixels[j] != 0 && mask.pixels[j] != 255;
    CHECK_MSG(other == 0, "%s: %d values other than 0 / 255", path, other);
    image_free(&img);
    image_free(&mask);
  }
  return 1;
}

/* test_image            every synthetic check (always runs, never skips)
 * test_image pets|membrane  the real set in UNET_SHARED_DIR; exit 77 (skipped,
 *                       as CTest reports it) when that set is absent */
int main(int argc, char **argv) {
  const char *part = argc > 1 ? argv[1] : "synthetic";
  if (strcmp(part, "pets") == 0 || strcmp(part, "membrane") == 0) {
    int pets = strcmp(part, "pets") == 0;
    if (!(pets ? test_shared_pets() : test_shared_membrane())) {
      printf("SKIP: %s/data/%s not present\n", UNET_SHARED_DIR, pets ? "pets" : "isbi-membrane");
      return 77;
    }
    CHECK_DONE();
  }
  if (strcmp(part, "synthetic") != 0) {
    fprintf(stderr, "usage: test_image [pets|membrane]\n");
    return 2;
  }
  snprintf(tmp_dir, sizeof tmp_dir, "%s/test_image_tmp.%ld", UNET_BINARY_DIR, (long)getpid());
  if (unet_mkdir_p(tmp_dir) != 0) unet_fatal("cannot create %s", tmp_dir);
  test_png_colour_types();
  test_jpeg_kinds();
  test_errors();
  test_writers();
  if (check_failures == 0) {
    /* leave the files for inspection only when something failed */
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    char path[8600];
    while (d && (e = readdir(d)) != NULL)
      if (e->d_name[0] != '.') snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name), unlink(path);
    if (d) closedir(d);
    rmdir(tmp_dir);
  }
  CHECK_DONE();
}
