/* evaluate.h - score a model on a set of samples, spread over the ranks: the
 * validation of unet-train and the whole of unet-evaluate.
 *
 * Samples go through the network in chunks of EVAL_CHUNK, chunk j on rank
 * j % P; each chunk is computed the same way whatever P (GEMM results can
 * depend on the matrix height), the per-image losses are summed on rank 0 in
 * sample order and the confusion counts are integers, so every result is
 * identical for any rank count. Pixels with the ignore id (255) count in
 * neither the loss nor the confusion matrix. */
#ifndef UNET_EVALUATE_H
#define UNET_EVALUATE_H
#include <stdint.h>

#include "unet/data_loader.h"
#include "unet/layers.h"
#include "unet/model.h"

#define EVAL_CHUNK 4

typedef struct {
  double loss;        /* mean -log p over the counted pixels (weighted as the spec says) */
  double accuracy, mean_iou;
  int64_t *confusion; /* [C * C] (owned), summed over all ranks: every rank has it */
  long samples;
} EvalResult;

/* Buffers for one chunk (x [EVAL_CHUNK,H,W,3] float, labels [EVAL_CHUNK,H,W],
 * probs [EVAL_CHUNK,H,W,C], scratch SHARDSET_SCRATCH_BYTES(H, W)); the model
 * must be planned for EVAL_CHUNK images. spec: LOSS_SPEC_PLAIN gives exactly
 * Keras's mean over every pixel. loss, accuracy and mean_iou are valid on rank 0. */
void evaluate_set(UNet *m, ShardSet *set, const LossSpec *spec, float *x, uint8_t *labels, float *probs,
                  uint8_t *scratch, EvalResult *out);
/* The same with flip test-time augmentation (unet_predict_flip_average): the
 * loss and the confusion counts are those of the averaged logits. */
void evaluate_set_flip_tta(UNet *m, ShardSet *set, const LossSpec *spec, float *x, uint8_t *labels, float *probs,
                           uint8_t *scratch, EvalResult *out);
void eval_result_free(EvalResult *r);

#endif
