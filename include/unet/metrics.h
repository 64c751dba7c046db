/* metrics.h - segmentation metrics from a confusion matrix of pixel counts
 * (integers, so sums over ranks are exact whatever the rank count). */
#ifndef UNET_METRICS_H
#define UNET_METRICS_H
#include <stdint.h>

/* confusion[true * C + predicted] += 1 per pixel; probs [m, C]. */
void confusion_add(int64_t *confusion, const float *probs, const uint8_t *labels, long m, int c);
double confusion_accuracy(const int64_t *confusion, int c);
/* IoU of class k = tp / (tp + fp + fn); NaN when the class never occurs and is
 * never predicted. mean_iou averages over the classes with a defined IoU. */
double confusion_iou(const int64_t *confusion, int c, int k);
double confusion_mean_iou(const int64_t *confusion, int c);

/* Sum over each image's pixels of -log softmax(logits)[label], from the
 * logits (as the training loss, no clipping), in double: out [n]. */
void per_image_xent(double *out, const float *logits, const uint8_t *labels, int n, long pixels, int c);

/* Colour of class k for prediction PNGs (distinct for the first classes). */
void class_colour(int k, uint8_t rgb[3]);
/* Side-by-side panel [h, 3w, 3]: input | ground truth | prediction. */
void render_prediction_panel(uint8_t *panel, const uint8_t *image, const uint8_t *truth, const uint8_t *predicted, int h,
                             int w);
/* argmax over classes: probs [m, C] -> ids [m] */
void argmax_classes(uint8_t *ids, const float *probs, long m, int c);

#endif
