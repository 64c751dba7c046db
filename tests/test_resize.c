/* test_resize.c - resize_* against values derived by hand from TF's
 * ResizeBilinear / ResizeNearestNeighbor (half_pixel_centers=True) formulas,
 * plus a brute-force per-pixel reference for many sizes (guards the row
 * cache in resize.c) and a speed print. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "unet/resize.h"
#include "unet/util.h"

/* Direct transcription of TF's per-pixel formula, no caching: the oracle. */
static float tf_bilinear_pixel(const uint8_t *src, int ih, int iw, int c, int oh, int ow, int y, int x, int k) {
  const float sy = (float)ih / (float)oh, sx = (float)iw / (float)ow;
  const float in_y = ((float)y + 0.5f) * sy - 0.5f, in_x = ((float)x + 0.5f) * sx - 0.5f;
  const float fy = floorf(in_y), fx = floorf(in_x);
  int y0 = (int)fy < 0 ? 0 : (int)fy, y1 = (int)ceilf(in_y) > ih - 1 ? ih - 1 : (int)ceilf(in_y);
  int x0 = (int)fx < 0 ? 0 : (int)fx, x1 = (int)ceilf(in_x) > iw - 1 ? iw - 1 : (int)ceilf(in_x);
  const float yl = in_y - fy, xl = in_x - fx;
  const float tl = src[((size_t)y0 * iw + x0) * c + k], tr = src[((size_t)y0 * iw + x1) * c + k];
  const float bl = src[((size_t)y1 * iw + x0) * c + k], br = src[((size_t)y1 * iw + x1) * c + k];
  const float top = tl + (tr - tl) * xl, bottom = bl + (br - bl) * xl;
  return top + (bottom - top) * yl;
}

static void check_f32(const float *got, const float *want, int n, const char *what) {
  for (int i = 0; i < n; i++) CHECK_MSG(got[i] == want[i], "%s[%d] = %.9g, want %.9g", what, i, got[i], want[i]);
}

static void check_u8(const uint8_t *got, const uint8_t *want, int n, const char *what) {
  for (int i = 0; i < n; i++) CHECK_MSG(got[i] == want[i], "%s[%d] = %d, want %d", what, i, got[i], want[i]);
}

static void test_upscale_2x2_to_4x4(void) {
  /* scale = 2/4 = 0.5; in(i) = (i + 0.5) * 0.5 - 0.5 = -0.25, 0.25, 0.75, 1.25
   *   i=0: floor -1 -> lower 0, ceil 0 -> upper 0, lerp 0.75  -> src[0]
   *   i=1: lower 0, upper 1, lerp 0.25
   *   i=2: lower 0, upper 1, lerp 0.75
   *   i=3: lower 1, upper min(2, 1) = 1, lerp 0.25              -> src[1]
   * src [[0, 10], [20, 30]]:
   *   top row   0 -> 0, 2.5, 7.5, 10;  bottom row 20 -> 20, 22.5, 27.5, 30
   *   rows: + (20) * {0, 0.25, 0.75, 1} = +0, +5, +15, +20. All exact in float. */
  const uint8_t src[4] = {0, 10, 20, 30};
  const float want[16] = {0, 2.5f, 7.5f, 10, 5, 7.5f, 12.5f, 15, 15, 17.5f, 22.5f, 25, 20, 22.5f, 27.5f, 30};
  float got[16];
  resize_bilinear_f32(src, 2, 2, 1, got, 4, 4);
  check_f32(got, want, 16, "up 2x2->4x4");

  /* u8: halves round away from zero: 2.5->3, 7.5->8, 12.5->13, 17.5->18, 22.5->23, 27.5->28 */
  const uint8_t want_u8[16] = {0, 3, 8, 10, 5, 8, 13, 15, 15, 18, 23, 25, 20, 23, 28, 30};
  uint8_t got_u8[16];
  resize_bilinear_u8(src, 2, 2, 1, got_u8, 4, 4);
  check_u8(got_u8, want_u8, 16, "up u8 2x2->4x4");

  /* 3 channels are independent: channel k holds src * (k + 1). */
  uint8_t src3[12];
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 3; k++) src3[3 * i + k] = (uint8_t)(src[i] * (k + 1));
  float got3[48];
  resize_bilinear_f32(src3, 2, 2, 3, got3, 4, 4);
  for (int i = 0; i < 16; i++)
    for (int k = 0; k < 3; k++) CHECK_CLOSE(got3[3 * i + k], want[i] * (k + 1), 0, 0);
}

