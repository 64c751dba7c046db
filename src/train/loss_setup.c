/* loss_setup.c - see loss_setup.h */
#include "loss_setup.h"

#include <stdio.h>
#include <string.h>

#include "unet/class_weights.h"

static void median_frequency(Run *r) {
  UNet *m = &r->model;
  const int C = m->num_classes;
  const long pixels = (long)m->height * m->width;
  int64_t counts[2 * UNET_MAX_CLASSES] = {0}; /* class pixels, then pixels of the images holding the class */
  uint8_t *mask = xmalloc((size_t)pixels, "mask");
  char err[1024];
  /* every rank counts its own part of the samples training uses; integer sums are exact */
  long first, count;
  first = (long)((__int128)r->n_train * r->rank / r->size);
  count = (long)((__int128)r->n_train * (r->rank + 1) / r->size) - first;
  for (long i = first; i < first + count; i++) {
    if (shardset_read(&r->train, i, NULL, mask, NULL, 0, err, sizeof err) != 0) unet_fatal("training data: %s", err);
    class_weights_count(mask, pixels, C, counts, counts + UNET_MAX_CLASSES);
  }
  xfree(mask);
  comm_allreduce_sum_i64(counts, 2 * UNET_MAX_CLASSES);
  int occurring = class_weights_median_frequency(counts, counts + UNET_MAX_CLASSES, C, r->class_weights);
  if (occurring < C && r->rank == 0)
    unet_warn("--class-weights auto: %d of %d classes never occur in the training data (weight 1)", C - occurring, C);
}

void loss_setup(Run *r) {
  const TrainConfig *c = r->cfg;
  UNet *m = &r->model;
  const int C = m->num_classes;
  if (r->val.total > 0 && (r->val.has_ignore != r->train.has_ignore ||
                           (r->train.has_ignore && r->val.ignore_value != r->train.ignore_value)))
    unet_fatal("%s: val.h5 and the training shards disagree on the ignore value (%d and %d, -1: none): preprocess "
               "them alike",
               c->data_dir, r->val.has_ignore ? r->val.ignore_value : -1,
               r->train.has_ignore ? r->train.ignore_value : -1);
  m->loss = LOSS_SPEC_PLAIN;
  if (r->train.has_ignore) m->loss.ignore_label = SHARD_IGNORE_ID;
  r->val_spec = (LossSpec){NULL, m->loss.ignore_label}; /* validation unweighted, as Keras leaves class_weight out */
  if (c->class_weights_auto) {
    median_frequency(r);
  } else if (c->num_class_weights > 0) {
    if (c->num_class_weights != C)
      unet_fatal("--class-weights gives %d weights, but the data has %d classes", c->num_class_weights, C);
    memcpy(r->class_weights, c->class_weights, sizeof(float) * (size_t)C);
  } else {
    return;
  }
  m->loss.class_weights = r->class_weights;
  if (r->rank == 0 && !c->quiet) {
    char line[UNET_MAX_CLASSES * 12] = "";
    size_t used = 0;
    for (int k = 0; k < C && used < sizeof line - 16; k++)
      used += (size_t)snprintf(line + used, sizeof line - used, "%s%.4g", k ? " " : "", r->class_weights[k]);
    unet_info("class weights%s: %s", c->class_weights_auto ? " (median frequency of the training data)" : "", line);
  }
}

double loss_global_weight(Run *r, const uint8_t *labels, double global_pixels) {
  const LossSpec *spec = &r->model.loss;
  if (!spec->class_weights && spec->ignore_label < 0) return global_pixels; /* Keras: every pixel, no allreduce */
  double w = loss_weight_sum(labels, (long)r->local_batch * r->model.height * r->model.width, spec);
  comm_allreduce_sum_double(&w, 1);
  return w;
}
