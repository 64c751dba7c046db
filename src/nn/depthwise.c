/* depthwise.c - DepthwiseConv2D(3x3, stride 1, 'same', multiplier 1, no
 * bias): out[n,y,x,c] = sum_{i,j} in[n,y+i-1,x+j-1,c] * k[i,j,c].
 *
 * Forward and input gradient go pixel by pixel: the (up to) 9 taps of one
 * output pixel are summed over a vector of channels in registers and stored
 * once, against a load and a store of the output per tap in a tap-by-tap
 * sweep, with the same additions in the same order (so the same bits).
 * The input gradient is the same operation with the kernel flipped (stride 1,
 * symmetric padding: dout's tap (i,j) feeds din's tap (2-i,2-j)).
 * The kernel gradient goes tap by tap: for one tap (i,j) and one row, the
 * valid output pixels and the input pixels they read are each one contiguous
 * span of NHWC memory, so each tap is one long element-wise multiply-add into
 * a per-pixel accumulator row.
 * Scratch (depthwise3x3_workspace_floats), passed in by the caller:
 * [kernel-gradient totals 9C doubles | 9*W*C floats: the per-row
 * kernel-gradient sums of the backward pass].
 */
#include <stdint.h>
#include <string.h>

#include "unet/layers.h"
#include "unet/util.h"
#include "vector_clones.h"

/* Output pixels x whose input x + j - 1 is inside 0..w-1: [x_lo, x_hi). */
static void tap_range(int j, int w, int *x_lo, int *x_hi) {
  *x_lo = j == 0 ? 1 : 0;
  *x_hi = j == 2 ? w - 1 : w;
}

VECTOR_CLONES static void multiply_add(float *restrict acc, const float *restrict a, const float *restrict b,
                                       size_t len) {
  for (size_t e = 0; e < len; e++) acc[e] += a[e] * b[e];
}

size_t depthwise3x3_workspace_floats(int w, int c) { return (size_t)18 * c + (size_t)9 * w * c; }

/* The parts of the caller's scratch: totals [9C] doubles, rows [9][W*C] floats. */
static void split_workspace(float *ws, size_t ws_floats, int w, int c, double **totals, float **rows,
                            const char *who) {
  if (!ws || ws_floats < depthwise3x3_workspace_floats(w, c) || (uintptr_t)ws % sizeof(double))
    unet_fatal("%s: workspace of %zu floats at %p cannot hold the %zu floats for width %d, %d channels (8-byte "
               "aligned)",
               who, ws_floats, (void *)ws, depthwise3x3_workspace_floats(w, c), w, c);
  *totals = (double *)ws;
  *rows = ws + (size_t)18 * c;
}

/* One output pixel, o[0..C) (+)= sum over its NT valid taps of a[t] * k[t]
 * (each [C]), the taps in the order (i, j) = (0,0), (0,1), ..., (2,2): the
 * sum starts at 0 (or the old o) and adds the taps one by one, the same
 * additions in the same order as a tap-by-tap sweep, so the same bits. The
 * tap count is a compile-time constant for the three common cases (interior
 * 9, edge 6, corner 4), so the channel loop keeps the sum in registers. */
#define DEFINE_PIXEL_TAPS(NT)                                                                             \
  VECTOR_CLONES static void pixel_taps_##NT(float *restrict o, const float *const *restrict a,           \
                                            const float *const *restrict k, int c, int accumulate) {     \
    const float *a_[NT], *k_[NT];                                                                         \
    for (int t = 0; t < NT; t++) a_[t] = a[t], k_[t] = k[t];                                              \
    for (int ch = 0; ch < c; ch++) {                                                                      \
      float acc = accumulate ? o[ch] : 0.0f;                                                              \
      _Pragma("GCC unroll 9") for (int t = 0; t < NT; t++) acc += a_[t][ch] * k_[t][ch];                  \
      o[ch] = acc;                                                                                        \
    }                                                                                                     \
  }
DEFINE_PIXEL_TAPS(9)
DEFINE_PIXEL_TAPS(6)
DEFINE_PIXEL_TAPS(4)

/* Any tap count (images 1 or 2 pixels high or wide). */
static void pixel_taps_any(float *o, const float *const *a, const float *const *k, int nt, int c, int accumulate) {
  for (int ch = 0; ch < c; ch++) {
    float acc = accumulate ? o[ch] : 0.0f;
    for (int t = 0; t < nt; t++) acc += a[t][ch] * k[t][ch];
    o[ch] = acc;
  }
}

