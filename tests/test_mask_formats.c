/* test_mask_formats.c - unet-preprocess on the mask formats of other public
 * segmentation sets, each generated here: binary masks stored as JPEG
 * (--mask-threshold), masks at another resolution than their photo, PASCAL VOC
 * style palette PNGs with a 255 void border, CamVid-like 12-class masks with a
 * void class (--ignore-value), and --split test. For every written pair the
 * stored class ids are compared with ids computed here from the generating
 * class map (nearest resize by the TF rule, written out below), so a wrong
 * mapping, threshold, index or resize shows as a differing pixel. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "png_spec.h"
#include "unet/image.h"
#include "unet/shard.h"
#include "unet/util.h"

static char g_work[2048];
static char g_log[1 << 16];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
  char args[8192], cmd[16384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "cd '%s' && %s/unet-preprocess %s > log.txt 2>&1", g_work, UNET_BINARY_DIR, args);
  int st = system(cmd);
  char path[4200];
  snprintf(path, sizeof path, "%s/log.txt", g_work);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(g_log, 1, sizeof g_log - 1, f) : 0;
  g_log[n] = 0;
  if (f) fclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
#define CHECK_LOG(text) CHECK_MSG(strstr(g_log, text) != NULL, "no '%s' in the log:\n%s", text, g_log)

static void work_path(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void work_path(char *out, size_t n, const char *fmt, ...) {
  char rel[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rel, sizeof rel, fmt, ap);
  va_end(ap);
  snprintf(out, n, "%s/%s", g_work, rel);
}

/* ---- generated pictures ---------------------------------------------------- */
/* Class of pixel (x, y) of a w x h picture, in "picture coordinates" u = x/w,
 * v = y/h, so the same scene at another resolution has the same classes. */
static int scene_class(int k, double u, double v, int classes) {
  double cx = 0.3 + 0.08 * (k % 5), cy = 0.4 + 0.05 * (k % 3);
  double d = (u - cx) * (u - cx) + (v - cy) * (v - cy);
  if (classes == 2) return d < 0.06 ? 1 : 0;
  int band = (int)(d * 40 + 3 * u + k) % classes; /* rings and a ramp: every class occurs */
  return band;
}

static void write_photo(const char *path, int k, int w, int h) {
  uint8_t *rgb = xmalloc((size_t)w * h * 3, "photo");
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t *p = rgb + ((size_t)y * w + x) * 3;
      p[0] = (uint8_t)(x * 255 / w), p[1] = (uint8_t)(y * 255 / h), p[2] = (uint8_t)((x * y + k * 40) & 255);
    }
  char err[512];
  if (image_write_jpeg(path, rgb, w, h, 90, err, sizeof err) != 0) unet_fatal("%s: %s", path, err);
  xfree(rgb);
}

/* The class map of scene k at w x h, and raw values = lut[class]. */
static uint8_t *class_map(int k, int w, int h, int classes) {
  uint8_t *m = xmalloc((size_t)w * h, "class map");
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) m[(size_t)y * w + x] = (uint8_t)scene_class(k, (x + 0.5) / w, (y + 0.5) / h, classes);
  return m;
}

/* TF2 nearest (half-pixel centres): src = min(floor((dst + 0.5) * in / out), in - 1). */
static void nearest(const uint8_t *src, int sh, int sw, uint8_t *dst, int dh, int dw) {
  for (int y = 0; y < dh; y++) {
    int sy = (int)((y + 0.5) * sh / dh);
    if (sy > sh - 1) sy = sh - 1;
    for (int x = 0; x < dw; x++) {
      int sx = (int)((x + 0.5) * sw / dw);
      if (sx > sw - 1) sx = sw - 1;
      dst[(size_t)y * dw + x] = src[(size_t)sy * sw + sx];
    }
  }
}

/* Every sample of path: stored ids == expected(name), which returns a mask at
 * the shard's size or NULL for a pair that should not be there. Returns the
 * sample count and fills *info. */
