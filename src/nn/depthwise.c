/* depthwise.c - DepthwiseConv2D(3x3, stride 1, 'same', multiplier 1, no
 * bias): out[n,y,x,c] = sum_{i,j} in[n,y+i-1,x+j-1,c] * k[i,j,c].
 *
 * Direct loops over rows; for every kernel tap the valid output pixels of a
 * row form one range, and the innermost loop runs over channels (contiguous
 * in NHWC and in the (3,3,C,1) kernel), so it vectorizes and needs no
 * per-pixel border tests.
 */
#include <string.h>

#include "unet/layers.h"
#include "unet/util.h"

/* Output pixels x whose input x + j - 1 is inside 0..w-1: [x_lo, x_hi). */
static void tap_range(int j, int w, int *x_lo, int *x_hi) {
  *x_lo = j == 0 ? 1 : 0;
  *x_hi = j == 2 ? w - 1 : w;
}

void depthwise3x3_forward(float *out, const float *in, const float *kernel, int n, int h, int w, int c) {
  if (n < 0 || h < 1 || w < 1 || c < 1) unet_fatal("depthwise3x3_forward: invalid shape %dx%dx%dx%d", n, h, w, c);
  const size_t row = (size_t)w * c;
  for (int img = 0; img < n; img++) {
    const float *image = in + (size_t)img * h * row;
    for (int y = 0; y < h; y++) {
      float *restrict orow = out + ((size_t)img * h + y) * row;
      memset(orow, 0, row * sizeof(float));
      for (int i = 0; i < 3; i++) {
        int iy = y + i - 1;
        if (iy < 0 || iy >= h) continue;
        const float *irow = image + (size_t)iy * row;
        for (int j = 0; j < 3; j++) {
          const float *restrict kv = kernel + (size_t)(i * 3 + j) * c;
          int x_lo, x_hi;
          tap_range(j, w, &x_lo, &x_hi);
          for (int x = x_lo; x < x_hi; x++) {
            float *restrict o = orow + (size_t)x * c;
            const float *restrict src = irow + (size_t)(x + j - 1) * c;
            for (int ch = 0; ch < c; ch++) o[ch] += src[ch] * kv[ch];
          }
        }
      }
    }
  }
}

void depthwise3x3_backward(float *din, float *dkernel, const float *dout, const float *in, const float *kernel, int n,
                           int h, int w, int c) {
  if (n < 0 || h < 1 || w < 1 || c < 1) unet_fatal("depthwise3x3_backward: invalid shape %dx%dx%dx%d", n, h, w, c);
  const size_t row = (size_t)w * c;
  /* Kernel gradient: float partial sums per output row (w terms per tap and
   * channel), gathered in double over the whole batch. */
  float *row_sums = dkernel ? xmalloc((size_t)9 * c * sizeof(float), "depthwise kernel gradient row sums") : NULL;
  double *total = dkernel ? xcalloc((size_t)9 * c, sizeof(double), "depthwise kernel gradient sums") : NULL;
  for (int img = 0; img < n; img++) {
    const float *image = in + (size_t)img * h * row;
    float *dimage = din ? din + (size_t)img * h * row : NULL;
    for (int y = 0; y < h; y++) {
      const float *restrict grow = dout + ((size_t)img * h + y) * row;
      if (row_sums) memset(row_sums, 0, (size_t)9 * c * sizeof(float));
      for (int i = 0; i < 3; i++) {
        int iy = y + i - 1;
        if (iy < 0 || iy >= h) continue;
        for (int j = 0; j < 3; j++) {
          int x_lo, x_hi;
          tap_range(j, w, &x_lo, &x_hi);
          if (dimage) {
            const float *restrict kv = kernel + (size_t)(i * 3 + j) * c;
            float *drow = dimage + (size_t)iy * row;
            for (int x = x_lo; x < x_hi; x++) {
              float *restrict dst = drow + (size_t)(x + j - 1) * c;
              const float *restrict g = grow + (size_t)x * c;
              for (int ch = 0; ch < c; ch++) dst[ch] += g[ch] * kv[ch];
            }
          }
          if (row_sums) {
            float *restrict acc = row_sums + (size_t)(i * 3 + j) * c;
            const float *irow = image + (size_t)iy * row;
            for (int x = x_lo; x < x_hi; x++) {
              const float *restrict src = irow + (size_t)(x + j - 1) * c;
              const float *restrict g = grow + (size_t)x * c;
              for (int ch = 0; ch < c; ch++) acc[ch] += g[ch] * src[ch];
            }
          }
        }
      }
      if (row_sums)
        for (size_t t = 0; t < (size_t)9 * c; t++) total[t] += row_sums[t];
    }
  }
  if (dkernel) {
    for (size_t t = 0; t < (size_t)9 * c; t++) dkernel[t] += (float)total[t];
    xfree(row_sums);
    xfree(total);
  }
}
