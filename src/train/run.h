/* run.h - private to src/train: the state of one training run on one rank,
 * shared by the trainer's pieces (trainer.c wires them; data_order.c,
 * validation.c, bn_recalibrate.c and prediction_pngs.c each do one job with it). */
#ifndef UNET_TRAIN_RUN_H
#define UNET_TRAIN_RUN_H
#include <stdint.h>

#include "unet/adam.h"
#include "unet/checkpoint.h"
#include "unet/comm.h"
#include "unet/data_loader.h"
#include "unet/lr_schedule.h"
#include "unet/model.h"
#include "unet/prefetch.h"
#include "unet/trainer.h"
#include "unet/util.h"

typedef struct {
  const TrainConfig *cfg;
  int rank, size;
  ShardSet train, val;
  long n_train;            /* samples used (after --max-train) */
  long slice_first, slice_count;
  int local_batch;
  long steps_per_epoch;
  UNet model;
  Adam opt;
  TrainState ts;
  GradSync *sync;
  BatchNormReducer bn;
  float *x;                /* [local_batch, H, W, 3] */
  uint8_t *labels;         /* [local_batch, H, W] */
  uint8_t *scratch;        /* SHARDSET_SCRATCH_BYTES: one sample being read */
  Prefetcher *prefetch;    /* the next training batch, prepared on a thread */
  LrSchedule schedule;     /* learning rate of every step */
  float *probs;            /* [local_batch, H, W, C] */
  float class_weights[UNET_MAX_CLASSES]; /* --class-weights (model.loss points here when used) */
  LossSpec val_spec;       /* what validation counts: the ignored pixels, never the weights */
  char path_last[UNET_PATH_MAX], path_best[UNET_PATH_MAX], path_csv[UNET_PATH_MAX], dir_pred[UNET_PATH_MAX];
} Run;

#endif
