/* pool.c - MaxPooling2D(3, stride 2, 'same'), TensorFlow padding.
 *
 * Padding (pad_before = 0 on even sizes, 1 on odd ones; the rest after) is
 * never a candidate: only window cells inside the image compete, so it acts
 * as -inf. Ties keep the first cell in row-major window order. The winner's
 * index y*W + x in the image plane is saved per output value for backward.
 */
#include "unet/layers.h"
#include "unet/util.h"

void maxpool3s2_forward(float *out, int32_t *argmax, const float *in, int n, int h, int w, int c) {
  if (n < 0 || h < 1 || w < 1 || c < 1) unet_fatal("maxpool3s2_forward: invalid shape %dx%dx%dx%d", n, h, w, c);
  const int oh = same_out_size(h, 2), ow = same_out_size(w, 2);
  const int pt = same_pad_before(h, 3, 2), pl = same_pad_before(w, 3, 2);
  for (int img = 0; img < n; img++) {
    const float *image = in + (size_t)img * h * w * c;
    for (int oy = 0; oy < oh; oy++) {
      int y_lo = oy * 2 - pt, y_hi = y_lo + 3;
      if (y_lo < 0) y_lo = 0;
      if (y_hi > h) y_hi = h;
      for (int ox = 0; ox < ow; ox++) {
        int x_lo = ox * 2 - pl, x_hi = x_lo + 3;
        if (x_lo < 0) x_lo = 0;
        if (x_hi > w) x_hi = w;
        size_t o = (((size_t)img * oh + oy) * ow + ox) * c;
        float *restrict best = out + o;
        int32_t *restrict arg = argmax + o;
        /* The first valid cell seeds the maximum; every window has one. */
        int32_t first = (int32_t)(y_lo * w + x_lo);
        const float *src = image + (size_t)first * c;
        for (int ch = 0; ch < c; ch++) {
          best[ch] = src[ch];
          arg[ch] = first;
        }
        for (int y = y_lo; y < y_hi; y++)
          for (int x = x_lo; x < x_hi; x++) {
            int32_t idx = (int32_t)(y * w + x);
            if (idx == first) continue;
            const float *restrict v = image + (size_t)idx * c;
            for (int ch = 0; ch < c; ch++) { /* branch-free bit masks, so it vectorizes */
              float value = v[ch], old = best[ch];
              int32_t win = -(int32_t)(value > old);
              best[ch] = value > old ? value : old;
              arg[ch] = (idx & win) | (arg[ch] & ~win);
            }
          }
      }
    }
  }
}

void maxpool3s2_backward(float *din, const float *dout, const int32_t *argmax, int n, int h, int w, int c) {
  const int oh = same_out_size(h, 2), ow = same_out_size(w, 2);
  const size_t plane = (size_t)oh * ow;
  for (int img = 0; img < n; img++) {
    float *dimage = din + (size_t)img * h * w * c;
    const float *g = dout + (size_t)img * plane * c;
    const int32_t *arg = argmax + (size_t)img * plane * c;
    for (size_t p = 0; p < plane; p++, g += c, arg += c)
      for (int ch = 0; ch < c; ch++) dimage[(size_t)arg[ch] * c + ch] += g[ch];
  }
}
