/* evaluate.c - see evaluate.h */
#include "unet/evaluate.h"

#include <string.h>

#include "unet/comm.h"
#include "unet/metrics.h"
#include "unet/util.h"
#include "unet/watchdog.h"

static void evaluate(UNet *m, ShardSet *set, const LossSpec *spec, int flip_tta, float *x, uint8_t *labels,
                     float *probs, uint8_t *scratch, EvalResult *out) {
  int C = m->num_classes, rank = comm_rank(), P = comm_size();
  long V = set->total, chunks = (V + EVAL_CHUNK - 1) / EVAL_CHUNK;
  long pixels = (long)m->height * m->width;
  const int plain = !spec || (!spec->class_weights && spec->ignore_label < 0);
  double *losses = xmalloc((2 * V + 1) * sizeof(double), "evaluation losses"), *weights = losses + V;
  memset(out, 0, sizeof *out);
  out->confusion = xcalloc((size_t)C * C, sizeof(int64_t), "confusion matrix");
  out->samples = V;
  long index[EVAL_CHUNK], mine = 0;
  float *x_mirror = NULL, *tta_logits = NULL; /* [EVAL_CHUNK, H, W, 3], [EVAL_CHUNK, H, W, C] */
  if (flip_tta) {
    x_mirror = xmalloc((size_t)EVAL_CHUNK * pixels * 3 * sizeof(float), "mirrored evaluation batch");
    tta_logits = xmalloc((size_t)EVAL_CHUNK * pixels * C * sizeof(float), "averaged logits");
  }
  char err[1024];
  for (long j = rank; j < chunks; j += P) {
    long first = j * EVAL_CHUNK;
    int n = (int)(V - first < EVAL_CHUNK ? V - first : EVAL_CHUNK);
    for (int i = 0; i < n; i++) index[i] = first + i;
    if (shardset_read_batch(set, index, n, NULL, 0, 0, x, labels, scratch, err, sizeof err) != 0)
      unet_fatal("evaluation data: %s", err);
    const float *logits = tta_logits;
    if (flip_tta) {
      unet_predict_flip_average(m, x, n, probs, x_mirror, tta_logits);
    } else {
      unet_predict(m, x, n, probs);
      logits = unet_last_logits(m);
    }
    if (plain) {
      per_image_xent(losses + mine, logits, labels, n, pixels, C);
      for (int i = 0; i < n; i++) weights[mine + i] = (double)pixels;
    } else {
      per_image_xent_weighted(losses + mine, weights + mine, logits, labels, n, pixels, C, spec);
    }
    confusion_add(out->confusion, probs, labels, n * pixels, C);
    mine += n;
    watchdog_progress(); /* a long validation is still moving */
  }
  /* per-image losses and weights gathered on rank 0, put back in sample order
   * and summed there: the same sums whatever the rank count */
  double *gathered = rank == 0 ? xmalloc((2 * V + 1) * sizeof(double), "evaluation losses") : NULL;
  memmove(losses + mine, weights, (size_t)mine * sizeof(double)); /* [losses | weights] of my samples, packed */
  comm_gather_doubles(losses, (int)(2 * mine), gathered, 0);
  comm_allreduce_sum_i64(out->confusion, C * C);
  if (rank == 0) {
    double *loss_by_sample = xmalloc((2 * V + 1) * sizeof(double), "evaluation losses"), *weight_by_sample = loss_by_sample + V;
    long pos = 0;
    for (int q = 0; q < P; q++) {
      long count = 0; /* rank q's samples, in its chunk order */
      for (long j = q; j < chunks; j += P) count += V - j * EVAL_CHUNK < EVAL_CHUNK ? V - j * EVAL_CHUNK : EVAL_CHUNK;
      long at = 0;
      for (long j = q; j < chunks; j += P) {
        long first = j * EVAL_CHUNK, n = V - first < EVAL_CHUNK ? V - first : EVAL_CHUNK;
        memcpy(loss_by_sample + first, gathered + pos + at, n * sizeof(double));
        memcpy(weight_by_sample + first, gathered + pos + count + at, n * sizeof(double));
        at += n;
      }
      pos += 2 * count;
    }
    double sum = 0, wsum = 0;
    for (long i = 0; i < V; i++) sum += loss_by_sample[i], wsum += weight_by_sample[i];
    /* the plain case divides as before, by V * pixels: the very same number */
    out->loss = plain ? sum / ((double)V * pixels) : (wsum > 0 ? sum / wsum : 0);
    out->accuracy = confusion_accuracy(out->confusion, C);
    out->mean_iou = confusion_mean_iou(out->confusion, C);
    xfree(loss_by_sample);
  }
  xfree(gathered);
  xfree(losses);
  xfree(x_mirror);
  xfree(tta_logits);
}

void evaluate_set(UNet *m, ShardSet *set, const LossSpec *spec, float *x, uint8_t *labels, float *probs,
                  uint8_t *scratch, EvalResult *out) {
  evaluate(m, set, spec, 0, x, labels, probs, scratch, out);
}

void evaluate_set_flip_tta(UNet *m, ShardSet *set, const LossSpec *spec, float *x, uint8_t *labels, float *probs,
                           uint8_t *scratch, EvalResult *out) {
  evaluate(m, set, spec, 1, x, labels, probs, scratch, out);
}

void eval_result_free(EvalResult *r) {
  xfree(r->confusion);
  r->confusion = NULL;
}