/* out (+)= depthwise 3x3 of in [N,H,W,C] with kernel [3,3,C] (flip: tap t
 * uses kernel tap 8 - t, the input gradient's kernel). */
static void depthwise_apply(float *out, const float *in, const float *kernel, int n, int h, int w, int c,
                            int accumulate, int flip) {
  const size_t row = (size_t)w * c;
  for (long r = 0; r < (long)n * h; r++) {
    const int y = (int)(r % h);
    const float *image = in + (size_t)(r - y) * row;
    float *orow = out + (size_t)r * row;
    for (int x = 0; x < w; x++) {
      const float *a[9], *k[9];
      int nt = 0;
      for (int i = 0; i < 3; i++) {
        int iy = y + i - 1;
        if (iy < 0 || iy >= h) continue;
        for (int j = 0; j < 3; j++) {
          int ix = x + j - 1;
          if (ix < 0 || ix >= w) continue;
          a[nt] = image + ((size_t)iy * w + ix) * c;
          k[nt] = kernel + (size_t)(flip ? 8 - (i * 3 + j) : i * 3 + j) * c;
          nt++;
        }
      }
      float *o = orow + (size_t)x * c;
      switch (nt) {
        case 9: pixel_taps_9(o, a, k, c, accumulate); break;
        case 6: pixel_taps_6(o, a, k, c, accumulate); break;
        case 4: pixel_taps_4(o, a, k, c, accumulate); break;
        default: pixel_taps_any(o, a, k, nt, c, accumulate);
      }
    }
  }
}

static void check_shape(int n, int h, int w, int c, const char *who) {
  if (n < 0 || h < 1 || w < 1 || c < 1) unet_fatal("%s: invalid shape %dx%dx%dx%d", who, n, h, w, c);
}

void depthwise3x3_forward(float *out, const float *in, const float *kernel, int n, int h, int w, int c, float *ws,
                          size_t ws_floats) {
  check_shape(n, h, w, c, "depthwise3x3_forward");
  double *unused;
  float *rows;
  split_workspace(ws, ws_floats, w, c, &unused, &rows, "depthwise3x3_forward");
  depthwise_apply(out, in, kernel, n, h, w, c, 0, 0);
}

void depthwise3x3_backward(float *din, float *dkernel, const float *dout, const float *in, const float *kernel, int n,
                           int h, int w, int c, float *ws, size_t ws_floats) {
  check_shape(n, h, w, c, "depthwise3x3_backward");
  const size_t row = (size_t)w * c;
  double *total;
  float *rows;
  split_workspace(ws, ws_floats, w, c, &total, &rows, "depthwise3x3_backward");
  if (din) depthwise_apply(din, dout, kernel, n, h, w, c, 1, 1);
  if (!dkernel) return;
  /* Per image, acc[t][x*C + ch] sums dout * (tap t's input) over the rows
   * (float, H terms); the pixels x and the images are then summed in double. */
  float *acc = rows;
  memset(total, 0, (size_t)9 * c * sizeof(double));
  for (int img = 0; img < n; img++) {
    const float *image = in + (size_t)img * h * row, *gimage = dout + (size_t)img * h * row;
    memset(acc, 0, 9 * row * sizeof(float));
    for (int y = 0; y < h; y++)
      for (int i = 0; i < 3; i++) {
        int iy = y + i - 1;
        if (iy < 0 || iy >= h) continue;
        for (int j = 0; j < 3; j++) {
          int x_lo, x_hi;
          tap_range(j, w, &x_lo, &x_hi);
          if (x_hi <= x_lo) continue;
          multiply_add(acc + (size_t)(i * 3 + j) * row + (size_t)x_lo * c, gimage + ((size_t)y * w + x_lo) * c,
                       image + ((size_t)iy * w + x_lo + j - 1) * c, (size_t)(x_hi - x_lo) * c);
        }
      }
    for (int t = 0; t < 9; t++)
      for (int x = 0; x < w; x++)
        for (int ch = 0; ch < c; ch++) total[(size_t)t * c + ch] += acc[(size_t)t * row + (size_t)x * c + ch];
  }
  for (size_t t = 0; t < (size_t)9 * c; t++) dkernel[t] += (float)total[t];
}