typedef uint8_t *(*ExpectFn)(const char *name, int h, int w);
static long check_shard(const char *rel, ExpectFn expect, ShardInfo *info_out) {
  char path[4200], err[1024];
  work_path(path, sizeof path, "%s", rel);
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  if (!r) return -1;
  const ShardInfo *in = shard_reader_info(r);
  *info_out = *in;
  long n = shard_reader_count(r);
  uint8_t *mask = xmalloc((size_t)in->height * in->width, "mask");
  for (long i = 0; i < n; i++) {
    char name[SHARD_NAME_MAX];
    CHECK_MSG(shard_reader_read(r, i, NULL, mask, name, sizeof name, err, sizeof err) == 0, "%s", err);
    uint8_t *want = expect(name, in->height, in->width);
    CHECK_MSG(want != NULL, "%s: unexpected sample %s", rel, name);
    if (!want) continue;
    long diff = 0, first = -1;
    for (long q = 0; q < (long)in->height * in->width; q++)
      if (mask[q] != want[q]) {
        if (first < 0) first = q;
        diff++;
      }
    CHECK_MSG(diff == 0, "%s sample %s: %ld of %d class ids differ (first at %ld: %d, want %d)", rel, name, diff,
              in->height * in->width, first, first >= 0 ? mask[first] : 0, first >= 0 ? want[first] : 0);
    xfree(want);
  }
  xfree(mask);
  shard_reader_close(r);
  return n;
}

static long count_in(const char *rel, ExpectFn expect) {
  ShardInfo info;
  return check_shard(rel, expect, &info);
}

static int stem_index(const char *name) { /* "x_007" -> 7 */
  const char *u = strrchr(name, '_');
  return u ? atoi(u + 1) : -1;
}

/* ---- 1. binary masks stored as JPEG ------------------------------------------ */
#define PW 128 /* photos 128x96 (W x H); the shards 48x64 (H x W): the same 4:3 */
#define PH 96
static uint8_t *expect_binary(const char *name, int h, int w) {
  int k = stem_index(name);
  uint8_t *src = class_map(k, PW, PH, 2), *out = xmalloc((size_t)h * w, "expected");
  nearest(src, PH, PW, out, h, w);
  xfree(src);
  return out;
}

