/* metrics_csv.h - private to src/train: RUN/metrics.csv, one row per epoch:
 *   epoch,step,train_loss,val_loss,val_accuracy,iou_0..iou_{C-1},mean_iou,
 *   images_per_s,epoch_seconds,elapsed_seconds,best,lr,data_wait_seconds
 * (validation columns empty for a run without val.h5). Errors are fatal. */
#ifndef UNET_TRAIN_METRICS_CSV_H
#define UNET_TRAIN_METRICS_CSV_H
#include <stdint.h>

#include "validation.h"

typedef struct {
  int64_t epoch, step;
  double train_loss;
  const ValResult *val; /* NULL: no validation this run */
  double images_per_s, epoch_seconds, elapsed_seconds;
  int best;
  double lr;                /* of the epoch's last step */
  double data_wait_seconds; /* waiting for the prefetched batches */
} EpochRow;

/* Writes the header (atomically), keeping the rows of epochs 1..keep_epochs
 * of an existing file: on resume from epoch k, rows written after the
 * checkpoint would otherwise repeat. keep_epochs 0: a new file. */
void metrics_csv_start(const char *path, int num_classes, int64_t keep_epochs);
void metrics_csv_append(const char *path, int num_classes, const EpochRow *row);

#endif
