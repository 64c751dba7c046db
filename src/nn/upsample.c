/* upsample.c - UpSampling2D(2), nearest: every pixel repeated 2x2. */
#include <string.h>

#include "unet/layers.h"

/* in [N,H,W,C] -> out [N,2H,2W,C] */
void upsample2x_forward(float *out, const float *in, int n, int h, int w, int c) {
  const size_t out_row = (size_t)2 * w * c;
  for (long r = 0; r < (long)n * h; r++) {
    const float *src = in + (size_t)r * w * c;
    float *dst = out + (size_t)r * 2 * out_row; /* output rows 2y and 2y+1 */
    for (int x = 0; x < w; x++) {
      memcpy(dst + (size_t)(2 * x) * c, src + (size_t)x * c, (size_t)c * sizeof(float));
      memcpy(dst + (size_t)(2 * x + 1) * c, src + (size_t)x * c, (size_t)c * sizeof(float));
    }
    memcpy(dst + out_row, dst, out_row * sizeof(float));
  }
}

/* din [N,H,W,C] += sum over each 2x2 block of dout [N,2H,2W,C] */
void upsample2x_backward(float *din, const float *dout, int n, int h, int w, int c, int accumulate) {
  const size_t out_row = (size_t)2 * w * c;
  for (long r = 0; r < (long)n * h; r++) {
    float *restrict dst = din + (size_t)r * w * c;
    const float *restrict top = dout + (size_t)r * 2 * out_row, *restrict bottom = top + out_row;
    for (int x = 0; x < w; x++) {
      const float *t0 = top + (size_t)(2 * x) * c, *t1 = t0 + c;
      const float *b0 = bottom + (size_t)(2 * x) * c, *b1 = b0 + c;
      float *d = dst + (size_t)x * c;
      if (accumulate)
        for (int ch = 0; ch < c; ch++) d[ch] += (t0[ch] + t1[ch]) + (b0[ch] + b1[ch]);
      else /* 0 + keeps the bits of the += onto zeros (a -0 sum becomes +0) */
        for (int ch = 0; ch < c; ch++) d[ch] = 0.0f + ((t0[ch] + t1[ch]) + (b0[ch] + b1[ch]));
    }
  }
}
