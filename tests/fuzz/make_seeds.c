/* make_seeds.c - writes the fuzz harnesses' seed corpus with the project's
 * own writers (tests/fuzz/corpus/ is its output, committed):
 *   fuzz-make-seeds OUTDIR            small seeds: OUTDIR/{image,mask,shard,weights}/
 *   fuzz-make-seeds --full-weights F  a whole 2-class weights file (8 MB, not
 *                                     committed: jobs/run-tests.sh adds it at run time)
 * Image seeds start with the 2 bytes fuzz_image.c takes as the output size,
 * mask seeds with the 8 option bytes of fuzz_mask.c. */
#include <hdf5.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/image.h"
#include "unet/model.h"
#include "unet/shard.h"
#include "unet/util.h"
#include "unet/weights_keras.h"

static void die(const char *what, const char *err) {
  fprintf(stderr, "fuzz-make-seeds: %s: %s\n", what, err);
  exit(1);
}

static uint8_t *slurp(const char *path, size_t *len) {
  uint8_t *data;
  char err[512];
  if (read_file_bytes(path, &data, len, err, sizeof err) != 0) die(path, err);
  return data;
}

/* out = prefix[np] + the bytes of file src; src removed. */
static void prefixed(const char *out, const uint8_t *prefix, size_t np, const char *src) {
  size_t len;
  uint8_t *data = slurp(src, &len);
  FILE *f = fopen(out, "wb");
  if (!f || fwrite(prefix, 1, np, f) != np || fwrite(data, 1, len, f) != len || fclose(f) != 0) die(out, "write failed");
  free(data);
  remove(src);
}

/* A PNG of libpng's color_type/bit_depth from 8-bit samples, for the formats
 * image_write_png does not make (palette, 16-bit, gray+alpha, RGBA). */
static void write_png_raw(const char *path, int w, int h, int color_type, int depth, int channels) {
  FILE *f = fopen(path, "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (!f || !png || !info || setjmp(png_jmpbuf(png))) die(path, "libpng failed");
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[4] = {{0, 0, 0}, {200, 10, 10}, {10, 200, 10}, {255, 255, 255}};
    png_set_PLTE(png, info, pal, 4);
  }
  png_write_info(png, info);
  int bytes = depth / 8 * channels;
  uint8_t *row = malloc((size_t)w * bytes);
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w * bytes; x++) row[x] = color_type == PNG_COLOR_TYPE_PALETTE ? (uint8_t)((x + y) % 4) : (uint8_t)(x * 17 + y * 29);
    png_write_row(png, row);
  }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(row);
  fclose(f);
}

