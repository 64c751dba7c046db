/* metrics.h - segmentation metrics from a confusion matrix of pixel counts
 * (integers, so sums over ranks are exact whatever the rank count). */
#ifndef UNET_METRICS_H
#define UNET_METRICS_H
#include <stdint.h>

#include "unet/layers.h"

/* confusion[true * C + predicted] += 1 per pixel; probs [m, C]. Labels >= C
 * (the ignore id 255 of a shard with an ignore value) are not counted. */
void confusion_add(int64_t *confusion, const float *probs, const uint8_t *labels, long m, int c);
double confusion_accuracy(const int64_t *confusion, int c);
/* IoU of class k = tp / (tp + fp + fn); NaN when the class never occurs and is
 * never predicted. mean_iou averages over the classes with a defined IoU. */
double confusion_iou(const int64_t *confusion, int c, int k);
double confusion_mean_iou(const int64_t *confusion, int c);

/* Sum over each image's pixels of -log softmax(logits)[label], from the
 * logits (as the training loss, no clipping), in double: out [n]. */
void per_image_xent(double *out, const float *logits, const uint8_t *labels, int n, long pixels, int c);

/* The same under a LossSpec (class weights, ignored label): loss[i] = the
 * weighted sum over image i's counted pixels, weight[i] = its loss_weight_sum;
 * the mean loss of a set is sum(loss) / sum(weight). */
void per_image_xent_weighted(double *loss, double *weight, const float *logits, const uint8_t *labels, int n,
                             long pixels, int c, const LossSpec *spec);

/* Colour of class k for prediction PNGs (distinct for the first classes; the
 * ignore id 255 is grey). */
void class_colour(int k, uint8_t rgb[3]);
/* Side-by-side panel [h, 3w, 3]: input | ground truth | prediction. */
void render_prediction_panel(uint8_t *panel, const uint8_t *image, const uint8_t *truth, const uint8_t *predicted, int h,
                             int w);
/* argmax over classes: probs [m, C] -> ids [m] */
void argmax_classes(uint8_t *ids, const float *probs, long m, int c);

#endif