static void part_jpeg(void) {
  char path[4200];
  work_path(path, sizeof path, "horse/images");
  unet_mkdir_p(path);
  work_path(path, sizeof path, "horse/masks");
  unet_mkdir_p(path);
  uint8_t *rgb = xmalloc(PW * PH * 3, "mask rgb");
  for (int k = 0; k < 6; k++) {
    work_path(path, sizeof path, "horse/images/h_%03d.jpg", k);
    write_photo(path, k, PW, PH);
    uint8_t *m = class_map(k, PW, PH, 2);
    for (int i = 0; i < PW * PH; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = m[i] ? 255 : 0;
    work_path(path, sizeof path, "horse/masks/h_%03d.jpg", k);
    char err[512];
    if (image_write_jpeg(path, rgb, PW, PH, 75, err, sizeof err) != 0) unet_fatal("%s", err);
    xfree(m);
  }
  xfree(rgb);
  /* the JPEG really has grey values between 0 and 255 (else this part tests nothing) */
  Image img;
  char err[512];
  work_path(path, sizeof path, "horse/masks/h_000.jpg");
  CHECK(image_load_gray(path, &img, err, sizeof err) == 0);
  int greys = 0;
  for (int i = 0; i < img.width * img.height; i++) greys += img.pixels[i] != 0 && img.pixels[i] != 255;
  image_free(&img);
  CHECK_MSG(greys > 50, "only %d grey values in a JPEG mask", greys);
  /* --mask-values 0,255 rejects every pair, as the issue reports */
  CHECK(run("--images horse/images --masks horse/masks --out horse-v --size 48x64 --val 0 --mask-values 0,255") == 1);
  CHECK_LOG("is not in the mapping 0,255");
  CHECK_LOG("error: no valid image/mask pairs");
  /* --mask-threshold 128: every pair, class ids exactly the generating map's */
  CHECK(run("--images horse/images --masks horse/masks --out horse-t --size 48x64 --val 2 --mask-threshold 128") == 0);
  CHECK_LOG("mask threshold 128: raw value >= 128 is class 1, below is class 0");
  CHECK_LOG("wrote 6 pairs");
  ShardInfo info;
  long n = check_shard("horse-t/train-00000-of-00001.h5", expect_binary, &info) + count_in("horse-t/val.h5", expect_binary);
  CHECK_MSG(n == 6, "%ld pairs in the shards", n);
  CHECK(info.num_classes == 2 && info.has_threshold && info.mask_threshold == 128 && !info.has_ignore);
  CHECK(info.mask_values[0] == 0 && info.mask_values[1] == 128);
  CHECK(run("--images horse/images --masks horse/masks --out x --mask-threshold 128 --mask-values 0,255") == 2);
  CHECK_LOG("--mask-threshold and --mask-values exclude each other");
  CHECK(run("--images horse/images --masks horse/masks --out x --mask-threshold 0") == 2);
}

/* ---- 2. masks at another resolution ------------------------------------------ */
/* trimap-valued masks (1, 2, 3) of the same scene at mask_w x mask_h */
static const int RES_W[] = {64, 32, 127, 63, 128};
static const int RES_H[] = {48, 24, 96, 48, 128};
static uint8_t *expect_res(const char *name, int h, int w) {
  int k = stem_index(name);
  if (k == 3 || k == 4) return NULL; /* the aspect mismatches */
  uint8_t *src = class_map(k, RES_W[k], RES_H[k], 3), *out = xmalloc((size_t)h * w, "expected");
  nearest(src, RES_H[k], RES_W[k], out, h, w);
  xfree(src);
  return out;
}

static void part_resolution(void) {
  char path[4200], err[512];
  work_path(path, sizeof path, "res/images");
  unet_mkdir_p(path);
  work_path(path, sizeof path, "res/masks");
  unet_mkdir_p(path);
  for (int k = 0; k < 5; k++) {
    work_path(path, sizeof path, "res/images/r_%d.jpg", k);
    write_photo(path, k, PW, PH);
    uint8_t *m = class_map(k, RES_W[k], RES_H[k], 3);
    for (int i = 0; i < RES_W[k] * RES_H[k]; i++) m[i] = (uint8_t)(m[i] + 1); /* raw 1, 2, 3 */
    work_path(path, sizeof path, "res/masks/r_%d.png", k);
    if (image_write_png(path, m, RES_W[k], RES_H[k], 1, err, sizeof err) != 0) unet_fatal("%s", err);
    xfree(m);
  }
  /* 64x48 and 32x24 (exact 4:3), 127x96 (0.8% off): resized straight to the target;
   * 63x48 (1.6% off) and 128x128: another picture, skipped with the reason */
  CHECK(run("--images res/images --masks res/masks --out res-o --size 48x64 --val 0") == 0);
  CHECK_LOG("3 mask(s) at another resolution than their image (same aspect ratio): resized straight to 48x64");
  CHECK_LOG("r_3.png: mask is 63x48 (WxH) but image res/images/r_3.jpg is 128x96: aspect ratios 1.3125 and 1.3333 "
            "differ by 1.6% (more than 1%: not the same picture)");
  CHECK_LOG("skipping r_4");
  CHECK_LOG("skipped 2: image/mask size mismatch 2");
  long n = count_in("res-o/train-00000-of-00001.h5", expect_res);
  CHECK_MSG(n == 3, "%ld pairs written", n);
  /* --strict keeps any size difference an error */
  CHECK(run("--images res/images --masks res/masks --out res-s --size 48x64 --val 0 --strict") == 1);
  CHECK_LOG("r_0.png: mask is 64x48 (WxH) but image res/images/r_0.jpg is 128x96");
  CHECK_LOG("--strict: nothing written");
}

/* ---- 3. PASCAL VOC palette PNGs with a 255 void border ---------------------- */
static uint8_t *voc_indices(int k) { /* 21-class-like indices 0..4 and a 3-pixel 255 border */
  uint8_t *m = class_map(k, PW, PH, 5);
  for (int y = 0; y < PH; y++)
    for (int x = 0; x < PW; x++)
      if (x < 3 || y < 3 || x >= PW - 3 || y >= PH - 3) m[(size_t)y * PW + x] = 255;
  return m;
}

static uint8_t *expect_voc(const char *name, int h, int w) {
  uint8_t *src = voc_indices(stem_index(name)), *out = xmalloc((size_t)h * w, "expected");
  nearest(src, PH, PW, out, h, w); /* 255 stays 255 = SHARD_IGNORE_ID */
  xfree(src);
  return out;
}

static void part_voc(void) {
  char path[4200];
  work_path(path, sizeof path, "voc/JPEGImages");
  unet_mkdir_p(path);
  work_path(path, sizeof path, "voc/SegmentationClass");
  unet_mkdir_p(path);
  /* VOC's colour map: bit-interleaved class colours, 255 = (224, 224, 192) */
  png_color pal[256];
  for (int i = 0; i < 256; i++) {
    int r = 0, g = 0, b = 0, c = i;
    for (int j = 0; j < 8; j++, c >>= 3) {
      r |= ((c >> 0) & 1) << (7 - j), g |= ((c >> 1) & 1) << (7 - j), b |= ((c >> 2) & 1) << (7 - j);
    }
    pal[i] = (png_color){(uint8_t)r, (uint8_t)g, (uint8_t)b};
  }
  for (int k = 0; k < 4; k++) {
    work_path(path, sizeof path, "voc/JPEGImages/2007_%06d.jpg", k);
    write_photo(path, k, PW, PH);
    uint8_t *idx = voc_indices(k);
    PngSpec s = {PW, PH, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, pal, 256, NULL, 0};
    work_path(path, sizeof path, "voc/SegmentationClass/2007_%06d.png", k);
    make_png(path, &s);
    xfree(idx);
  }
  CHECK(run("--images voc/JPEGImages --masks voc/SegmentationClass --out voc-o --size 48x64 --val 1 "
            "--mask-values 0,1,2,3,4 --ignore-value 255") == 0);
  CHECK_LOG("4 palette PNG mask(s) read by index");
  CHECK_LOG("ignore value 255:");
  ShardInfo info;
  long n = check_shard("voc-o/train-00000-of-00001.h5", expect_voc, &info) + count_in("voc-o/val.h5", expect_voc);
  CHECK_MSG(n == 4, "%ld pairs", n);
  CHECK(info.num_classes == 5 && info.has_ignore && info.ignore_value == 255 && !info.has_threshold);
  /* without --ignore-value the border is a value outside the mapping, named as a palette index */
  CHECK(run("--images voc/JPEGImages --masks voc/SegmentationClass --out voc-x --size 48x64 --val 0 "
            "--mask-values 0,1,2,3,4") == 1);
  CHECK_LOG("mask value 255 at (x=0, y=0) is not in the mapping 0,1,2,3,4");
  CHECK_LOG("a palette PNG: its values are palette indices");
  CHECK(run("--images voc/JPEGImages --masks voc/SegmentationClass --out x --mask-values 0,255 --ignore-value 255") == 2);
  CHECK_LOG("--ignore-value 255 is also class 1 of --mask-values");
}

/* ---- 4. CamVid-like: 12 classes, 11 = void; --split test ----------------------- */
static uint8_t *camvid_raw(int k) { return class_map(k, PW, PH, 12); }
static uint8_t *expect_camvid(const char *name, int h, int w) {
  uint8_t *src = camvid_raw(stem_index(name)), *out = xmalloc((size_t)h * w, "expected");
  nearest(src, PH, PW, out, h, w);
  for (long q = 0; q < (long)h * w; q++)
    if (out[q] == 11) out[q] = SHARD_IGNORE_ID;
  xfree(src);
  return out;
}

static void part_camvid(void) {
  char path[4200], err[512];
  work_path(path, sizeof path, "camvid/images");
  unet_mkdir_p(path);
  work_path(path, sizeof path, "camvid/labels");
  unet_mkdir_p(path);
  long void_px = 0;
  for (int k = 0; k < 5; k++) {
    work_path(path, sizeof path, "camvid/images/seq_%02d.png", k);
    uint8_t *rgb = xmalloc(PW * PH * 3, "photo");
    for (int i = 0; i < PW * PH * 3; i++) rgb[i] = (uint8_t)(i * 7 + k);
    if (image_write_png(path, rgb, PW, PH, 3, err, sizeof err) != 0) unet_fatal("%s", err);
    xfree(rgb);
    uint8_t *m = camvid_raw(k);
    for (int i = 0; i < PW * PH; i++) void_px += m[i] == 11;
    work_path(path, sizeof path, "camvid/labels/seq_%02d.png", k);
    if (image_write_png(path, m, PW, PH, 1, err, sizeof err) != 0) unet_fatal("%s", err);
    xfree(m);
  }
  CHECK_MSG(void_px > 100, "the generated labels hold only %ld void pixels", void_px);
  const char *values = "0,1,2,3,4,5,6,7,8,9,10";
  /* the whole labelled set into one test file (--val 5 of 5 is refused) */
  CHECK(run("--images camvid/images --masks camvid/labels --out cv --size 48x64 --val 5 --mask-values %s", values) == 1);
  CHECK(run("--images camvid/images --masks camvid/labels --out cv --size 48x64 --split test --mask-values %s "
            "--ignore-value 11", values) == 0);
  CHECK_LOG("wrote 5 pairs to cv/test.h5 (stem order)");
  ShardInfo info;
  CHECK(check_shard("cv/test.h5", expect_camvid, &info) == 5);
  CHECK(info.num_classes == 11 && info.has_ignore && info.ignore_value == 11 && !strcmp(info.kind, "test"));
  /* stem order, not shuffled */
  work_path(path, sizeof path, "cv/test.h5");
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK(r != NULL);
  for (long i = 0; r && i < shard_reader_count(r); i++) {
    char name[SHARD_NAME_MAX], want[32];
    CHECK(shard_reader_read(r, i, NULL, NULL, name, sizeof name, err, sizeof err) == 0);
    snprintf(want, sizeof want, "seq_%02ld", i);
    CHECK_MSG(!strcmp(name, want), "test.h5 sample %ld is %s, want %s", i, name, want);
  }
  if (r) shard_reader_close(r);
  /* a train split into the same folder keeps test.h5, and the manifest lists both */
  CHECK(run("--images camvid/images --masks camvid/labels --out cv --size 48x64 --val 1 --mask-values %s "
            "--ignore-value 11", values) == 0);
  work_path(path, sizeof path, "cv/manifest.txt");
  FILE *f = fopen(path, "r");
  char text[4096] = "";
  size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
  text[got] = 0;
  if (f) fclose(f);
  CHECK_MSG(strstr(text, "train-00000-of-00001.h5 train 4") && strstr(text, "val.h5 val 1") &&
                strstr(text, "test.h5 test 5"),
            "manifest:\n%s", text);
  work_path(path, sizeof path, "cv/test.h5");
  CHECK(access(path, F_OK) == 0);
  /* a dataset's own validation split: train shards with --val 0, then --split val beside them */
  CHECK(run("--images camvid/images --masks camvid/labels --out cv3 --size 48x64 --val 0 --mask-values %s "
            "--ignore-value 11", values) == 0);
  CHECK(run("--images camvid/images --masks camvid/labels --out cv3 --size 48x64 --split val --mask-values %s "
            "--ignore-value 11", values) == 0);
  CHECK_LOG("wrote 5 pairs to cv3/val.h5 (stem order)");
  CHECK(check_shard("cv3/val.h5", expect_camvid, &info) == 5 && !strcmp(info.kind, "val"));
  CHECK(count_in("cv3/train-00000-of-00001.h5", expect_camvid) == 5);
  CHECK(run("--images camvid/images --masks camvid/labels --out cv2 --split test --val 2") == 2);
  CHECK_LOG("--split test writes every pair into test.h5: --val and --shards do not apply");
}

int main(void) {
  snprintf(g_work, sizeof g_work, "%s/test-work/test_mask_formats", UNET_BINARY_DIR);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_work);
  if (system(cmd) != 0 || unet_mkdir_p(g_work) != 0) return 1;
  part_jpeg();
  part_resolution();
  part_voc();
  part_camvid();
  CHECK_DONE();
}
