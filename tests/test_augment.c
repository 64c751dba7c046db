/* test_augment.c - the augmentation (src/data/augment.c) and the learning-rate
 * schedules (src/train/lr_schedule.c) against hand-computed values.
 *  - flip alone is an exact mirror of image and mask; off is an exact copy;
 *  - scale/crop keeps image and mask aligned: the image is a linear ramp
 *    (R = 4x + 2, G = 4y + 2 at pixel centres), which bilinear sampling
 *    reproduces exactly, so each output pixel's colour tells where it was
 *    sampled, and the mask (the source pixel's own x, y bits) must be the
 *    label of that point;
 *  - colour jitter changes the image only, by the documented formula;
 *  - the transform is a pure function of (seed, epoch, sample);
 *  - lr_at_step at warm-up, mid and end of constant, cosine and step. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "unet/augment.h"
#include "unet/lr_schedule.h"

enum { H = 48, W = 56 };

static void ramp(uint8_t *img, uint8_t *mask) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t *p = img + 3 * (y * W + x);
      p[0] = (uint8_t)(4 * x + 2);
      p[1] = (uint8_t)(4 * y + 2);
      p[2] = 77;
      mask[y * W + x] = (uint8_t)((x / 8) % 2 + 2 * ((y / 8) % 2)); /* 8x8 checkerboard of 4 classes */
    }
}

static int p_blue_constant(const uint8_t *img) {
  for (int i = 0; i < H * W; i++)
    if (img[3 * i + 2] != 77) return 0;
  return 1;
}

static void test_flip_and_copy(void) {
  static uint8_t img[H * W * 3], mask[H * W], out[H * W * 3], om[H * W];
  ramp(img, mask);
  AugmentConfig a;
  augment_defaults(&a);
  augment_sample(&a, 1, 0, 5, img, mask, H, W, out, om);
  CHECK(memcmp(out, img, sizeof img) == 0 && memcmp(om, mask, sizeof mask) == 0);
  a.flip = 1;
  int flipped = 0, kept = 0;
  for (int s = 0; s < 40; s++) {
    AugmentDraw d;
    augment_draw(&a, 1, 0, s, H, W, &d);
    augment_sample(&a, 1, 0, s, img, mask, H, W, out, om);
    int ok = 1;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int sx = d.flip ? W - 1 - x : x;
        ok &= om[y * W + x] == mask[y * W + sx] && !memcmp(out + 3 * (y * W + x), img + 3 * (y * W + sx), 3);
      }
    CHECK_MSG(ok, "sample %d: flip=%d is not an exact %s", s, d.flip, d.flip ? "mirror" : "copy");
    flipped += d.flip;
    kept += !d.flip;
  }
  CHECK_MSG(flipped >= 10 && kept >= 10, "40 samples: %d flipped, %d kept", flipped, kept);
}

static void test_scale_alignment(void) {
  static uint8_t img[H * W * 3], mask[H * W], out[H * W * 3], om[H * W];
  ramp(img, mask);
  AugmentConfig a;
  augment_defaults(&a);
  a.flip = a.scale = 1;
  long checked = 0, aligned = 0;
  double max_zoom = 1;
  for (int s = 0; s < 30; s++) {
    AugmentDraw d;
    augment_draw(&a, 9, 3, s, H, W, &d);
    augment_sample(&a, 9, 3, s, img, mask, H, W, out, om);
    max_zoom = fmax(max_zoom, W / d.cw);
    CHECK(d.cw <= W && d.cw >= W / 1.5 - 1e-9 && d.x0 >= 0 && d.x0 + d.cw <= W + 1e-9);
    CHECK(fabs(d.ch / H - d.cw / W) < 1e-12); /* same zoom both ways: the aspect ratio is kept */
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        const uint8_t *p = out + 3 * (y * W + x);
        /* where the image says it was sampled (pixel coordinates, centres at +0.5) */
        double u = (p[0] - 2) / 4.0 + 0.5, v = (p[1] - 2) / 4.0 + 0.5;
        /* and where the documented map says */
        int xs = d.flip ? W - 1 - x : x;
        double u_map = d.x0 + (xs + 0.5) * d.cw / W, v_map = d.y0 + (y + 0.5) * d.ch / H;
        CHECK_MSG(fabs(u - u_map) <= 0.13 + (u_map < 0.5 || u_map > W - 0.5) &&
                      fabs(v - v_map) <= 0.13 + (v_map < 0.5 || v_map > H - 0.5),
                  "sample %d pixel (%d,%d): image sampled at (%.2f,%.2f), map says (%.2f,%.2f)", s, x, y, u, v, u_map,
                  v_map);
        /* the mask label of the point the image was sampled at, away from cell edges */
        double fu = fmod(u, 8), fv = fmod(v, 8);
        if (fu < 0.3 || fu > 7.7 || fv < 0.3 || fv > 7.7) continue;
        int label = ((int)(u / 8)) % 2 + 2 * (((int)(v / 8)) % 2);
        checked++;
        aligned += om[y * W + x] == label;
      }
    CHECK(p_blue_constant(out));
  }
  CHECK_MSG(checked > 30 * H * W / 2 && aligned == checked, "mask aligned with image at %ld of %ld pixels", aligned,
            checked);
  CHECK_MSG(max_zoom > 1.3, "zoom reached only %.3f in 30 draws", max_zoom);
}

