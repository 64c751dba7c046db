/* bn_recalibrate.h - private to src/train: `--bn-recalibrate K`, BatchNorm
 * statistics recomputed over training batches for validation (not Keras). */
#ifndef UNET_TRAIN_BN_RECALIBRATE_H
#define UNET_TRAIN_BN_RECALIBRATE_H
#include "run.h"

/* Replaces the BN moving statistics by the average batch statistics of
 * cfg->bn_recalibrate training batches of this epoch's order (momentum
 * 1 - 1/k for the k-th batch: a plain mean), synchronized over the ranks like
 * training. Collective. Returns the previous (Keras) statistics for the caller
 * to put back (xfree them). */
float *recalibrate_batchnorm(Run *r, const uint32_t *order);

#endif
