/* test_class_weights.c - users' own data on the metrics side, against hand
 * computations: median-frequency class weights, the weight list parser, the
 * confusion matrix leaving ignored pixels out, and the per-image weighted
 * validation loss. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "unet/class_weights.h"
#include "unet/metrics.h"

static void test_median_frequency(void) {
  /* 2x2 masks, 3 classes (+ a 4th that never occurs):
   *   A = 0 0 0 1      B = 0 0 2 2      C = 1 1 1 255 (255 ignored: C counts 3 pixels)
   * class pixels 5, 4, 2; pixels of the images holding the class: 8 (A, B), 7 (A, C), 4 (B)
   * freq 5/8, 4/7, 1/2; median 4/7; w = (4/7)/(5/8) = 32/35, 1, (4/7)/(1/2) = 8/7, and 1 */
  const uint8_t a[4] = {0, 0, 0, 1}, b[4] = {0, 0, 2, 2}, c[4] = {1, 1, 1, 255};
  int64_t cls[4] = {0}, img[4] = {0};
  class_weights_count(a, 4, 4, cls, img);
  class_weights_count(b, 4, 4, cls, img);
  class_weights_count(c, 4, 4, cls, img);
  CHECK(cls[0] == 5 && cls[1] == 4 && cls[2] == 2 && cls[3] == 0);
  CHECK(img[0] == 8 && img[1] == 7 && img[2] == 4 && img[3] == 0);
  float w[4];
  CHECK(class_weights_median_frequency(cls, img, 4, w) == 3);
  CHECK_CLOSE(w[0], 32.0 / 35, 1e-6, 0);
  CHECK_CLOSE(w[1], 1.0, 1e-6, 0);
  CHECK_CLOSE(w[2], 8.0 / 7, 1e-6, 0);
  CHECK_CLOSE(w[3], 1.0, 0, 0);
  /* an even number of occurring classes: the median is the mean of the middle two */
  const int64_t cls2[2] = {1, 3}, img2[2] = {4, 4}; /* freq 1/4, 3/4: median 1/2 -> w 2, 2/3 */
  CHECK(class_weights_median_frequency(cls2, img2, 2, w) == 2);
  CHECK_CLOSE(w[0], 2.0, 1e-6, 0);
  CHECK_CLOSE(w[1], 2.0 / 3, 1e-6, 0);
}

static void test_parse(void) {
  float w[4];
  int n;
  CHECK(class_weights_parse("0.5,1,2.25", w, 4, &n) == 0 && n == 3 && w[0] == 0.5f && w[2] == 2.25f);
  CHECK(class_weights_parse("1,0", w, 4, &n) == -1);    /* a weight must be positive */
  CHECK(class_weights_parse("1,,2", w, 4, &n) == -1);
  CHECK(class_weights_parse("1,2,3,4,5", w, 4, &n) == -1);
  CHECK(class_weights_parse("x", w, 4, &n) == -1);
}

static void test_confusion_and_loss(void) {
  /* 4 pixels, 2 classes; pixel 3 ignored. predictions: 0, 1, 1, 0 */
  const float probs[8] = {0.9f, 0.1f, 0.2f, 0.8f, 0.4f, 0.6f, 0.7f, 0.3f};
  const uint8_t labels[4] = {0, 1, 0, 255};
  int64_t conf[4] = {0};
  confusion_add(conf, probs, labels, 4, 2);
  CHECK(conf[0] == 1 && conf[1] == 1 && conf[2] == 0 && conf[3] == 1); /* the ignored pixel is nowhere */
  CHECK_CLOSE(confusion_accuracy(conf, 2), 2.0 / 3, 1e-12, 0);
  CHECK_CLOSE(confusion_iou(conf, 2, 0), 0.5, 1e-12, 0);  /* tp 1, fp 0, fn 1 */
  CHECK_CLOSE(confusion_iou(conf, 2, 1), 0.5, 1e-12, 0);  /* tp 1, fp 1, fn 0 */
  /* per-image weighted loss: image 0 = pixels 0, 1; image 1 = pixels 2, 3 (3 ignored) */
  const float logits[8] = {2, 0, 0, 1, 1, 1, 5, -5};
  const float cw[2] = {0.5f, 2.0f};
  const LossSpec spec = {cw, 255};
  double loss[2], weight[2];
  per_image_xent_weighted(loss, weight, logits, labels, 2, 2, 2, &spec);
  /* image 0: 0.5 * log(1 + e^-2) + 2 * log(1 + e^-1); image 1: 0.5 * log 2 */
  CHECK_CLOSE(loss[0], 0.5 * log(1 + exp(-2.0)) + 2 * log(1 + exp(-1.0)), 1e-9, 0);
  CHECK_CLOSE(loss[1], 0.5 * log(2.0), 1e-9, 0);
  CHECK(weight[0] == 2.5 && weight[1] == 0.5);
}

int main(void) {
  test_median_frequency();
  test_parse();
  test_confusion_and_loss();
  CHECK_DONE();
}
