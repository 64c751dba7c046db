/* test_ignore_model.c - the whole U-Net's training step with users' own data:
 * a pixel labelled with the ignore id changes neither the loss nor any
 * gradient. On a 2-image 32x32 batch with a void border and a void blob:
 *  - the ignored pixels' labels flipped to a class whose weight is 0 (and that
 *    occurs nowhere else) give the same loss and every gradient element equal,
 *    through the whole backward pass (two independent ways of leaving a pixel out);
 *  - the check has teeth: the same pixels counted (as class 0) change the loss
 *    and most gradient elements. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "unet/model.h"
#include "unet/rng.h"
#include "unet/util.h"

enum { N = 2, H = 32, W = 32, C = 3 };

static double step(UNet *m, const float *x, const uint8_t *labels, const LossSpec *spec, float scale, float *grads_out) {
  m->loss = *spec;
  memset(m->grads, 0, m->num_params * sizeof(float));
  double loss = unet_train_step(m, x, labels, N, scale, (BatchNormReducer){0}, NULL, NULL);
  memcpy(grads_out, m->grads, m->num_params * sizeof(float));
  return loss;
}

int main(void) {
  UNet m;
  char err[256];
  CHECK(unet_create(&m, H, W, C, err, sizeof err) == 0);
  unet_init_keras(&m, 11);
  unet_plan(&m, N);
  float *state0 = xmalloc(m.num_state * sizeof(float), "state");
  memcpy(state0, m.state, m.num_state * sizeof(float));
  size_t px = (size_t)N * H * W;
  float *x = xmalloc(px * 3 * sizeof(float), "x");
  uint8_t *ignored = xmalloc(px, "labels"), *weighted0 = xmalloc(px, "labels"), *counted = xmalloc(px, "labels");
  UnetRng r;
  rng_seed(&r, 5);
  long nignored = 0;
  for (size_t p = 0; p < px; p++) {
    for (int k = 0; k < 3; k++) x[p * 3 + k] = (float)(255 * rng_uniform(&r));
    int y = (int)((p / W) % H), xx = (int)(p % W);
    uint8_t cls = (uint8_t)((xx + y) % 7 < 3 ? 0 : 1); /* classes 0 and 1 only */
    int void_px = xx < 4 || (y > 20 && xx > 25);        /* a void border and a blob */
    ignored[p] = void_px ? 255 : cls;
    weighted0[p] = void_px ? 2 : cls; /* class 2: weight 0, nowhere else */
    counted[p] = void_px ? 0 : cls;
    nignored += void_px;
  }
  float *g1 = xmalloc(m.num_params * sizeof(float), "g"), *g2 = xmalloc(m.num_params * sizeof(float), "g"),
        *g3 = xmalloc(m.num_params * sizeof(float), "g");
  const LossSpec ignore = {NULL, 255};
  const float w[C] = {1, 1, 0};
  const LossSpec zero_weight = {w, -1};
  const LossSpec plain = LOSS_SPEC_PLAIN;
  double count = loss_weight_sum(ignored, (long)px, &ignore);
  CHECK(count == (double)(px - nignored) && loss_weight_sum(weighted0, (long)px, &zero_weight) == count);
  const float scale = (float)(1.0 / count);
  double l1 = step(&m, x, ignored, &ignore, scale, g1);
  memcpy(m.state, state0, m.num_state * sizeof(float)); /* the step moved the BN statistics: start alike */
  double l2 = step(&m, x, weighted0, &zero_weight, scale, g2);
  memcpy(m.state, state0, m.num_state * sizeof(float));
  double l3 = step(&m, x, counted, &plain, scale, g3);
  CHECK_MSG(l1 == l2, "loss with ignored pixels %.17g, with zero-weight labels there %.17g", l1, l2);
  size_t diff = 0, diff3 = 0;
  for (size_t i = 0; i < m.num_params; i++) {
    diff += g1[i] != g2[i]; /* == : +0 and -0 are the same gradient */
    diff3 += g1[i] != g3[i];
  }
  CHECK_MSG(diff == 0, "%zu of %zu gradient elements differ between ignoring and a zero weight", diff, m.num_params);
  /* teeth: the same pixels counted as class 0 change the loss and most gradients */
  CHECK_MSG(l3 > l1 + 1, "counting the %ld void pixels changed the loss only from %g to %g", nignored, l1, l3);
  CHECK_MSG(diff3 > m.num_params / 2, "counting them changed only %zu gradient elements", diff3);
  printf("%ld of %zu pixels ignored: loss sum %.6f (mean %.6f), counted as class 0: %.6f; all %zu gradients equal\n",
         nignored, px, l1, l1 / count, l3, m.num_params);
  xfree(x); xfree(ignored); xfree(weighted0); xfree(counted); xfree(g1); xfree(g2); xfree(g3); xfree(state0);
  unet_destroy(&m);
  CHECK_DONE();
}