static void images(const char *dir) {
  char img_dir[4200], mask_dir[4200], tmp[4200], out[4300], err[512];
  snprintf(img_dir, sizeof img_dir, "%s/image", dir);
  snprintf(mask_dir, sizeof mask_dir, "%s/mask", dir);
  if (unet_mkdir_p(img_dir) || unet_mkdir_p(mask_dir)) die(dir, "cannot create");
  enum { W = 12, H = 9 };
  uint8_t rgb[H * W * 3], gray[H * W], trimap[H * W];
  for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(i * 7);
  for (int i = 0; i < H * W; i++) gray[i] = (uint8_t)(i * 3), trimap[i] = (uint8_t)(1 + i % 3);
  const uint8_t size_prefix[2] = {7, 11};
  snprintf(tmp, sizeof tmp, "%s/tmp.bin", dir);
  /* images: JPEG (RGB), PNG RGB, gray, RGBA, 16-bit gray, palette */
  if (image_write_jpeg(tmp, rgb, W, H, 90, err, sizeof err)) die(tmp, err);
  snprintf(out, sizeof out, "%s/rgb.jpg.bin", img_dir), prefixed(out, size_prefix, 2, tmp);
  if (image_write_png(tmp, rgb, W, H, 3, err, sizeof err)) die(tmp, err);
  snprintf(out, sizeof out, "%s/rgb.png.bin", img_dir), prefixed(out, size_prefix, 2, tmp);
  if (image_write_png(tmp, gray, W, H, 1, err, sizeof err)) die(tmp, err);
  snprintf(out, sizeof out, "%s/gray.png.bin", img_dir), prefixed(out, size_prefix, 2, tmp);
  write_png_raw(tmp, W, H, PNG_COLOR_TYPE_RGBA, 8, 4);
  snprintf(out, sizeof out, "%s/rgba.png.bin", img_dir), prefixed(out, size_prefix, 2, tmp);
  write_png_raw(tmp, W, H, PNG_COLOR_TYPE_GRAY, 16, 1);
  snprintf(out, sizeof out, "%s/gray16.png.bin", img_dir), prefixed(out, size_prefix, 2, tmp);
  write_png_raw(tmp, W, H, PNG_COLOR_TYPE_PALETTE, 8, 1);
  snprintf(out, sizeof out, "%s/palette.png.bin", img_dir), prefixed(out, size_prefix, 2, tmp);
  /* masks, each with a mapping: trimap 1,2,3 (values), trimap + ignore 3,
   * gray threshold 128, palette 0..3 + ignore 3, a JPEG mask thresholded */
  const uint8_t values123[8] = {0, 2, 1, 2, 3, 0, 0, 0}, values12_ignore3[8] = {1, 1, 1, 2, 2, 2, 0, 3},
                threshold128[8] = {2, 0, 5, 9, 0, 0, 127, 0}, palette_ignore[8] = {1, 2, 0, 1, 2, 0, 0, 3};
  if (image_write_png(tmp, trimap, W, H, 1, err, sizeof err)) die(tmp, err);
  snprintf(out, sizeof out, "%s/trimap.png.bin", mask_dir), prefixed(out, values123, 8, tmp);
  if (image_write_png(tmp, trimap, W, H, 1, err, sizeof err)) die(tmp, err);
  snprintf(out, sizeof out, "%s/trimap-ignore.png.bin", mask_dir), prefixed(out, values12_ignore3, 8, tmp);
  if (image_write_png(tmp, gray, W, H, 1, err, sizeof err)) die(tmp, err);
  snprintf(out, sizeof out, "%s/gray-threshold.png.bin", mask_dir), prefixed(out, threshold128, 8, tmp);
  write_png_raw(tmp, W, H, PNG_COLOR_TYPE_PALETTE, 8, 1);
  snprintf(out, sizeof out, "%s/palette-ignore.png.bin", mask_dir), prefixed(out, palette_ignore, 8, tmp);
  if (image_write_jpeg(tmp, rgb, W, H, 90, err, sizeof err)) die(tmp, err);
  snprintf(out, sizeof out, "%s/jpeg-threshold.jpg.bin", mask_dir), prefixed(out, threshold128, 8, tmp);
}

static void shards(const char *dir) {
  char sd[4200], path[4300], err[512];
  snprintf(sd, sizeof sd, "%s/shard", dir);
  if (unet_mkdir_p(sd)) die(sd, "cannot create");
  enum { H = 6, W = 8, N = 3 };
  for (int k = 0; k < 4; k++) { /* plain, deflated, with ignore_value, thresholded */
    ShardInfo info;
    memset(&info, 0, sizeof info);
    info.height = H, info.width = W, info.num_classes = k == 3 ? 2 : 3;
    for (int c = 0; c < info.num_classes; c++) info.mask_values[c] = k == 3 ? c * 128 : c + 1;
    info.deflate_level = k == 1 ? 4 : 0;
    info.has_ignore = k == 2, info.ignore_value = k == 2 ? 255 : 0;
    info.has_threshold = k == 3, info.mask_threshold = k == 3 ? 128 : 0;
    info.seed = 7;
    snprintf(info.kind, sizeof info.kind, k == 1 ? "val" : "train");
    static const char *names[4] = {"plain", "deflate", "ignore", "threshold"};
    snprintf(path, sizeof path, "%s/%s.h5", sd, names[k]);
    ShardWriter *w = shard_writer_open(path, &info, N, err, sizeof err);
    if (!w) die(path, err);
    uint8_t img[H * W * 3], mask[H * W];
    for (int i = 0; i < N; i++) {
      for (int p = 0; p < H * W * 3; p++) img[p] = (uint8_t)(p * 5 + i);
      for (int p = 0; p < H * W; p++) mask[p] = (uint8_t)(k == 2 && p % 7 == 0 ? SHARD_IGNORE_ID : (p + i) % info.num_classes);
      char name[32];
      snprintf(name, sizeof name, "sample_%d", i);
      if (shard_writer_append(w, img, mask, name, err, sizeof err)) die(path, err);
    }
    if (shard_writer_close(w, err, sizeof err)) die(path, err);
  }
}

