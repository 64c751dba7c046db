/* bn_recalibrate.c - see bn_recalibrate.h */
#include "bn_recalibrate.h"

#include <string.h>

#include "data_order.h"

float *recalibrate_batchnorm(Run *r, const uint32_t *order) {
  UNet *m = &r->model;
  float *saved = xmalloc(m->num_state * sizeof(float), "BatchNorm statistics");
  memcpy(saved, m->state, m->num_state * sizeof(float));
  long *index = xmalloc(r->local_batch * sizeof(long), "batch index");
  char err[1024];
  for (int k = 1; k <= r->cfg->bn_recalibrate; k++) {
    batch_indices(r, order, (k - 1) % r->steps_per_epoch, index);
    /* not augmented: the statistics are those of the images validation sees */
    if (shardset_read_batch(&r->train, index, r->local_batch, NULL, 0, 0, r->x, r->labels, r->scratch, err,
                            sizeof err) != 0)
      unet_fatal("training data: %s", err);
    unet_average_batch_stats(m, r->x, r->local_batch, k, r->bn);
  }
  xfree(index);
  return saved;
}

