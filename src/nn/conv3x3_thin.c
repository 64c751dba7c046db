/* conv3x3_thin.c - 3x3 stride-1 'same' Conv2D to at most THIN_MAX_OUT
 * channels, computed directly (conv3x3_thin.h).
 *
 * Why not a GEMM: with cout = 3 the forward GEMM [pixels, 9*cin] x
 * [9*cin, 3] is three columns wide and its im2col or shifted-sum pass moves
 * more bytes than the multiplies cost; the head ran at 23-31 GFLOP/s that
 * way. Channel-last makes each kernel row one contiguous run: output pixel
 * (y,x) sees, in input row y+i-1, the 3*cin floats of pixels x-1..x+1,
 * which meet kernel row i laid out as Kf[i][o][j*cin + c]. So
 *   forward   out[p][o] = sum over 3 rows of a dot of 3*cin contiguous floats,
 *   dkernel   Kf-shaped accumulator[i][o][:] += dout[p][o] * that run,
 *   din       din[q][:] = sum_{i,j,o} dout[q-(i-1,j-1)][o] * Kd[i][j][o][:]
 *             (gathered per input pixel, Kd[i][j][o][c] = K[i][j][c][o]).
 * At the left and right edges the run is the 2 (or 1) pixels inside the
 * image and the matching part of the kernel row; rows outside are skipped.
 * The forward dots keep THIN_LANES partial sums per output channel, summed
 * in lane order at the end; the gradients sum in a fixed order too: the same
 * bits on every instruction set.
 * Workspace: [Kf 9*cin*cout | Kd 9*cin*cout | dKf 9*cin*cout].
 */
#include "conv3x3_thin.h"

#include <string.h>

#include "unet/util.h"
#include "vector_clones.h"

#define THIN_LANES 8

size_t conv3x3_thin_workspace_floats(int cin, int cout) { return (size_t)27 * cin * cout; }

static void check_args(int n, int h, int w, int cin, int cout, size_t ws_floats, const char *who) {
  if (n < 0 || h < 1 || w < 1 || cin < 1 || cout < 1 || cout > THIN_MAX_OUT)
    unet_fatal("%s: invalid shape %dx%dx%dx%d -> %d channels (at most %d)", who, n, h, w, cin, cout, THIN_MAX_OUT);
  if (ws_floats < conv3x3_thin_workspace_floats(cin, cout))
    unet_fatal("%s: workspace of %zu floats is too small for a 3x3 conv %d->%d (needs %zu)", who, ws_floats, cin, cout,
               conv3x3_thin_workspace_floats(cin, cout));
}

/* kf[i][o][j*cin + c] = k[i][j][c][o] */
static void kernel_by_rows(float *restrict kf, const float *restrict k, int cin, int cout) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      for (int c = 0; c < cin; c++)
        for (int o = 0; o < cout; o++)
          kf[((size_t)i * cout + o) * 3 * cin + (size_t)j * cin + c] = k[((size_t)(i * 3 + j) * cin + c) * cout + o];
}

/* kd[i][j][o][c] = k[i][j][c][o] */
static void kernel_by_taps(float *restrict kd, const float *restrict k, int cin, int cout) {
  for (int t = 0; t < 9; t++)
    for (int c = 0; c < cin; c++)
      for (int o = 0; o < cout; o++)
        kd[((size_t)t * cout + o) * cin + c] = k[((size_t)t * cin + c) * cout + o];
}

/* The run of pixel x's window inside a row of width w: pixels [*x0, *x0 +
 * *count) and the kernel column *j0 of the first. */
static inline void window(int x, int w, int *x0, int *count, int *j0) {
  int lo = x > 0 ? x - 1 : 0, hi = x + 1 < w ? x + 1 : w - 1;
  *x0 = lo;
  *count = hi - lo + 1;
  *j0 = lo - (x - 1);
}

/* 8-float vectors (GCC/Clang vector extension): one AVX2 register in the
 * x86-64-v3 clone, two SSE2 registers in the baseline; the same arithmetic
 * lane by lane in both. Loads and stores go through an unaligned, aliasing
 * view of the float arrays (macros: a function returning a vector would
 * change the ABI between the clones). */
