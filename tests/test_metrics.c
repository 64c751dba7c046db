/* test_metrics.c - src/train/metrics.c against hand-computed values: the
 * confusion matrix from probabilities (argmax, ties to the lower class),
 * pixel accuracy, per-class IoU with its rules for absent classes (NaN when a
 * class never occurs and is never predicted, left out of the mean; 0 when it
 * occurs but is never predicted, or is predicted but never occurs), and the
 * per-image cross-entropy from logits. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "unet/metrics.h"

/* probs [m, c] that put most of the mass on predicted[i] */
static void one_hot_probs(float *probs, const int *predicted, long m, int c) {
  for (long i = 0; i < m; i++)
    for (int k = 0; k < c; k++) probs[i * c + k] = k == predicted[i] ? 0.6f : 0.4f / (float)(c - 1);
}

static void test_confusion_two_of_three_classes(void) {
  /* 8 pixels, 3 classes, class 2 neither in the labels nor predicted:
   *   pixel   0 1 2 3 4 5 6 7
   *   true    0 0 0 1 1 1 1 0
   *   pred    0 0 1 1 1 0 1 1
   * confusion (rows true, columns predicted): [[2 2 0] [1 3 0] [0 0 0]] */
  const uint8_t labels[8] = {0, 0, 0, 1, 1, 1, 1, 0};
  const int predicted[8] = {0, 0, 1, 1, 1, 0, 1, 1};
  float probs[8 * 3];
  one_hot_probs(probs, predicted, 8, 3);
  int64_t conf[9] = {0};
  confusion_add(conf, probs, labels, 8, 3);
  const int64_t want[9] = {2, 2, 0, 1, 3, 0, 0, 0, 0};
  CHECK(memcmp(conf, want, sizeof want) == 0);
  CHECK(confusion_accuracy(conf, 3) == 5.0 / 8.0);
  CHECK(confusion_iou(conf, 3, 0) == 2.0 / 5.0); /* tp 2, fp 1 (a 1 called 0), fn 2 */
  CHECK(confusion_iou(conf, 3, 1) == 3.0 / 6.0); /* tp 3, fp 2, fn 1 */
  CHECK(isnan(confusion_iou(conf, 3, 2)));       /* never occurs, never predicted */
  CHECK(fabs(confusion_mean_iou(conf, 3) - 0.45) < 1e-15); /* (0.4 + 0.5) / 2: class 2 left out */
  /* counts add up over calls (the trainer sums chunks and ranks) */
  confusion_add(conf, probs, labels, 8, 3);
  CHECK(conf[0] == 4 && conf[1] == 4 && conf[3] == 2 && conf[4] == 6);
  CHECK(confusion_accuracy(conf, 3) == 5.0 / 8.0 && confusion_iou(conf, 3, 0) == 0.4);
}

static void test_confusion_missed_and_phantom_classes(void) {
  /* class 2 occurs twice but is never predicted (IoU 0, counted in the
   * mean); class 0 is predicted once but never occurs (IoU 0 as well):
   *   true    1 1 2 2 1
   *   pred    1 1 1 1 0
   * confusion [[0 0 0] [1 2 0] [0 2 0]] */
  const uint8_t labels[5] = {1, 1, 2, 2, 1};
  const int predicted[5] = {1, 1, 1, 1, 0};
  float probs[5 * 3];
  one_hot_probs(probs, predicted, 5, 3);
  int64_t conf[9] = {0};
  confusion_add(conf, probs, labels, 5, 3);
  const int64_t want[9] = {0, 0, 0, 1, 2, 0, 0, 2, 0};
  CHECK(memcmp(conf, want, sizeof want) == 0);
  CHECK(confusion_accuracy(conf, 3) == 2.0 / 5.0);
  CHECK(confusion_iou(conf, 3, 0) == 0.0);       /* tp 0, fp 1 */
  CHECK(confusion_iou(conf, 3, 1) == 2.0 / 5.0); /* tp 2, fp 2, fn 1 */
  CHECK(confusion_iou(conf, 3, 2) == 0.0);       /* tp 0, fn 2 */
  CHECK(fabs(confusion_mean_iou(conf, 3) - 0.4 / 3.0) < 1e-15);
}

static void test_argmax_ties_and_empty(void) {
  /* equal probabilities: the lower class id wins, in both functions */
  const float probs[3 * 3] = {0.2f, 0.4f, 0.4f, 0.5f, 0.5f, 0.0f, 0.1f, 0.1f, 0.8f};
  uint8_t ids[3];
  argmax_classes(ids, probs, 3, 3);
  CHECK(ids[0] == 1 && ids[1] == 0 && ids[2] == 2);
  const uint8_t labels[3] = {2, 0, 2};
  int64_t conf[9] = {0};
  confusion_add(conf, probs, labels, 3, 3);
  CHECK(conf[2 * 3 + 1] == 1 && conf[0] == 1 && conf[2 * 3 + 2] == 1);
  /* nothing counted: no accuracy, no IoU */
  int64_t empty[4] = {0};
  CHECK(isnan(confusion_accuracy(empty, 2)) && isnan(confusion_iou(empty, 2, 0)) && isnan(confusion_mean_iou(empty, 2)));
}

static void test_per_image_xent(void) {
  /* 2 images of 2 pixels, 2 classes; per pixel -log softmax(z)[label]:
   *   image 0: z = (0, ln 3) label 1 -> -log(3/4);  z = (ln 3, 0) label 1 -> -log(1/4)
   *            sum log(4/3) + log 4 = log(16/3)
   *   image 1: z = (1000, 0) label 1 -> 1000 (no overflow: the max is subtracted);
   *            z = (2, 2) label 0 -> log 2 */
  const float ln3 = (float)log(3.0);
  const float logits[8] = {0, ln3, ln3, 0, 1000, 0, 2, 2};
  const uint8_t labels[4] = {1, 1, 1, 0};
  double out[2];
  per_image_xent(out, logits, labels, 2, 2, 2);
  /* ln3 is rounded to float: the exact value for that logit */
  double z = ln3, want0 = log(1 + exp(-z)) + log(1 + exp(z));
  CHECK_CLOSE(out[0], want0, 0, 1e-14);
  CHECK_CLOSE(out[0], log(16.0 / 3.0), 1e-7, 0);
  CHECK_CLOSE(out[1], 1000.0 + log(2.0), 0, 1e-15);
}

static void test_prediction_panel(void) {
  /* 1x2 image: panel row is input | truth colours | prediction colours */
  const uint8_t image[6] = {1, 2, 3, 4, 5, 6}, truth[2] = {0, 1}, pred[2] = {1, 9};
  uint8_t panel[18], c0[3], c1[3], c9[3];
  render_prediction_panel(panel, image, truth, pred, 1, 2);
  class_colour(0, c0), class_colour(1, c1), class_colour(9, c9);
  CHECK(memcmp(panel, image, 6) == 0);
  CHECK(memcmp(panel + 6, c0, 3) == 0 && memcmp(panel + 9, c1, 3) == 0);
  CHECK(memcmp(panel + 12, c1, 3) == 0 && memcmp(panel + 15, c9, 3) == 0);
  CHECK(memcmp(c0, c1, 3) != 0 && memcmp(c1, c9, 3) != 0);
}

int main(void) {
  test_confusion_two_of_three_classes();
  test_confusion_missed_and_phantom_classes();
  test_argmax_ties_and_empty();
  test_per_image_xent();
  test_prediction_panel();
  CHECK_DONE();
}