static void test_downscale(void) {
  /* 4x4 -> 2x2: scale 2, in(i) = (i + 0.5) * 2 - 0.5 = 0.5, 2.5 -> lerp 0.5 between
   * (0,1) and (2,3): each output is the mean of a 2x2 block. src[y][x] = 4y + x:
   *   (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, (8+9+12+13)/4 = 10.5, 12.5 */
  uint8_t src[16];
  for (int i = 0; i < 16; i++) src[i] = (uint8_t)i;
  const float want[4] = {2.5f, 4.5f, 10.5f, 12.5f};
  float got[4];
  resize_bilinear_f32(src, 4, 4, 1, got, 2, 2);
  check_f32(got, want, 4, "down 4x4->2x2");

  /* 5x5 -> 3x3 (odd): scale = (float)5/3 = 1.66666663; in(i) = (i + 0.5) * scale - 0.5
   *   i=0: 0.83333331 - 0.5 = 0.33333331 -> lower 0, upper 1, lerp 0.33333331
   *   i=1: 2.5 (1.5 * scale rounds to 2.5 in float) - 0.5 = 2 -> rows/cols 2, 2, lerp 0
   *   i=2: 4.16666651 - 0.5 = 3.66666651 -> lower 3, upper 4, lerp 0.66666651
   * src[y][x] = 10x + 50y (exact ramps): out = 10 in_x + 50 in_y:
   *   x: 3.3333331, 20, 36.666665;  y adds 16.666666, 100, 183.33333 */
  uint8_t src5[25];
  for (int y = 0; y < 5; y++)
    for (int x = 0; x < 5; x++) src5[y * 5 + x] = (uint8_t)(10 * x + 50 * y);
  float got5[9];
  resize_bilinear_f32(src5, 5, 5, 1, got5, 3, 3);
  const double wx[3] = {10.0 / 3, 20, 110.0 / 3}, wy[3] = {50.0 / 3, 100, 550.0 / 3};
  for (int y = 0; y < 3; y++)
    for (int x = 0; x < 3; x++) CHECK_CLOSE(got5[y * 3 + x], wx[x] + wy[y], 2e-5, 0);
  CHECK(got5[4] == 120.0f); /* centre maps exactly onto src (2, 2) */
  /* and bit-exact against the per-pixel formula */
  for (int y = 0; y < 3; y++)
    for (int x = 0; x < 3; x++) CHECK(got5[y * 3 + x] == tf_bilinear_pixel(src5, 5, 5, 1, 3, 3, y, x, 0));
}

static void test_thin_and_identity(void) {
  /* 1x3 -> 1x6: x scale 0.5, in = -0.25, 0.25, 0.75, 1.25, 1.75, 2.25
   *   -> src 0 | 0..1 @.25 | 0..1 @.75 | 1..2 @.25 | 1..2 @.75 | 2 (upper clamped)
   * src [0, 100, 200] -> 0, 25, 75, 125, 175, 200. Height 1 -> 1: in = 0, row 0. */
  const uint8_t row[3] = {0, 100, 200};
  const float want_row[6] = {0, 25, 75, 125, 175, 200};
  float got_row[6];
  resize_bilinear_f32(row, 1, 3, 1, got_row, 1, 6);
  check_f32(got_row, want_row, 6, "1x3->1x6");

  /* 4x1 -> 2x1 (column): pairs averaged: [0,10,20,30] -> 5, 25 */
  const uint8_t col[4] = {0, 10, 20, 30};
  const float want_col[2] = {5, 25};
  float got_col[2];
  resize_bilinear_f32(col, 4, 1, 1, got_col, 2, 1);
  check_f32(got_col, want_col, 2, "4x1->2x1");

  /* 3x1 -> 1x1: scale 3, in = 0.5 * 3 - 0.5 = 1 -> the middle pixel exactly */
  const uint8_t col3[3] = {7, 99, 200};
  float got1;
  resize_bilinear_f32(col3, 3, 1, 1, &got1, 1, 1);
  CHECK(got1 == 99.0f);

  /* 1x2 -> 1x4 u8 rounding: 0 + 255 * .25 = 63.75 -> 64, 255 * .75 = 191.25 -> 191 */
  const uint8_t two[2] = {0, 255};
  const uint8_t want_two[4] = {0, 64, 191, 255};
  uint8_t got_two[4];
  resize_bilinear_u8(two, 1, 2, 1, got_two, 1, 4);
  check_u8(got_two, want_two, 4, "u8 1x2->1x4");

  /* identity size: in = (i + .5) * 1 - .5 = i exactly, lerp 0 -> a copy */
  enum { H = 7, W = 5, C = 3 };
  uint8_t img[H * W * C];
  float out[H * W * C];
  uint8_t out8[H * W * C];
  for (int i = 0; i < H * W * C; i++) img[i] = (uint8_t)((i * 37 + 11) % 256);
  resize_bilinear_f32(img, H, W, C, out, H, W);
  resize_bilinear_u8(img, H, W, C, out8, H, W);
  for (int i = 0; i < H * W * C; i++) {
    CHECK(out[i] == (float)img[i]);
    CHECK(out8[i] == img[i]);
  }
}