typedef float v8f __attribute__((vector_size(THIN_LANES * sizeof(float))));
typedef float v8f_unaligned __attribute__((vector_size(THIN_LANES * sizeof(float)), aligned(4), may_alias));
#define load8(p) (*(const v8f_unaligned *)(p))
#define store8(p, v) (*(v8f_unaligned *)(p) = (v))

/* The forward dot of one output pixel and channel o is split over
 * THIN_CHAINS independent vector sums so that the additions overlap instead of waiting on
 * one another; the chains, then the lanes, are summed in a fixed order. */
#define THIN_CHAINS 4

/* s[o][q] lane l += run[e] * k[o*kstride + e] over e = 8*(q + 4m) + l,
 * then the vectors past whole groups of 4 and the floats past whole vectors
 * in chain 0. */
static inline __attribute__((always_inline)) void dot_lanes(v8f s[THIN_MAX_OUT][THIN_CHAINS],
                                                            const float *restrict run, const float *restrict k,
                                                            int len, size_t kstride, int cout) {
  int e = 0;
  for (; e + THIN_CHAINS * THIN_LANES <= len; e += THIN_CHAINS * THIN_LANES) {
    const v8f x0 = load8(run + e), x1 = load8(run + e + 8), x2 = load8(run + e + 16), x3 = load8(run + e + 24);
    for (int o = 0; o < cout; o++) {
      const float *ko = k + o * kstride + e;
      s[o][0] += x0 * load8(ko), s[o][1] += x1 * load8(ko + 8);
      s[o][2] += x2 * load8(ko + 16), s[o][3] += x3 * load8(ko + 24);
    }
  }
  for (; e + THIN_LANES <= len; e += THIN_LANES) {
    const v8f x = load8(run + e);
    for (int o = 0; o < cout; o++) s[o][0] += x * load8(k + o * kstride + e);
  }
  for (int l = 0; e + l < len; l++)
    for (int o = 0; o < cout; o++) s[o][0][l] += run[e + l] * k[o * kstride + e + l];
}

/* One output row; cout is a constant at each call site (forward_rows), so
 * the partial sums stay in registers. */
static inline __attribute__((always_inline)) void forward_row(float *restrict out, const float *restrict in,
                                                              const float *restrict kf, const float *bias, int h,
                                                              int w, int cin, int cout, int accumulate, int img,
                                                              int y) {
  const size_t run_stride = (size_t)3 * cin;
  for (int x = 0; x < w; x++) {
    v8f s[THIN_MAX_OUT][THIN_CHAINS];
    for (int o = 0; o < cout; o++)
      for (int q = 0; q < THIN_CHAINS; q++) s[o][q] = (v8f){0};
    int x0, count, j0;
    window(x, w, &x0, &count, &j0);
    for (int i = 0; i < 3; i++) {
      int yy = y + i - 1;
      if (yy < 0 || yy >= h) continue;
      dot_lanes(s, in + (((size_t)img * h + yy) * w + x0) * cin,
                kf + (size_t)i * cout * run_stride + (size_t)j0 * cin, count * cin, run_stride, cout);
    }
    float *o_px = out + (((size_t)img * h + y) * w + x) * cout;
    for (int o = 0; o < cout; o++) {
      v8f t = (s[o][0] + s[o][1]) + (s[o][2] + s[o][3]);
      float sum = 0.0f;
      for (int l = 0; l < THIN_LANES; l++) sum += t[l];
      float base = accumulate ? o_px[o] : 0.0f;
      o_px[o] = base + (bias ? bias[o] : 0.0f) + sum;
    }
  }
}

VECTOR_CLONES static void forward_rows(float *out, const float *in, const float *kf, const float *bias, int n, int h,
                                       int w, int cin, int cout, int accumulate) {
  for (int img = 0; img < n; img++)
    for (int y = 0; y < h; y++) switch (cout) {
      case 1: forward_row(out, in, kf, bias, h, w, cin, 1, accumulate, img, y); break;
      case 2: forward_row(out, in, kf, bias, h, w, cin, 2, accumulate, img, y); break;
      case 3: forward_row(out, in, kf, bias, h, w, cin, 3, accumulate, img, y); break;
      default: forward_row(out, in, kf, bias, h, w, cin, 4, accumulate, img, y); break;
      }
}

