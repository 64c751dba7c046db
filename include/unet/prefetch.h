/* prefetch.h - a background thread that prepares the next training batch
 * (read the HDF5 chunks, augment, convert to float) while the current step
 * computes. Double-buffered: the trainer takes buffer A for step s and at once
 * submits step s+1, which the thread fills into buffer B. At most one request
 * is outstanding; while it is, the caller must not use the ShardSet itself
 * (Debian's HDF5 is built thread-safe, but the reader handles are not shared
 * on purpose: the order of reads then never depends on timing).
 * The data a step sees is identical with and without prefetch: the same
 * shardset_read_batch call, only on another thread. */
#ifndef UNET_PREFETCH_H
#define UNET_PREFETCH_H
#include <stddef.h>
#include <stdint.h>

#include "unet/augment.h"
#include "unet/data_loader.h"

typedef struct Prefetcher Prefetcher;

/* Buffers for up to max_batch samples; threaded 0 runs every request in
 * prefetch_take instead (same results, no overlap). */
Prefetcher *prefetch_create(ShardSet *set, int max_batch, int threaded);
void prefetch_free(Prefetcher *p);
/* Starts preparing samples index[0..n) (copied) with the given augmentation. */
void prefetch_submit(Prefetcher *p, const long *index, int n, const AugmentConfig *aug, uint64_t seed, int64_t epoch);
/* Waits for the request, returns its batch: x [n,H,W,3] floats, labels [n,H,W].
 * The pointers stay valid until the next-but-one take. 0 ok, -1 with the read
 * error in err. *waited_s: seconds this call blocked. */
int prefetch_take(Prefetcher *p, float **x, uint8_t **labels, double *waited_s, char *err, size_t err_len);
/* Waits for an outstanding request and discards it (before a checkpoint,
 * validation or the end of an epoch). */
void prefetch_drain(Prefetcher *p);

#endif
