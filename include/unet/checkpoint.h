/* checkpoint.h - the training checkpoint (src/io/checkpoint.c): the Keras
 * weights layout (weights_keras.h) plus our own groups, which Keras ignores:
 *   /optimizer  Adam iterations, learning rate and m, v per trainable
 *               variable (Keras 3's layout)
 *   /train      the TrainState below and the exact Adam hyper-parameters
 * Written to a temporary, made durable and renamed: a kill at any moment
 * leaves the previous file intact. Loaded all-or-nothing. */
#ifndef UNET_CHECKPOINT_H
#define UNET_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>

#include "unet/adam.h"
#include "unet/model.h"

/* Where a run stands, and what of its configuration a resumed run continues.
 * Each field has one source of truth, this struct; the learning rate and the
 * other Adam hyper-parameters live in Adam (opt->lr is the one learning rate;
 * /optimizer/vars/1 is its float32 copy for Keras). Randomness needs no state:
 * the data order is a pure function of (seed, epoch, rank slice). */
typedef struct {
  int64_t epoch;         /* epochs completed */
  int64_t step;          /* optimizer steps completed in total */
  int64_t step_in_epoch; /* steps completed within the current (unfinished) epoch */
  double best_val_loss;  /* INFINITY when none yet */
  int64_t seed;          /* the seed of the data order (and of the initial weights) */
  int32_t world_size;    /* rank count of the run that wrote it (a resume with another warns) */
  int32_t global_batch;  /* the global batch the run trains with */
  int32_t data_order;    /* DATA_ORDER_SHARD / DATA_ORDER_GLOBAL (trainer.h); a resume must keep it */
  int64_t best_epoch;    /* epoch (1-based) of best_val_loss, 0 when none: --early-stop counts from it */
} TrainState;

/* 0 ok; -1 with a reason naming the file (and layer) in err. */
int checkpoint_save(const UNet *m, const Adam *opt, const TrainState *ts, const char *path, char *err, size_t err_len);
/* opt must be adam_init'ed with m->num_params. */
int checkpoint_load(UNet *m, Adam *opt, TrainState *ts, const char *path, char *err, size_t err_len);

#endif