void conv3x3_thin_forward(float *out, const float *in, const float *kernel, const float *bias, int n, int h, int w,
                          int cin, int cout, int accumulate, float *ws, size_t ws_floats) {
  check_args(n, h, w, cin, cout, ws_floats, "conv3x3_thin_forward");
  if (n == 0) return;
  kernel_by_rows(ws, kernel, cin, cout);
  forward_rows(out, in, ws, bias, n, h, w, cin, cout, accumulate);
}

/* Kernel gradient of one image: for output row y, input row i and output
 * channel o, dkf[i][o][e] += sum over x of run_x[e] * dout[y][x][o], where
 * run_x is the 3*cin floats of pixels x-1..x+1. The interior pixels
 * (1 <= x <= w-2, full runs) sum in 4-vector blocks held in registers across
 * the row; the edge pixels and the tail of a run past whole vectors go
 * straight to memory. */
#define THIN_BLOCK (4 * THIN_LANES)
VECTOR_CLONES static void kernel_grad_image(float *restrict dkf, const float *restrict dout, const float *restrict in,
                                            int h, int w, int cin, int cout) {
  const size_t run_stride = (size_t)3 * cin;
  const int run = 3 * cin, whole = run / THIN_BLOCK * THIN_BLOCK;
  for (int y = 0; y < h; y++)
    for (int i = 0; i < 3; i++) {
      int yy = y + i - 1;
      if (yy < 0 || yy >= h) continue;
      const float *row = in + (size_t)yy * w * cin, *drow = dout + (size_t)y * w * cout;
      for (int o = 0; o < cout; o++) {
        float *acc = dkf + ((size_t)i * cout + o) * run_stride;
        for (int e0 = 0; e0 < whole; e0 += THIN_BLOCK) {
          v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
          for (int x = 1; x < w - 1; x++) {
            const float *r = row + (size_t)(x - 1) * cin + e0;
            const float dv = drow[(size_t)x * cout + o];
            a0 += load8(r) * dv, a1 += load8(r + 8) * dv, a2 += load8(r + 16) * dv, a3 += load8(r + 24) * dv;
          }
          store8(acc + e0, load8(acc + e0) + a0);
          store8(acc + e0 + 8, load8(acc + e0 + 8) + a1);
          store8(acc + e0 + 16, load8(acc + e0 + 16) + a2);
          store8(acc + e0 + 24, load8(acc + e0 + 24) + a3);
        }
        for (int x = 1; x < w - 1; x++) { /* the tail of full runs */
          const float *r = row + (size_t)(x - 1) * cin;
          const float dv = drow[(size_t)x * cout + o];
          for (int e = whole; e < run; e++) acc[e] += r[e] * dv;
        }
        for (int x = 0; x < w; x += w - 1 > 0 ? w - 1 : 1) { /* edge pixels: partial runs */
          int x0, count, j0;
          window(x, w, &x0, &count, &j0);
          const float *r = row + (size_t)x0 * cin;
          float *a = acc + (size_t)j0 * cin;
          const float dv = drow[(size_t)x * cout + o];
          for (int e = 0; e < count * cin; e++) a[e] += r[e] * dv;
        }
      }
    }
}

/* din of one image += the gather over the (up to) 9 output pixels each
 * input pixel feeds: din[q][c] += sum_{i,j,o} dout[q-(i-1,j-1)][o] kd[i][j][o][c],
 * 32 channels at a time in registers. The valid taps are listed once per
 * pixel, in (i, j) order, and serve the 32-channel blocks and the tail. */
