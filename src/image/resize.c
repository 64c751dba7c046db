/* resize.c - tf.image.resize (TF2, antialias=False) re-implemented bit for
 * bit in float32:
 *   bilinear = ResizeBilinear(half_pixel_centers=True):
 *     scale  = (float)in_size / out_size
 *     in     = ((float)out + 0.5f) * scale - 0.5f
 *     lower  = max(floor(in), 0), upper = min(ceil(in), in_size - 1)
 *     lerp   = in - floor(in)                (kept even when in < 0)
 *     top    = tl + (tr - tl) * xlerp, bottom = bl + (br - bl) * xlerp
 *     value  = top + (bottom - top) * ylerp
 *   nearest  = ResizeNearestNeighbor(half_pixel_centers=True):
 *     src = max(min((int)floorf(((float)dst + 0.5f) * scale), in - 1), 0)
 * Speed: per-column indices / weights are computed once per call, and the
 * horizontal pass of each source row is cached and reused by the (up to two)
 * output rows that need it. The cached value is the very same float
 * expression (top / bottom above), so results are identical to computing it
 * per output pixel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unet/resize.h"
#include "unet/util.h"

typedef struct {
  int lower, upper; /* source indices */
  float lerp;
} BilinearTap;

/* taps[out_size]: TF's compute_interpolation_weights with HalfPixelScaler. */
static void bilinear_taps(int in_size, int out_size, BilinearTap *taps) {
  const float scale = (float)in_size / (float)out_size;
  for (int i = 0; i < out_size; i++) {
    const float in = ((float)i + 0.5f) * scale - 0.5f;
    const float in_f = floorf(in);
    int lower = (int)in_f, upper = (int)ceilf(in);
    taps[i].lower = lower > 0 ? lower : 0;
    taps[i].upper = upper < in_size - 1 ? upper : in_size - 1;
    taps[i].lerp = in - in_f;
  }
}

/* One source row [iw, c] -> horizontally interpolated row [ow, c]. */
static void horizontal_pass(const uint8_t *src_row, int c, const BilinearTap *xt, int ow, float *dst) {
  if (c == 3) {
    for (int x = 0; x < ow; x++) {
      const uint8_t *l = src_row + 3 * xt[x].lower, *r = src_row + 3 * xt[x].upper;
      const float t = xt[x].lerp;
      for (int k = 0; k < 3; k++) {
        const float fl = (float)l[k];
        dst[3 * x + k] = fl + ((float)r[k] - fl) * t;
      }
    }
    return;
  }
  for (int x = 0; x < ow; x++) {
    const uint8_t *l = src_row + (size_t)c * xt[x].lower, *r = src_row + (size_t)c * xt[x].upper;
    const float t = xt[x].lerp;
    for (int k = 0; k < c; k++) {
      const float fl = (float)l[k];
      dst[(size_t)c * x + k] = fl + ((float)r[k] - fl) * t;
    }
  }
}

/* Calls emit(row index, float row [ow*c]) for every output row. */
typedef void (*RowSink)(void *ctx, int y, const float *row, size_t n);

static void bilinear_rows(const uint8_t *src, int ih, int iw, int c, int oh, int ow, RowSink emit, void *ctx) {
  if (ih <= 0 || iw <= 0 || oh <= 0 || ow <= 0 || c <= 0) return;
  const size_t n = (size_t)ow * (size_t)c;
  const size_t src_stride = (size_t)iw * (size_t)c;
  BilinearTap *xt = xmalloc(sizeof *xt * (size_t)ow, "resize column taps");
  BilinearTap *yt = xmalloc(sizeof *yt * (size_t)oh, "resize row taps");
  float *buf = xmalloc(sizeof(float) * n * 3, "resize row buffers");
  float *cache[2] = {buf, buf + n}; /* horizontally interpolated source rows */
  int cached_row[2] = {-1, -1};
  float *out_row = buf + 2 * n;
  bilinear_taps(iw, ow, xt);
  bilinear_taps(ih, oh, yt);

  for (int y = 0; y < oh; y++) {
    const int lo = yt[y].lower, hi = yt[y].upper;
    int slot_lo = cached_row[0] == lo ? 0 : cached_row[1] == lo ? 1 : -1;
    int slot_hi = cached_row[0] == hi ? 0 : cached_row[1] == hi ? 1 : -1;
    if (slot_lo < 0) { /* fill the slot the upper row is not using */
      slot_lo = slot_hi == 0 ? 1 : 0;
      horizontal_pass(src + (size_t)lo * src_stride, c, xt, ow, cache[slot_lo]);
      cached_row[slot_lo] = lo;
    }
    if (slot_hi < 0) {
      slot_hi = hi == lo ? slot_lo : 1 - slot_lo;
      if (hi != lo) {
        horizontal_pass(src + (size_t)hi * src_stride, c, xt, ow, cache[slot_hi]);
        cached_row[slot_hi] = hi;
      }
    }
    float *rows[2] = {cache[slot_lo], cache[slot_hi]};
    const float *top = rows[0], *bottom = rows[1];
    const float t = yt[y].lerp;
    for (size_t i = 0; i < n; i++) out_row[i] = top[i] + (bottom[i] - top[i]) * t;
    emit(ctx, y, out_row, n);
  }
  xfree(buf);
  xfree(yt);
  xfree(xt);
}