static void test_color(void) {
  static uint8_t img[H * W * 3], mask[H * W], out[H * W * 3], om[H * W];
  ramp(img, mask);
  AugmentConfig a;
  augment_defaults(&a);
  a.color = 1;
  AugmentDraw d;
  augment_draw(&a, 4, 2, 11, H, W, &d);
  augment_sample(&a, 4, 2, 11, img, mask, H, W, out, om);
  CHECK(memcmp(om, mask, sizeof mask) == 0);
  CHECK(d.brightness >= 0.8f && d.brightness <= 1.2f && d.contrast >= 0.8f && d.contrast <= 1.2f &&
        d.saturation >= 0.8f && d.saturation <= 1.2f && (d.brightness != 1 || d.contrast != 1));
  /* the documented formula, in double */
  double sum = 0;
  for (int i = 0; i < H * W * 3; i++) sum += img[i];
  double mean = sum / (H * W * 3) * d.brightness;
  int worst = 0;
  for (int i = 0; i < H * W; i++) {
    double rgb[3];
    for (int c = 0; c < 3; c++) rgb[c] = (img[3 * i + c] * (double)d.brightness - mean) * d.contrast + mean;
    double grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    for (int c = 0; c < 3; c++) {
      double want = fmin(255, fmax(0, round(grey + (rgb[c] - grey) * d.saturation)));
      int diff = abs((int)want - out[3 * i + c]);
      if (diff > worst) worst = diff;
    }
  }
  CHECK_MSG(worst <= 1, "colour jitter differs from the formula by %d", worst); /* float vs double rounding */
}

static void test_pure_function(void) {
  static uint8_t img[H * W * 3], mask[H * W], o1[H * W * 3], m1[H * W], o2[H * W * 3], m2[H * W];
  ramp(img, mask);
  AugmentConfig a;
  char err[128];
  augment_defaults(&a);
  CHECK(augment_parse("flip,scale,color", &a, err, sizeof err) == 0 && a.flip && a.scale && a.color);
  CHECK(augment_parse("flip,blur", &a, err, sizeof err) != 0 && strstr(err, "blur"));
  CHECK(augment_parse("flip,scale,color", &a, err, sizeof err) == 0);
  augment_sample(&a, 1337, 4, 17, img, mask, H, W, o1, m1);
  augment_sample(&a, 1337, 4, 17, img, mask, H, W, o2, m2);
  CHECK(!memcmp(o1, o2, sizeof o1) && !memcmp(m1, m2, sizeof m1));
  int differ = 0;
  int64_t keys[3][3] = {{1338, 4, 17}, {1337, 5, 17}, {1337, 4, 18}};
  for (int k = 0; k < 3; k++) {
    augment_sample(&a, (uint64_t)keys[k][0], keys[k][1], keys[k][2], img, mask, H, W, o2, m2);
    differ += memcmp(o1, o2, sizeof o1) != 0;
  }
  CHECK_MSG(differ == 3, "changing seed, epoch or sample changed the transform %d of 3 times", differ);
}

static void test_lr_schedule(void) {
  /* 100 steps, 10 of warm-up, base 1e-3 */
  LrSchedule c = {LR_CONSTANT, 1e-3, 0, 100, 0.1};
  CHECK(lr_at_step(&c, 0) == 1e-3 && lr_at_step(&c, 99) == 1e-3); /* exact: the Keras recipe */
  c.warmup_steps = 10;
  CHECK_CLOSE(lr_at_step(&c, 0), 1e-4, 1e-15, 0);
  CHECK_CLOSE(lr_at_step(&c, 4), 5e-4, 1e-15, 0);
  CHECK_CLOSE(lr_at_step(&c, 9), 1e-3, 1e-15, 0);
  CHECK_CLOSE(lr_at_step(&c, 50), 1e-3, 1e-15, 0);
  LrSchedule cos_s = {LR_COSINE, 1e-3, 10, 100, 0.1};
  CHECK_CLOSE(lr_at_step(&cos_s, 9), 1e-3, 1e-15, 0);
  CHECK_CLOSE(lr_at_step(&cos_s, 10), 1e-3, 1e-15, 0);        /* cos(0) */
  CHECK_CLOSE(lr_at_step(&cos_s, 55), 5e-4, 1e-15, 0);        /* half way: cos(pi/2) */
  CHECK_CLOSE(lr_at_step(&cos_s, 40), 1e-3 * 0.75, 1e-15, 0); /* 0.5 (1 + cos(pi/3)) */
  CHECK_CLOSE(lr_at_step(&cos_s, 99), 1e-3 * 0.5 * (1 + cos(3.14159265358979 * 89 / 90)), 1e-15, 0);
  CHECK_CLOSE(lr_at_step(&cos_s, 100), 0, 1e-18, 0);
  LrSchedule st = {LR_STEP, 1e-3, 0, 100, 0.1};
  CHECK_CLOSE(lr_at_step(&st, 49), 1e-3, 1e-15, 0);
  CHECK_CLOSE(lr_at_step(&st, 50), 1e-4, 1e-16, 0);
  CHECK_CLOSE(lr_at_step(&st, 74), 1e-4, 1e-16, 0);
  CHECK_CLOSE(lr_at_step(&st, 75), 1e-5, 1e-17, 0);
  LrScheduleKind k;
  CHECK(lr_schedule_parse("cosine", &k) == 0 && k == LR_COSINE && lr_schedule_parse("linear", &k) != 0);
}

int main(void) {
  test_flip_and_copy();
  test_scale_alignment();
  test_color();
  test_pure_function();
  test_lr_schedule();
  CHECK_DONE();
}
