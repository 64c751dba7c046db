/* test_model.c - the whole U-Net: parameter counts of the spec, a
 * finite-difference check of the full backward on a tiny input, Adam against
 * hand-computed Keras values, and overfitting a few images. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "unet/adam.h"
#include "unet/model.h"
#include "unet/rng.h"
#include "unet/util.h"

static void make_batch(float *x, uint8_t *labels, int n, int h, int w, int c, uint64_t seed) {
  UnetRng r;
  rng_seed(&r, seed);
  for (int i = 0; i < n; i++) {
    /* a bright disc (class 0) with a ring (class 2) on a noisy background (class 1) */
    float cy = h * (0.3f + 0.4f * (float)rng_uniform(&r)), cx = w * (0.3f + 0.4f * (float)rng_uniform(&r));
    float rad = h * 0.25f;
    for (int y = 0; y < h; y++)
      for (int xx = 0; xx < w; xx++) {
        float d = sqrtf((y - cy) * (y - cy) + (xx - cx) * (xx - cx));
        int cls = d < rad - 1.5f ? 0 : (d < rad + 1.5f ? 2 : 1);
        if (cls >= c) cls = c - 1;
        size_t p = ((size_t)i * h + y) * w + xx;
        labels[p] = (uint8_t)cls;
        for (int k = 0; k < 3; k++)
          x[p * 3 + k] = (cls == 0 ? 180.0f + 30 * k : 60.0f) + 40.0f * (float)rng_uniform(&r);
      }
  }
}

static void test_param_counts(void) {
  UNet m;
  char err[256];
  CHECK(unet_create(&m, 160, 160, 3, err, sizeof err) == 0);
  CHECK(unet_param_count_total(&m) == 2058979);
  CHECK(m.num_params == 2055203);
  CHECK(m.num_state == 3776);
  /* a few spot checks of names and Keras shapes from the spec table */
  const ModelVar *v = unet_find_var(&m, "conv2d_transpose_3", 0);
  CHECK(v && v->ndim == 4 && v->shape[0] == 3 && v->shape[2] == 128 && v->shape[3] == 128);
  v = unet_find_var(&m, "separable_conv2d_4", 1);
  CHECK(v && v->shape[2] == 128 && v->shape[3] == 256);
  v = unet_find_var(&m, "conv2d_8", 0);
  CHECK(v && v->shape[2] == 32 && v->shape[3] == 3);
  v = unet_find_var(&m, "batch_normalization_14", 3);
  CHECK(v && !v->trainable && v->size == 32);
  CHECK(unet_find_var(&m, "conv2d_9", 0) == NULL);
  unet_destroy(&m);
  CHECK(unet_create(&m, 100, 160, 3, err, sizeof err) != 0 && strstr(err, "multiple of 16"));
}

/* d(mean loss)/d(param) by central differences against the backward pass. */
static void test_model_finite_differences(void) {
  const int n = 2, h = 16, w = 16, c = 3;
  UNet m;
  char err[256];
  CHECK(unet_create(&m, h, w, c, err, sizeof err) == 0);
  unet_init_keras(&m, 7);
  /* non-trivial BN parameters so their gradients are exercised */
  UnetRng r;
  rng_seed(&r, 99);
  for (int i = 0; i < m.num_vars; i++) {
    ModelVar *v = &m.vars[i];
    if (v->role == VAR_GAMMA || v->role == VAR_BETA || v->role == VAR_BIAS) {
      float *p = unet_var_data(&m, v);
      for (size_t j = 0; j < v->size; j++) p[j] += rng_uniform_range(&r, -0.2f, 0.2f);
    }
  }
  float x[2 * 16 * 16 * 3];
  uint8_t labels[2 * 16 * 16];
  make_batch(x, labels, n, h, w, c, 5);
  /* inputs in 0..1 here: with 0..255 a 1e-3 step on an entry kernel weight
   * moves pre-activations by ~0.25 and crosses ReLU/max-pool kinks */
  for (int i = 0; i < n * h * w * 3; i++) x[i] /= 255.0f;
  const float scale = 1.0f / (n * h * w);
  BatchNormReducer none = {0};
  unet_plan(&m, n);
  memset(m.grads, 0, m.num_params * sizeof(float));
  double loss0 = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL) * scale;
  CHECK(isfinite(loss0) && loss0 > 0);
  float *grads = xmalloc(m.num_params * sizeof(float), "grads");
  memcpy(grads, m.grads, m.num_params * sizeof(float));
  /* probe the largest-gradient element of every trainable variable */
  int checked = 0, bad = 0, zero_gradients = 0;
  for (int i = 0; i < m.num_vars; i++) {
    const ModelVar *v = &m.vars[i];
    if (!v->trainable) continue;
    size_t best = 0;
    for (size_t j = 1; j < v->size; j++)
      if (fabsf(grads[v->offset + j]) > fabsf(grads[v->offset + best])) best = j;
    float *p = m.params + v->offset + best;
    float saved = *p, eps = 1e-3f * fmaxf(1.0f, fabsf(saved));
    *p = saved + eps;
    double lp = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL) * scale;
    *p = saved - eps;
    double lm = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL) * scale;
    *p = saved;
    double fd = (lp - lm) / (2.0 * eps), an = grads[v->offset + best];
    checked++;
    /* A bias that feeds a BatchNorm (the next layer in model order) has an
     * exact-zero gradient: the BN removes any shift. Its analytic value is
     * float rounding, its finite difference the loss's float noise over 2*eps
     * (measured up to 3.4e-4), so both must be small. Every other probe is the
     * variable's largest gradient (measured >= 0.05): it must be sizeable and
     * agree within 5% (kinks of ReLU/max-pool), with a noise floor far below
     * 5% of the smallest gradient allowed. */
    int li = 0;
    while (li + 1 < m.num_layers && strcmp(m.layers[li].name, v->layer) != 0) li++;
    int feeds_bn = v->role == VAR_BIAS && li + 1 < m.num_layers &&
                   strncmp(m.layers[li + 1].name, "batch_normalization", 19) == 0;
    int ok = feeds_bn ? fabs(an) <= 2e-5 && fabs(fd) <= 2e-3
                      : fabs(an) >= 1e-2 && fabs(fd - an) <= 2e-4 + 0.05 * fabs(an);
    zero_gradients += feeds_bn;
    if (!ok) {
      bad++;
      fprintf(stderr, "  %s var %d [%zu]%s: analytic %.6g, finite difference %.6g\n", v->layer, v->index, best,
              feeds_bn ? " (feeds a BatchNorm: should be 0)" : "", an, fd);
    }
  }
  printf("model finite differences: %d variables checked (%d with an exact-zero gradient), %d off\n", checked,
         zero_gradients, bad);
  CHECK(checked == 82);        /* every trainable variable */
  CHECK(zero_gradients == 15); /* the biases of the entry conv, 6 separable and 8 transposed convs */
  CHECK(bad == 0);
  xfree(grads);
  unet_destroy(&m);
}

