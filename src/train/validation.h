/* validation.h - private to src/train: the validation metrics of the model's
 * current weights, computed on every rank and reduced on rank 0. */
#ifndef UNET_TRAIN_VALIDATION_H
#define UNET_TRAIN_VALIDATION_H
#include "run.h"
#include "unet/evaluate.h"

typedef struct {
  double loss;
  double accuracy, mean_iou;
  double iou[UNET_MAX_CLASSES];
} ValResult;

/* Validation runs in evaluate_set's chunks of EVAL_CHUNK images, chunk j on
 * rank j % P, so the metrics are identical for any rank count (evaluate.h).
 * The run's buffers and the model's plan hold at least VAL_CHUNK images. */
#define VAL_CHUNK EVAL_CHUNK

/* Collective: every rank calls it; out is filled on rank 0. */
void validate(Run *r, ValResult *out);

#endif
