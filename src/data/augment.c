/* augment.c - see augment.h.
 *
 * Geometry. A draw picks a source window of ch x cw pixels (ch = H/z, cw = W/z,
 * z ~ U[1, scale_max]) at a uniform offset (y0, x0), and a flip bit. The
 * destination pixel (x, y) has its centre at source coordinate
 *   u = x0 + (x' + 0.5) * cw / W,  v = y0 + (y + 0.5) * ch / H,   x' = flip ? W-1-x : x
 * (half-pixel centres, as tf.image.resize); the image samples there bilinearly
 * (pixel centres at integer + 0.5, edges clamped), the mask takes the source
 * pixel containing (u, v) (nearest). Both read the same point, so they stay
 * aligned. Without "scale" the window is the whole image and the map is exact
 * identity or mirror.
 *
 * Colour, in this order, on float values, rounded to nearest and clamped:
 *   brightness  p *= b
 *   contrast    p = (p - mean) * c + mean   (mean over the whole image, all channels)
 *   saturation  p = grey + (p - grey) * s   (grey = 0.299 R + 0.587 G + 0.114 B)
 */
#include "unet/augment.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "unet/rng.h"

void augment_defaults(AugmentConfig *a) {
  memset(a, 0, sizeof *a);
  a->scale_max = 1.5f;
  a->brightness = 0.2f;
  a->contrast = 0.2f;
  a->saturation = 0.2f;
}

int augment_enabled(const AugmentConfig *a) { return a->flip || a->scale || a->color; }