static inline __attribute__((always_inline)) void input_grad_pixel(float *restrict dst, const float *restrict dout,
                                                                   const float *restrict kd, int h, int w, int cin,
                                                                   int cout, int accumulate, int y, int x) {
  const float *tap_dout[9]; /* dout pixel of each valid tap */
  const float *tap_kernel[9]; /* kd[i][j] of that tap */
  int taps = 0;
  for (int i = 0; i < 3; i++) {
    int r = y - i + 1;
    if (r < 0 || r >= h) continue;
    for (int j = 0; j < 3; j++) {
      int px = x - j + 1;
      if (px < 0 || px >= w) continue;
      tap_dout[taps] = dout + ((size_t)r * w + px) * cout;
      tap_kernel[taps++] = kd + (size_t)(i * 3 + j) * cout * cin;
    }
  }
  int c0 = 0;
  for (; c0 + THIN_BLOCK <= cin; c0 += THIN_BLOCK) {
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int t = 0; t < taps; t++)
      for (int o = 0; o < cout; o++) {
        const float dv = tap_dout[t][o], *ko = tap_kernel[t] + (size_t)o * cin + c0;
        a0 += load8(ko) * dv, a1 += load8(ko + 8) * dv, a2 += load8(ko + 16) * dv, a3 += load8(ko + 24) * dv;
      }
    if (accumulate) {
      store8(dst + c0, load8(dst + c0) + a0);
      store8(dst + c0 + 8, load8(dst + c0 + 8) + a1);
      store8(dst + c0 + 16, load8(dst + c0 + 16) + a2);
      store8(dst + c0 + 24, load8(dst + c0 + 24) + a3);
    } else { /* 0 + keeps the bits of += onto zeros */
      store8(dst + c0, 0.0f + a0);
      store8(dst + c0 + 8, 0.0f + a1);
      store8(dst + c0 + 16, 0.0f + a2);
      store8(dst + c0 + 24, 0.0f + a3);
    }
  }
  for (int c = c0; c < cin; c++) { /* channels past whole 32-channel blocks */
    float acc = 0.0f;
    for (int t = 0; t < taps; t++)
      for (int o = 0; o < cout; o++) acc += tap_dout[t][o] * tap_kernel[t][(size_t)o * cin + c];
    dst[c] = (accumulate ? dst[c] : 0.0f) + acc;
  }
}

VECTOR_CLONES static void input_grad_image(float *restrict din, const float *restrict dout, const float *restrict kd,
                                           int h, int w, int cin, int cout, int accumulate) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) switch (cout) {
      case 1: input_grad_pixel(din + ((size_t)y * w + x) * cin, dout, kd, h, w, cin, 1, accumulate, y, x); break;
      case 2: input_grad_pixel(din + ((size_t)y * w + x) * cin, dout, kd, h, w, cin, 2, accumulate, y, x); break;
      case 3: input_grad_pixel(din + ((size_t)y * w + x) * cin, dout, kd, h, w, cin, 3, accumulate, y, x); break;
      default: input_grad_pixel(din + ((size_t)y * w + x) * cin, dout, kd, h, w, cin, 4, accumulate, y, x); break;
      }
}

void conv3x3_thin_backward(float *din, float *dkernel, const float *dout, const float *in, const float *kernel, int n,
                           int h, int w, int cin, int cout, int accumulate, float *ws, size_t ws_floats) {
  check_args(n, h, w, cin, cout, ws_floats, "conv3x3_thin_backward");
  if (n == 0 || (!din && !dkernel)) return;
  const size_t kfloats = (size_t)9 * cin * cout, image_in = (size_t)h * w * cin, image_out = (size_t)h * w * cout;
  float *kd = ws + kfloats, *dkf = ws + 2 * kfloats;
  if (din) {
    kernel_by_taps(kd, kernel, cin, cout);
    for (int img = 0; img < n; img++)
      input_grad_image(din + img * image_in, dout + img * image_out, kd, h, w, cin, cout, accumulate);
  }
  if (dkernel) {
    memset(dkf, 0, kfloats * sizeof(float));
    for (int img = 0; img < n; img++) kernel_grad_image(dkf, dout + img * image_out, in + img * image_in, h, w, cin, cout);
    for (int i = 0; i < 3; i++)
      for (int o = 0; o < cout; o++)
        for (int j = 0; j < 3; j++)
          for (int c = 0; c < cin; c++)
            dkernel[((size_t)(i * 3 + j) * cin + c) * cout + o] +=
                dkf[((size_t)i * cout + o) * 3 * cin + (size_t)j * cin + c];
  }
}