static void test_adam_keras_values(void) {
  /* hand-computed with Keras's formulas (float32): lr 0.1, g = 0.5 then -1 */
  Adam a;
  adam_init(&a, 1, 0.1);
  float w = 1.0f, g = 0.5f;
  adam_step(&a, &w, &g);
  /* t=1: m = 0.05, v = 0.00025, alpha = 0.1*sqrt(0.001)/0.1 = 0.0316228;
   * w = 1 - 0.0316226*0.05/(0.0158114+1e-7) = 0.9000013 (alpha in float32:
   * 0.9f^1 and 0.999f^1 carry float32 rounding, as in Keras) */
  CHECK_CLOSE(w, 0.9000013f, 2e-7, 0);
  g = -1.0f;
  adam_step(&a, &w, &g);
  /* t=2: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975,
   * alpha = 0.1*sqrt(1-0.998001)/(1-0.81) = 0.0235314 (float32 powers),
   * w = 0.9000013 + 0.0235314*0.055/(0.0353518+1e-7) = 0.9366112 */
  CHECK_CLOSE(w, 0.9366112f, 2e-7, 0);
  CHECK(a.iterations == 2);
  adam_free(&a);
}

static void test_overfit(void) {
  const int n = 2, h = 32, w = 32, c = 3;
  UNet m;
  char err[256];
  CHECK(unet_create(&m, h, w, c, err, sizeof err) == 0);
  unet_init_keras(&m, 11);
  static float x[2 * 32 * 32 * 3];
  static uint8_t labels[2 * 32 * 32];
  make_batch(x, labels, n, h, w, c, 3);
  Adam opt;
  adam_init(&opt, m.num_params, 3e-3);
  const float scale = 1.0f / (n * h * w);
  BatchNormReducer none = {0};
  double first = 0, last = 0;
  int steps = 80;
  for (int s = 0; s < steps; s++) {
    memset(m.grads, 0, m.num_params * sizeof(float));
    last = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL) * scale;
    if (s == 0) first = last;
    adam_step(&opt, m.params, m.grads);
  }
  /* training-mode predictions (batch statistics) after the last step */
  memset(m.grads, 0, m.num_params * sizeof(float));
  unet_train_step(&m, x, labels, n, scale, none, NULL, NULL);
  const float *logits = unet_last_logits(&m);
  long right = 0;
  for (long p = 0; p < (long)n * h * w; p++) {
    int best = 0;
    for (int k = 1; k < c; k++)
      if (logits[p * c + k] > logits[p * c + best]) best = k;
    right += best == labels[p];
  }
  double acc = (double)right / (n * h * w);
  printf("overfit: loss %.4f -> %.4f, pixel accuracy %.4f\n", first, last, acc);
  CHECK(last < 0.5 * first);
  CHECK(acc > 0.95);
  adam_free(&opt);
  unet_destroy(&m);
}

int main(void) {
  test_param_counts();
  test_adam_keras_values();
  test_model_finite_differences();
  test_overfit();
  CHECK_DONE();
}
