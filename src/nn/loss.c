/* loss.c - softmax over channels and sparse categorical crossentropy from
 * logits, computed through a stable log-softmax (max subtracted, no
 * clipping), as Keras does with from_logits=True; optionally with class
 * weights and an ignored label (LossSpec). */
#include <math.h>

#include "unet/layers.h"
#include "unet/util.h"


/* e[j] = exp(z[j] - max z) for one pixel; returns their sum (>= 1). */
static double shifted_exp(double *e, const float *z, int c, float *zmax_out) {
  float zmax = z[0];
  for (int j = 1; j < c; j++) zmax = z[j] > zmax ? z[j] : zmax;
  double sum = 0.0;
  for (int j = 0; j < c; j++) sum += e[j] = exp((double)z[j] - zmax);
  *zmax_out = zmax;
  return sum;
}

static void check_classes(int c, const char *who) {
  if (c < 1 || c > SOFTMAX_MAX_CLASSES) unet_fatal("%s: %d classes, want 1..%d", who, c, SOFTMAX_MAX_CLASSES);
}

double softmax_xent_weighted(float *dlogits, float *probs, const float *logits, const uint8_t *labels, long m, int c,
                             float grad_scale, const LossSpec *spec) {
  check_classes(c, "softmax_xent");
  double e[SOFTMAX_MAX_CLASSES]; /* one pixel's exponentials */
  const float *w = spec ? spec->class_weights : NULL;
  const int ignore = spec ? spec->ignore_label : -1;
  double total = 0.0;
  for (long r = 0; r < m; r++) {
    const float *z = logits + (size_t)r * c;
    int label = labels[r];
    const int ignored = label == ignore;
    if (label >= c && !ignored) unet_fatal("softmax_xent: pixel %ld has label %d, outside the %d classes", r, label, c);
    float zmax;
    double sum = shifted_exp(e, z, c, &zmax);
    if (!ignored) {
      double nll = log(sum) - ((double)z[label] - zmax); /* -log softmax[label] */
      total += w ? (double)w[label] * nll : nll;
    }
    for (int j = 0; j < c; j++) {
      double p = e[j] / sum;
      if (probs) probs[(size_t)r * c + j] = (float)p;
      if (!dlogits) continue;
      if (ignored) {
        dlogits[(size_t)r * c + j] = 0.0f;
      } else {
        double g = p - (j == label);
        if (w) g *= (double)w[label];
        dlogits[(size_t)r * c + j] = (float)(g * grad_scale);
      }
    }
  }
  return total;
}

double softmax_xent_forward_backward(float *dlogits, float *probs, const float *logits, const uint8_t *labels, long m,
                                     int c, float grad_scale) {
  return softmax_xent_weighted(dlogits, probs, logits, labels, m, c, grad_scale, NULL);
}

double loss_weight_sum(const uint8_t *labels, long m, const LossSpec *spec) {
  const float *w = spec ? spec->class_weights : NULL;
  const int ignore = spec ? spec->ignore_label : -1;
  double sum = 0.0;
  for (long r = 0; r < m; r++) {
    if (labels[r] == ignore) continue;
    sum += w ? (double)w[labels[r]] : 1.0;
  }
  return sum;
}

void softmax_forward(float *probs, const float *logits, long m, int c) {
  check_classes(c, "softmax_forward");
  double e[SOFTMAX_MAX_CLASSES];
  for (long r = 0; r < m; r++) {
    float zmax;
    double sum = shifted_exp(e, logits + (size_t)r * c, c, &zmax);
    for (int j = 0; j < c; j++) probs[(size_t)r * c + j] = (float)(e[j] / sum); /* may equal logits */
  }
}
