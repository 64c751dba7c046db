/* adam.h - Adam exactly as Keras computes it (epsilon outside the bias
 * correction, unlike PyTorch):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   alpha = lr * sqrt(1 - b2^t) / (1 - b1^t);  w -= alpha * m / (sqrt(v) + eps)
 */
#ifndef UNET_ADAM_H
#define UNET_ADAM_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  /* hyper-parameters as Python doubles, cast where Keras casts them */
  double lr, beta1, beta2, epsilon;
  int64_t iterations; /* steps taken so far; the next step is t = iterations + 1 */
  size_t count;
  /* One block of 2 * count floats, m first, then v: so the pair is broadcast,
   * zeroed or freed as one buffer. m and v are the two halves. */
  float *moments;
  float *m, *v;       /* [count] each: m = moments, v = moments + count */
} Adam;

void adam_init(Adam *a, size_t count, double lr);
void adam_free(Adam *a);
/* One step over the whole parameter arena. */
void adam_step(Adam *a, float *params, const float *grads);
/* Decoupled weight decay (AdamW, Loshchilov & Hutter 2019), applied before
 * adam_step with the step's learning rate: params[i] *= 1 - lr * weight_decay
 * for i in [first, first + count). Not part of Keras' Adam (off by default). */
void adam_decay_weights(float *params, size_t first, size_t count, double lr, double weight_decay);

#endif
