/* checkpoint.h - the Keras 3 `.weights.h5` layout and our training checkpoint.
 *
 * Weights file: HDF5, one group per layer in model order,
 * /layers/<name>/vars/<i> float32 datasets in Keras shapes (BN: gamma, beta,
 * moving_mean, moving_variance), an empty vars group for layers without
 * variables, and a top-level /vars group; so model.load_weights() in the Keras
 * script takes our file and we take a file Keras saved.
 *
 * Checkpoint: the same file plus our own groups (Keras ignores them):
 *   /optimizer  Adam iterations and m, v per trainable variable (Keras layout)
 *   /train      epoch, step, best validation loss, RNG state, seed, config
 * Both are written to a temporary file, flushed and renamed: a kill at any
 * moment leaves the previous file intact. */
#ifndef UNET_CHECKPOINT_H
#define UNET_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>

#include "unet/adam.h"
#include "unet/model.h"
#include "unet/rng.h"

typedef struct {
  int64_t epoch;        /* epochs completed */
  int64_t step;         /* optimizer steps completed in total */
  int64_t step_in_epoch;/* steps completed within the current (unfinished) epoch */
  double best_val_loss; /* INFINITY when none yet */
  int64_t seed;
  UnetRng rng;          /* trainer RNG (data order, ...) */
  int32_t world_size;   /* rank count that wrote it (informational) */
  int32_t global_batch;
  float lr;
  int32_t data_order;   /* DATA_ORDER_SHARD / DATA_ORDER_GLOBAL (trainer.h); a resume must keep it */
  int64_t best_epoch;   /* epoch (1-based) of best_val_loss, 0 when none: --early-stop counts from it */
} TrainState;

/* 0 ok; -1 with a reason naming the file (and layer) in err. */
int weights_save_keras(const UNet *m, const char *path, char *err, size_t err_len);
/* Loads every variable; a missing layer/variable or a wrong shape fails with a
 * message naming the layer and both shapes, leaving the model unchanged. */
int weights_load_keras(UNet *m, const char *path, char *err, size_t err_len);
/* The class count a weights file (or checkpoint) was trained for, from the
 * shape of the head layer's kernel. 0 ok; -1 with a reason naming the file. */
int weights_num_classes(const char *path, int *classes, char *err, size_t err_len);

/* The gradients in m->grads in the weights-file layout: /layers/<name>/vars/<i>
 * for the trainable variables only (BatchNorm: gamma and beta). */
int gradients_save_keras(const UNet *m, const char *path, char *err, size_t err_len);

int checkpoint_save(const UNet *m, const Adam *opt, const TrainState *ts, const char *path, char *err, size_t err_len);
/* opt must be adam_init'ed with m->num_params. */
int checkpoint_load(UNet *m, Adam *opt, TrainState *ts, const char *path, char *err, size_t err_len);

#endif
