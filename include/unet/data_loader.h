/* data_loader.h - the trainer's view of a preprocessed data directory: the
 * training shards (train-*.h5, in name order) as one global index space, and
 * the validation file (val.h5, optional). Samples are read on demand, one
 * HDF5 chunk each, so a rank only touches the samples it trains on. */
#ifndef UNET_DATA_LOADER_H
#define UNET_DATA_LOADER_H
#include <stddef.h>
#include <stdint.h>

#include "unet/augment.h"
#include "unet/shard.h"

typedef struct {
  int num_files;
  char **paths;
  ShardReader **readers;
  long *first;  /* global index of each file's sample 0 */
  long total;
  int height, width, num_classes;
  int mask_values[256];
  int has_ignore, ignore_value; /* the files' ignore_value (class id SHARD_IGNORE_ID marks those pixels) */
} ShardSet;

/* kind "train": every DIR/train-*.h5; kind "val": DIR/val.h5, where a missing
 * file gives an empty set (total 0). 0 ok, -1 with reason in err. */
int shardset_open(ShardSet *s, const char *dir, const char *kind, char *err, size_t err_len);
/* One shard file of any kind (unet-evaluate's --data FILE.h5). */
int shardset_open_file(ShardSet *s, const char *path, char *err, size_t err_len);
void shardset_close(ShardSet *s);
int shardset_read(ShardSet *s, long index, uint8_t *image, uint8_t *mask, char *name, size_t name_len, char *err,
                  size_t err_len);

/* Read samples index[0..n) into x [n,H,W,3] (float 0..255, as the Keras example
 * feeds the network; the model then reads x in place) and labels [n,H,W]; the
 * shard reader has checked every label < num_classes (or SHARD_IGNORE_ID in
 * files with an ignore value).
 * aug NULL (or all off): the stored samples; else each sample i is augmented
 * with the draws of (seed, epoch, index[i]). scratch: SHARDSET_SCRATCH_BYTES(H, W). */
#define SHARDSET_SCRATCH_BYTES(H, W) ((size_t)(H) * (W) * 7) /* image, mask, augmented image */
int shardset_read_batch(ShardSet *s, const long *index, int n, const AugmentConfig *aug, uint64_t seed, int64_t epoch,
                        float *x, uint8_t *labels, uint8_t *scratch, char *err, size_t err_len);

#endif