int augment_parse(const char *list, AugmentConfig *a, char *err, size_t err_len) {
  a->flip = a->scale = a->color = 0;
  if (!list || !*list) {
    snprintf(err, err_len, "--augment needs a list such as flip,scale,color");
    return -1;
  }
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 4 && !strncmp(p, "flip", 4)) a->flip = 1;
    else if (n == 5 && !strncmp(p, "scale", 5)) a->scale = 1;
    else if (n == 5 && !strncmp(p, "color", 5)) a->color = 1;
    else if (n == 4 && !strncmp(p, "none", 4)) { /* explicit off */ }
    else {
      snprintf(err, err_len, "--augment: unknown transform '%.*s' (known: flip, scale, color, none)", (int)n, p);
      return -1;
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

void augment_describe(const AugmentConfig *a, char *buf, size_t len) {
  snprintf(buf, len, "%s%s%s%s%s", a->flip ? "flip" : "", a->flip && (a->scale || a->color) ? "," : "",
           a->scale ? "scale" : "", a->scale && a->color ? "," : "", a->color ? "color" : "");
  if (!augment_enabled(a)) snprintf(buf, len, "none");
}

/* One generator per (seed, epoch, sample): splitmix-style mixing of the three
 * keys, so neighbouring samples and epochs get unrelated streams. */
static void sample_rng(UnetRng *g, uint64_t seed, int64_t epoch, int64_t sample) {
  uint64_t k = seed * 0x9E3779B97F4A7C15ull;
  k ^= (uint64_t)epoch * 0xC2B2AE3D27D4EB4Full + 0x165667B19E3779F9ull;
  k = (k ^ (k >> 31)) * 0xBF58476D1CE4E5B9ull;
  k ^= (uint64_t)sample * 0x94D049BB133111EBull + 0x27D4EB2F165667C5ull;
  rng_seed(g, k ^ 0x61756775u /* "augu" */);
}

void augment_draw(const AugmentConfig *a, uint64_t seed, int64_t epoch, int64_t sample, int H, int W, AugmentDraw *d) {
  UnetRng g;
  sample_rng(&g, seed, epoch, sample);
  /* always draw every value in the same order, so enabling one transform does
   * not change the draws of another */
  double u_flip = rng_uniform(&g), u_zoom = rng_uniform(&g), u_x = rng_uniform(&g), u_y = rng_uniform(&g);
  double u_b = rng_uniform(&g), u_c = rng_uniform(&g), u_s = rng_uniform(&g);
  d->flip = a->flip && u_flip < 0.5;
  double z = a->scale ? 1.0 + u_zoom * (a->scale_max - 1.0) : 1.0;
  d->cw = W / z;
  d->ch = H / z;
  d->x0 = u_x * (W - d->cw);
  d->y0 = u_y * (H - d->ch);
  d->brightness = a->color ? (float)(1.0 + a->brightness * (2 * u_b - 1)) : 1.0f;
  d->contrast = a->color ? (float)(1.0 + a->contrast * (2 * u_c - 1)) : 1.0f;
  d->saturation = a->color ? (float)(1.0 + a->saturation * (2 * u_s - 1)) : 1.0f;
}

/* One axis of the geometric map: destination index i (already mirrored when
 * flipping) has its centre at source coordinate c = offset + (i + 0.5) * step.
 * The mask takes the pixel containing c; the image interpolates between
 * pixels lo and hi (centres at +0.5, edges clamped) with weight on hi. */
typedef struct {
  int nearest, lo, hi;
  float weight;
} AxisSample;

static AxisSample axis_sample(double offset, double step, int i, int n) {
  double c = offset + (i + 0.5) * step;
  AxisSample a;
  a.nearest = (int)floor(c);
  if (a.nearest > n - 1) a.nearest = n - 1;
  double centre = c - 0.5;
  if (centre < 0) centre = 0;
  a.lo = (int)floor(centre);
  a.hi = a.lo + 1 < n ? a.lo + 1 : n - 1;
  a.weight = (float)(centre - a.lo);
  return a;
}

static inline uint8_t to_u8(float v) {
  v = roundf(v);
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void augment_sample(const AugmentConfig *a, uint64_t seed, int64_t epoch, int64_t sample, const uint8_t *image,
                    const uint8_t *mask, int H, int W, uint8_t *out_image, uint8_t *out_mask) {
  AugmentDraw d;
  augment_draw(a, seed, epoch, sample, H, W, &d);
  size_t pixels = (size_t)H * W;
  if (!a->scale) {
    /* exact copy or mirror: no resampling at all */
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int sx = d.flip ? W - 1 - x : x;
        size_t dst = (size_t)y * W + x, src = (size_t)y * W + sx;
        out_mask[dst] = mask[src];
        memcpy(out_image + 3 * dst, image + 3 * src, 3);
      }
  } else {
    for (int y = 0; y < H; y++) {
      AxisSample sy = axis_sample(d.y0, d.ch / H, y, H);
      for (int x = 0; x < W; x++) {
        AxisSample sx = axis_sample(d.x0, d.cw / W, d.flip ? W - 1 - x : x, W);
        float wx = sx.weight, wy = sy.weight;
        size_t dst = (size_t)y * W + x;
        out_mask[dst] = mask[(size_t)sy.nearest * W + sx.nearest];
        const uint8_t *p00 = image + 3 * ((size_t)sy.lo * W + sx.lo), *p01 = image + 3 * ((size_t)sy.lo * W + sx.hi);
        const uint8_t *p10 = image + 3 * ((size_t)sy.hi * W + sx.lo), *p11 = image + 3 * ((size_t)sy.hi * W + sx.hi);
        for (int c = 0; c < 3; c++) {
          float top = p00[c] + (p01[c] - p00[c]) * wx, bottom = p10[c] + (p11[c] - p10[c]) * wx;
          out_image[3 * dst + c] = to_u8(top + (bottom - top) * wy);
        }
      }
    }
  }
  if (!a->color) return;
  double sum = 0;
  for (size_t i = 0; i < 3 * pixels; i++) sum += out_image[i];
  float mean = (float)(sum / (3.0 * pixels)) * d.brightness;
  for (size_t i = 0; i < pixels; i++) {
    uint8_t *p = out_image + 3 * i;
    float rgb[3];
    for (int c = 0; c < 3; c++) rgb[c] = ((float)p[c] * d.brightness - mean) * d.contrast + mean;
    float grey = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
    for (int c = 0; c < 3; c++) p[c] = to_u8(grey + (rgb[c] - grey) * d.saturation);
  }
}