static void test_nearest(void) {
  /* TF2 half-pixel nearest: src = min(floor((dst + 0.5) * in / out), in - 1)
   *   up   2 -> 4: scale .5: .25 .75 1.25 1.75          -> 0 0 1 1
   *   down 4 -> 2: scale 2 : 1 3                         -> 1 3 (not 0 2)
   *   odd  5 -> 3: scale 1.6666666: .83 2.5 4.17         -> 0 2 4
   *   odd  3 -> 5: scale .6 (0.60000002): .3 .9 1.5000001 2.1 2.7 -> 0 0 1 2 2 */
  uint8_t src[25], dst[25];
  for (int i = 0; i < 25; i++) src[i] = (uint8_t)i;

  /* 2x2 -> 4x4: src[y][x] = 2y + x */
  resize_nearest_u8(src, 2, 2, 1, dst, 4, 4);
  const uint8_t want_up[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};
  check_u8(dst, want_up, 16, "nearest 2x2->4x4");

  /* 4x4 -> 2x2: src[y][x] = 4y + x, picks (1,1) (1,3) (3,1) (3,3) */
  resize_nearest_u8(src, 4, 4, 1, dst, 2, 2);
  const uint8_t want_down[4] = {5, 7, 13, 15};
  check_u8(dst, want_down, 4, "nearest 4x4->2x2");

  /* 5x5 -> 3x3: rows/cols 0 2 4 */
  resize_nearest_u8(src, 5, 5, 1, dst, 3, 3);
  const uint8_t want_odd[9] = {0, 2, 4, 10, 12, 14, 20, 22, 24};
  check_u8(dst, want_odd, 9, "nearest 5x5->3x3");

  /* 1x3 -> 1x5 (2 channels): cols 0 0 1 2 2 */
  const uint8_t row[6] = {1, 2, 3, 4, 5, 6};
  uint8_t out[10];
  resize_nearest_u8(row, 1, 3, 2, out, 1, 5);
  const uint8_t want_row[10] = {1, 2, 1, 2, 3, 4, 5, 6, 5, 6};
  check_u8(out, want_row, 10, "nearest 1x3x2->1x5x2");

  /* trimap-like values survive untouched: only 1, 2, 3 in, only 1, 2, 3 out */
  uint8_t tri[6 * 9], tri_out[4 * 7];
  for (int i = 0; i < 54; i++) tri[i] = (uint8_t)(1 + (i * 7) % 3);
  resize_nearest_u8(tri, 6, 9, 1, tri_out, 4, 7);
  for (int i = 0; i < 28; i++) CHECK(tri_out[i] >= 1 && tri_out[i] <= 3);
}

/* Many shapes against the per-pixel oracle: bit-exact float equality. */
static void test_against_oracle(void) {
  const int sizes[][4] = {{1, 1, 3, 3}, {3, 4, 7, 9}, {9, 7, 4, 3}, {5, 13, 5, 6}, {13, 5, 160, 160},
                          {375, 500, 160, 160}, {160, 160, 375, 500}, {2, 9, 1, 17}, {17, 1, 6, 1}};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const int ih = sizes[s][0], iw = sizes[s][1], oh = sizes[s][2], ow = sizes[s][3];
    for (int c = 1; c <= 3; c += 2) {
      uint8_t *src = malloc((size_t)ih * iw * c);
      float *dst = malloc(sizeof(float) * oh * ow * c);
      uint8_t *dst8 = malloc((size_t)oh * ow * c);
      uint32_t r = 12345u + (uint32_t)s;
      for (int i = 0; i < ih * iw * c; i++) {
        r = r * 1664525u + 1013904223u;
        src[i] = (uint8_t)(r >> 24);
      }
      resize_bilinear_f32(src, ih, iw, c, dst, oh, ow);
      resize_bilinear_u8(src, ih, iw, c, dst8, oh, ow);
      int bad = 0;
      for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
          for (int k = 0; k < c; k++) {
            size_t i = ((size_t)y * ow + x) * c + k;
            float want = tf_bilinear_pixel(src, ih, iw, c, oh, ow, y, x, k);
            if (dst[i] != want || dst8[i] != (uint8_t)lroundf(want)) bad++;
          }
      CHECK_MSG(bad == 0, "%dx%dx%d -> %dx%d: %d pixels differ from the formula", ih, iw, c, oh, ow, bad);
      free(src);
      free(dst);
      free(dst8);
    }
  }
}

