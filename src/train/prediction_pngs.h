/* prediction_pngs.h - private to src/train: RUN/predictions/val_XX_<name>.png,
 * input | ground truth | prediction for the first validation images. */
#ifndef UNET_TRAIN_PREDICTION_PNGS_H
#define UNET_TRAIN_PREDICTION_PNGS_H
#include "run.h"

/* Rank 0 only: predicts the first cfg->val_images validation images with the
 * current weights and writes one panel each; a failed write is a warning. */
void write_prediction_pngs(Run *r);

#endif
