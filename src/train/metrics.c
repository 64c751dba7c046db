/* metrics.c - see metrics.h */
#include "unet/metrics.h"

#include <math.h>
#include <string.h>

void argmax_classes(uint8_t *ids, const float *probs, long m, int c) {
  for (long i = 0; i < m; i++) {
    const float *p = probs + i * c;
    int best = 0;
    for (int k = 1; k < c; k++)
      if (p[k] > p[best]) best = k;
    ids[i] = (uint8_t)best;
  }
}

void confusion_add(int64_t *confusion, const float *probs, const uint8_t *labels, long m, int c) {
  for (long i = 0; i < m; i++) {
    const float *p = probs + i * c;
    int best = 0;
    for (int k = 1; k < c; k++)
      if (p[k] > p[best]) best = k;
    if (labels[i] >= c) continue; /* an ignored pixel (class id 255 of a shard with an ignore value) */
    confusion[labels[i] * c + best]++;
  }
}

double confusion_accuracy(const int64_t *confusion, int c) {
  int64_t right = 0, all = 0;
  for (int t = 0; t < c; t++)
    for (int p = 0; p < c; p++) {
      all += confusion[t * c + p];
      if (t == p) right += confusion[t * c + p];
    }
  return all ? (double)right / (double)all : NAN;
}

double confusion_iou(const int64_t *confusion, int c, int k) {
  int64_t tp = confusion[k * c + k], fp = 0, fn = 0;
  for (int j = 0; j < c; j++) {
    if (j == k) continue;
    fp += confusion[j * c + k];
    fn += confusion[k * c + j];
  }
  int64_t denom = tp + fp + fn;
  return denom ? (double)tp / (double)denom : NAN;
}

double confusion_mean_iou(const int64_t *confusion, int c) {
  double sum = 0;
  int n = 0;
  for (int k = 0; k < c; k++) {
    double iou = confusion_iou(confusion, c, k);
    if (!isnan(iou)) {
      sum += iou;
      n++;
    }
  }
  return n ? sum / n : NAN;
}

void per_image_xent(double *out, const float *logits, const uint8_t *labels, int n, long pixels, int c) {
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (long j = 0; j < pixels; j++) {
      long q = (long)i * pixels + j;
      const float *l = logits + q * c;
      double mx = l[0];
      for (int k = 1; k < c; k++)
        if (l[k] > mx) mx = l[k];
      double sum = 0;
      for (int k = 0; k < c; k++) sum += exp(l[k] - mx);
      s += mx + log(sum) - l[labels[q]];
    }
    out[i] = s;
  }
}

void class_colour(int k, uint8_t rgb[3]) {
  static const uint8_t fixed[][3] = {{230, 80, 60},  {40, 40, 60},    {250, 210, 70}, {60, 160, 230},
                                     {90, 200, 100}, {200, 100, 220}, {250, 150, 40}, {180, 180, 180}};
  if (k < 8) {
    memcpy(rgb, fixed[k], 3);
    return;
  }
  if (k == 255) { /* the ignore id (never a class: at most 255 classes, ids 0..254): neutral grey */
    rgb[0] = rgb[1] = rgb[2] = 128;
    return;
  }
  unsigned h = (unsigned)k * 2654435761u;
  rgb[0] = (uint8_t)(64 + (h & 127));
  rgb[1] = (uint8_t)(64 + ((h >> 8) & 127));
  rgb[2] = (uint8_t)(64 + ((h >> 16) & 127));
}

void render_prediction_panel(uint8_t *panel, const uint8_t *image, const uint8_t *truth, const uint8_t *predicted, int h,
                             int w) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t *row = panel + ((size_t)y * 3 * w) * 3;
      memcpy(row + x * 3, image + ((size_t)y * w + x) * 3, 3);
      class_colour(truth[(size_t)y * w + x], row + (w + x) * 3);
      class_colour(predicted[(size_t)y * w + x], row + (2 * w + x) * 3);
    }
}

void per_image_xent_weighted(double *loss, double *weight, const float *logits, const uint8_t *labels, int n,
                             long pixels, int c, const LossSpec *spec) {
  for (int i = 0; i < n; i++) {
    const uint8_t *li = labels + (size_t)i * pixels;
    loss[i] = softmax_xent_weighted(NULL, NULL, logits + (size_t)i * pixels * c, li, pixels, c, 1.0f, spec);
    weight[i] = loss_weight_sum(li, pixels, spec);
  }
}