static void full_weights(const char *path) {
  char err[512];
  UNet m;
  if (unet_create(&m, 16, 16, 2, err, sizeof err)) die("model", err);
  for (size_t i = 0; i < m.num_params; i++) m.params[i] = (float)sin(0.01 * (double)i);
  if (weights_save_keras(&m, path, err, sizeof err)) die(path, err);
  unet_destroy(&m);
}

/* The first layers of a whole file (H5Ocopy) with its root attributes: the
 * loader's group/dataset/shape checks in a few kB. */
static void small_weights(const char *dir) {
  char wd[4200], full[4300], path[4300];
  snprintf(wd, sizeof wd, "%s/weights", dir);
  if (unet_mkdir_p(wd)) die(wd, "cannot create");
  snprintf(full, sizeof full, "%s/full.tmp.h5", dir);
  full_weights(full);
  static const char *const sets[2][5] = {{"input_layer", "conv2d", "batch_normalization", "activation", NULL},
                                         {"input_layer", "conv2d", "batch_normalization", "activation", "separable_conv2d"}};
  for (int k = 0; k < 2; k++) {
    snprintf(path, sizeof path, "%s/first-layers-%d.weights.h5", wd, k + 1);
    hid_t src = H5Fopen(full, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dst = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (src < 0 || dst < 0) die(path, "HDF5 open failed");
    hid_t layers = H5Gcreate2(dst, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Ocopy(src, "vars", dst, "vars", H5P_DEFAULT, H5P_DEFAULT) < 0) die(path, "copy /vars");
    for (int i = 0; i < 5 && sets[k][i]; i++) {
      char from[128];
      snprintf(from, sizeof from, "layers/%s", sets[k][i]);
      if (H5Ocopy(src, from, layers, sets[k][i], H5P_DEFAULT, H5P_DEFAULT) < 0) die(path, from);
    }
    hid_t root = H5Gopen2(src, "/", H5P_DEFAULT);
    static const char *const attrs[3] = {"unet_input_size", "unet_crc32_params", "unet_crc32_state"};
    for (int a = 0; a < 3; a++) {
      hid_t at = H5Aopen(root, attrs[a], H5P_DEFAULT), t = H5Aget_type(at), sp = H5Aget_space(at);
      size_t bytes = H5Tget_size(t) * (size_t)H5Sget_simple_extent_npoints(sp);
      unsigned char buf[64];
      if (bytes > sizeof buf || H5Aread(at, t, buf) < 0) die(path, attrs[a]);
      hid_t out = H5Acreate2(dst, attrs[a], t, sp, H5P_DEFAULT, H5P_DEFAULT);
      if (out < 0 || H5Awrite(out, t, buf) < 0) die(path, attrs[a]);
      H5Aclose(out), H5Sclose(sp), H5Tclose(t), H5Aclose(at);
    }
    H5Gclose(root), H5Gclose(layers);
    if (H5Fclose(dst) < 0) die(path, "close");
    H5Fclose(src);
  }
  remove(full);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--full-weights") == 0) {
    full_weights(argv[2]);
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz-make-seeds OUTDIR | --full-weights FILE\n");
    return 2;
  }
  images(argv[1]);
  shards(argv[1]);
  small_weights(argv[1]);
  return 0;
}
