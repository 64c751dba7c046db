/* adam.c - Keras's Adam; see adam.h */
#include "unet/adam.h"

#include <math.h>
#include <string.h>

#include "unet/util.h"

void adam_init(Adam *a, size_t count, double lr) {
  memset(a, 0, sizeof *a);
  a->lr = lr;
  a->beta1 = 0.9;
  a->beta2 = 0.999;
  a->epsilon = 1e-7;
  a->count = count;
  a->moments = xcalloc(2 * count, sizeof(float), "Adam moments");
  a->m = a->moments;
  a->v = a->moments + count;
}

void adam_free(Adam *a) {
  xfree(a->moments);
  a->moments = a->m = a->v = NULL;
}

void adam_step(Adam *a, float *params, const float *grads) {
  a->iterations++;
  /* Keras (keras/src/optimizers/adam.py) in float32: local_step = iterations + 1,
   * beta_power = float32(beta) ** local_step, alpha = lr * sqrt(1 - b2^t) / (1 - b1^t);
   * the (1 - beta) factors are computed in Python (double) and then cast. */
  float t = (float)a->iterations;
  float b1_power = powf((float)a->beta1, t), b2_power = powf((float)a->beta2, t);
  float alpha = (float)a->lr * sqrtf(1.0f - b2_power) / (1.0f - b1_power);
  float one_b1 = (float)(1.0 - a->beta1), one_b2 = (float)(1.0 - a->beta2), eps = (float)a->epsilon;
  float *m = a->m, *v = a->v;
  size_t n = a->count;
  for (size_t i = 0; i < n; i++) {
    float g = grads[i];
    /* Keras: m.assign_add((g - m) * (1 - b1)); v.assign_add((g^2 - v) * (1 - b2)) */
    m[i] += (g - m[i]) * one_b1;
    v[i] += (g * g - v[i]) * one_b2;
    params[i] -= (m[i] * alpha) / (sqrtf(v[i]) + eps);
  }
}

void adam_decay_weights(float *params, size_t first, size_t count, double lr, double weight_decay) {
  float keep = (float)(1.0 - lr * weight_decay);
  for (size_t i = first; i < first + count; i++) params[i] *= keep;
}