static void sink_f32(void *ctx, int y, const float *row, size_t n) {
  memcpy((float *)ctx + (size_t)y * n, row, n * sizeof(float));
}

static void sink_u8(void *ctx, int y, const float *row, size_t n) {
  uint8_t *dst = (uint8_t *)ctx + (size_t)y * n;
  for (size_t i = 0; i < n; i++) {
    float v = row[i];
    /* round half away from zero (v >= 0 here); the double sum is exact */
    dst[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)floor((double)v + 0.5);
  }
}

void resize_bilinear_f32(const uint8_t *src, int ih, int iw, int c, float *dst, int oh, int ow) {
  bilinear_rows(src, ih, iw, c, oh, ow, sink_f32, dst);
}

void resize_bilinear_u8(const uint8_t *src, int ih, int iw, int c, uint8_t *dst, int oh, int ow) {
  bilinear_rows(src, ih, iw, c, oh, ow, sink_u8, dst);
}

/* TF2 half-pixel nearest source index for every destination index. */
static void nearest_index(int in_size, int out_size, int *idx) {
  const float scale = (float)in_size / (float)out_size;
  for (int i = 0; i < out_size; i++) {
    int s = (int)floorf(((float)i + 0.5f) * scale);
    if (s > in_size - 1) s = in_size - 1;
    if (s < 0) s = 0;
    idx[i] = s;
  }
}

void resize_nearest_u8(const uint8_t *src, int ih, int iw, int c, uint8_t *dst, int oh, int ow) {
  if (ih <= 0 || iw <= 0 || oh <= 0 || ow <= 0 || c <= 0) return;
  int *xi = xmalloc(sizeof(int) * (size_t)ow, "nearest column index");
  int *yi = xmalloc(sizeof(int) * (size_t)oh, "nearest row index");
  nearest_index(iw, ow, xi);
  nearest_index(ih, oh, yi);
  const size_t src_stride = (size_t)iw * (size_t)c, dst_stride = (size_t)ow * (size_t)c;
  for (int y = 0; y < oh; y++) {
    const uint8_t *s = src + (size_t)yi[y] * src_stride;
    uint8_t *d = dst + (size_t)y * dst_stride;
    if (y > 0 && yi[y] == yi[y - 1]) {
      memcpy(d, d - dst_stride, dst_stride); /* same source row as the previous output row */
      continue;
    }
    if (c == 1) {
      for (int x = 0; x < ow; x++) d[x] = s[xi[x]];
    } else {
      for (int x = 0; x < ow; x++) memcpy(d + (size_t)c * x, s + (size_t)c * xi[x], (size_t)c);
    }
  }
  xfree(yi);
  xfree(xi);
}

void resize_bilinear_argmax(const float *probs, int ih, int iw, int c, uint8_t *ids, int oh, int ow) {
  BilinearTap *xt = xmalloc(sizeof *xt * (size_t)ow, "resize taps"), *yt = xmalloc(sizeof *yt * (size_t)oh, "resize taps");
  bilinear_taps(iw, ow, xt);
  bilinear_taps(ih, oh, yt);
  for (int y = 0; y < oh; y++) {
    const float *top = probs + (size_t)yt[y].lower * iw * c, *bot = probs + (size_t)yt[y].upper * iw * c;
    const float ly = yt[y].lerp;
    for (int x = 0; x < ow; x++) {
      const float lx = xt[x].lerp;
      const size_t l = (size_t)xt[x].lower * c, r = (size_t)xt[x].upper * c;
      int best = 0;
      float best_v = 0;
      for (int k = 0; k < c; k++) {
        /* the same float expressions as the image path: rows first, then columns */
        const float t = top[l + k] + (top[r + k] - top[l + k]) * lx;
        const float b = bot[l + k] + (bot[r + k] - bot[l + k]) * lx;
        const float v = t + (b - t) * ly;
        if (k == 0 || v > best_v) best = k, best_v = v;
      }
      ids[(size_t)y * ow + x] = (uint8_t)best;
    }
  }
  xfree(xt);
  xfree(yt);
}