/* Probabilities upsampled bilinearly (the TF rule, written out here in double
 * per pixel) then argmax: resize_bilinear_argmax must give the same ids. A
 * hand case first: two classes on a 1x2 row, upsampled to 1x4. */
static double ref_bilinear(const float *p, int ih, int iw, int c, int oh, int ow, int y, int x, int k) {
  double sy = ((double)y + 0.5) * ih / oh - 0.5, sx = ((double)x + 0.5) * iw / ow - 0.5;
  int y0 = (int)floor(sy), x0 = (int)floor(sx);
  double ly = sy - y0, lx = sx - x0;
  int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 > ih - 1 ? ih - 1 : y0 + 1;
  int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 > iw - 1 ? iw - 1 : x0 + 1;
  if (ya > ih - 1) ya = ih - 1;
  if (xa > iw - 1) xa = iw - 1;
#define P(yy, xx) ((double)p[((size_t)(yy) * iw + (xx)) * c + k])
  double top = P(ya, xa) + (P(ya, xb) - P(ya, xa)) * lx, bot = P(yb, xa) + (P(yb, xb) - P(yb, xa)) * lx;
#undef P
  return top + (bot - top) * ly;
}

static void test_bilinear_argmax(void) {
  /* [0.9 0.1] [0.2 0.8] -> x = 0,1,2,3 at source 0-0.25 ... : class 0 left half, 1 right half;
   * sx = -0.25, 0.25, 0.75, 1.25: p0 = 0.9, 0.725, 0.375, 0.2 -> ids 0 0 1 1 */
  const float two[4] = {0.9f, 0.1f, 0.2f, 0.8f};
  uint8_t ids[4];
  resize_bilinear_argmax(two, 1, 2, 2, ids, 1, 4);
  CHECK(ids[0] == 0 && ids[1] == 0 && ids[2] == 1 && ids[3] == 1);
  /* random softmax-like maps, up and down, odd sizes, 3 and 5 classes */
  const int cases[][5] = {{8, 8, 3, 37, 53}, {10, 6, 5, 31, 17}, {16, 16, 3, 16, 16}, {12, 20, 4, 5, 7}};
  uint32_t seed = 12345;
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    int ih = cases[t][0], iw = cases[t][1], c = cases[t][2], oh = cases[t][3], ow = cases[t][4];
    float *p = malloc(sizeof(float) * ih * iw * c);
    uint8_t *got = malloc((size_t)oh * ow);
    for (int i = 0; i < ih * iw * c; i++) {
      seed = seed * 1664525u + 1013904223u;
      p[i] = (float)(seed >> 8) / (float)(1 << 24);
    }
    resize_bilinear_argmax(p, ih, iw, c, got, oh, ow);
    int diff = 0, near_tie = 0;
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++) {
        double best = -1, second = -1;
        int arg = 0;
        for (int k = 0; k < c; k++) {
          double v = ref_bilinear(p, ih, iw, c, oh, ow, y, x, k);
          if (v > best) second = best, best = v, arg = k;
          else if (v > second) second = v;
        }
        if (best - second < 1e-5) { near_tie++; continue; } /* float vs double may order a near tie either way */
        diff += got[y * ow + x] != arg;
      }
    CHECK_MSG(diff == 0, "bilinear argmax %dx%dx%d -> %dx%d: %d of %d ids differ (%d near ties skipped)", ih, iw, c, oh,
              ow, diff, oh * ow, near_tie);
    CHECK_MSG(near_tie < oh * ow / 100 + 1, "%d near ties: the check checks little", near_tie);
    free(p);
    free(got);
  }
}

static void print_speed(void) {
  enum { IH = 375, IW = 500, OH = 160, OW = 160, REPS = 200 };
  uint8_t *src = malloc((size_t)IH * IW * 3);
  float *dst = malloc(sizeof(float) * OH * OW * 3);
  for (int i = 0; i < IH * IW * 3; i++) src[i] = (uint8_t)(i * 7);
  double t0 = unet_now();
  for (int r = 0; r < REPS; r++) resize_bilinear_f32(src, IH, IW, 3, dst, OH, OW);
  double t1 = unet_now();
  printf("resize_bilinear_f32 375x500x3 -> 160x160: %.3f ms per image\n", (t1 - t0) * 1e3 / REPS);
  free(src);
  free(dst);
}

int main(void) {
  test_upscale_2x2_to_4x4();
  test_downscale();
  test_thin_and_identity();
  test_nearest();
  test_against_oracle();
  test_bilinear_argmax();
  print_speed();
  CHECK_DONE();
}
