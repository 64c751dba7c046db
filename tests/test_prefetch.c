/* test_prefetch.c - the background batch reader (src/data/prefetch.c) gives
 * the step exactly the data a direct read gives, threaded or not, with and
 * without augmentation; a read error comes back from take with its reason;
 * everything is freed (this test runs with LeakSanitizer in the sanitizer pass). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "unet/data_loader.h"
#include "unet/prefetch.h"

enum { H = 16, W = 24, N = 11, B = 3 };

int main(void) {
  char dir[] = "/tmp/unet-prefetch.XXXXXX", path[256], err[1024];
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/train-00000-of-00001.h5", dir);
  ShardInfo info;
  memset(&info, 0, sizeof info);
  info.height = H;
  info.width = W;
  info.num_classes = 3;
  info.mask_values[0] = 1, info.mask_values[1] = 2, info.mask_values[2] = 3;
  snprintf(info.kind, sizeof info.kind, "train");
  ShardWriter *w = shard_writer_open(path, &info, N, err, sizeof err);
  CHECK_MSG(w != NULL, "%s", err);
  static uint8_t img[H * W * 3], mask[H * W];
  for (int s = 0; s < N && w; s++) {
    for (int i = 0; i < H * W * 3; i++) img[i] = (uint8_t)(i * 7 + s * 31);
    for (int i = 0; i < H * W; i++) mask[i] = (uint8_t)((i + s) % 3);
    char name[32];
    snprintf(name, sizeof name, "s%02d", s);
    CHECK(shard_writer_append(w, img, mask, name, err, sizeof err) == 0);
  }
  CHECK(w && shard_writer_close(w, err, sizeof err) == 0);
  ShardSet set;
  CHECK_MSG(shardset_open(&set, dir, "train", err, sizeof err) == 0, "%s", err);
  AugmentConfig aug;
  augment_defaults(&aug);
  aug.flip = aug.scale = aug.color = 1;
  static float want_x[B * H * W * 3];
  static uint8_t want_l[B * H * W], scratch[SHARDSET_SCRATCH_BYTES(H, W)];
  for (int threaded = 0; threaded < 2; threaded++)
    for (int augmenting = 0; augmenting < 2; augmenting++) {
      Prefetcher *p = prefetch_create(&set, B, threaded);
      const AugmentConfig *a = augmenting ? &aug : NULL;
      long index[B] = {4, 0, 9};
      prefetch_submit(p, index, B, a, 1337, 2);
      int same = 1;
      for (int step = 0; step < 6; step++) {
        float *x;
        uint8_t *labels;
        double waited;
        long now[B];
        memcpy(now, index, sizeof now);
        CHECK(prefetch_take(p, &x, &labels, &waited, err, sizeof err) == 0);
        for (int i = 0; i < B; i++) index[i] = (index[i] + 5 + i) % N; /* the next batch, read during "the step" */
        prefetch_submit(p, index, B, a, 1337, 2);
        CHECK(shardset_read_batch(&set, now, B, a, 1337, 2, want_x, want_l, scratch, err, sizeof err) == 0);
        same &= !memcmp(x, want_x, sizeof want_x) && !memcmp(labels, want_l, sizeof want_l);
      }
      CHECK_MSG(same, "threaded %d, augmented %d: the prefetched batch differs from a direct read", threaded,
                augmenting);
      prefetch_drain(p);
      /* an unreadable sample: the error comes back from take, naming the sample */
      long bad[B] = {1, N + 4, 2};
      prefetch_submit(p, bad, B, a, 1337, 2);
      float *x;
      uint8_t *labels;
      CHECK(prefetch_take(p, &x, &labels, NULL, err, sizeof err) != 0 && strstr(err, "out of range"));
      CHECK(prefetch_take(p, &x, &labels, NULL, err, sizeof err) != 0 && strstr(err, "nothing was submitted"));
      prefetch_submit(p, bad, 1, a, 1337, 2); /* freed with a request outstanding */
      prefetch_free(p);
    }
  shardset_close(&set);
  unlink(path);
  rmdir(dir);
  CHECK_DONE();
}
