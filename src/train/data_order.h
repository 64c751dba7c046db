/* data_order.h - private to src/train: which samples each step of an epoch
 * trains on, on this rank (--data-order shard or global; see trainer.h). */
#ifndef UNET_TRAIN_DATA_ORDER_H
#define UNET_TRAIN_DATA_ORDER_H
#include "run.h"

/* This epoch's order: shard order, the rank's slice [0, slice_count)
 * shuffled from (seed, epoch, rank); global order, one permutation of
 * [0, n_train) from (seed, epoch). order holds n_train + 1 entries. */
void epoch_order(const Run *r, int64_t epoch, uint32_t *order);
/* The global sample indices of this rank's part of step s: index[local_batch]. */
void batch_indices(const Run *r, const uint32_t *order, long s, long *index);

#endif
