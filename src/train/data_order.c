/* data_order.c - see data_order.h. Both orders are pure functions of the
 * run's TrainState (seed, data order, global batch) and the epoch. */
#include "data_order.h"

#include "unet/rng.h"

/* The global order: one permutation of [0, n_train) from (seed, epoch) alone,
 * the same on every rank and for every rank count. */
static void global_epoch_order(const Run *r, int64_t epoch, uint32_t *order) {
  for (long i = 0; i < r->n_train; i++) order[i] = (uint32_t)i;
  if (!r->cfg->shuffle) return;
  UnetRng g;
  rng_seed(&g, (uint64_t)r->ts.seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull) ^ 0x676c6f62ull);
  rng_shuffle_u32(&g, order, (uint32_t)r->n_train);
}

void epoch_order(const Run *r, int64_t epoch, uint32_t *order) {
  if (r->ts.data_order == DATA_ORDER_GLOBAL) {
    global_epoch_order(r, epoch, order);
    return;
  }
  for (long i = 0; i < r->slice_count; i++) order[i] = (uint32_t)i;
  if (!r->cfg->shuffle) return;
  UnetRng g;
  rng_seed(&g, (uint64_t)r->ts.seed * 1000003ull ^ ((uint64_t)epoch << 20) ^ (uint64_t)r->rank);
  rng_shuffle_u32_by_uniform(&g, order, (uint32_t)r->slice_count);
}

/* Shard order: the next local_batch of the rank's own shuffled slice.
 * Global order: step s takes order[s*B, (s+1)*B) of the global permutation and
 * rank r computes its contiguous part [offset_r, offset_r + local_batch_r). */
void batch_indices(const Run *r, const uint32_t *order, long s, long *index) {
  if (r->ts.data_order == DATA_ORDER_GLOBAL) {
    int B = r->ts.global_batch, P = r->size, q = r->rank;
    long offset = (long)q * (B / P) + (q < B % P ? q : B % P);
    for (int i = 0; i < r->local_batch; i++) index[i] = order[s * B + offset + i];
    return;
  }
  for (int i = 0; i < r->local_batch; i++) index[i] = r->slice_first + order[s * r->local_batch + i];
}
