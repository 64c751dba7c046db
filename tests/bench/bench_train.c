/* bench_train.c - training speed and memory of one process: images/s of full
 * training steps (forward, backward, Adam) at a given batch and size, peak
 * resident memory, and where the time goes per layer kind.
 * usage: bench-train [--batch 32] [--size 160] [--steps 5] [--threads 2] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/adam.h"
#include "unet/model.h"
#include "unet/rng.h"
#include "unet/util.h"

extern void openblas_set_num_threads(int num_threads);

int main(int argc, char **argv) {
  int batch = 32, size = 160, steps = 5, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--batch")) batch = v;
    else if (!strcmp(argv[i], "--size")) size = v;
    else if (!strcmp(argv[i], "--steps")) steps = v;
    else if (!strcmp(argv[i], "--threads")) threads = v;
  }
  openblas_set_num_threads(threads);
  UNet m;
  char err[256];
  if (unet_create(&m, size, size, 3, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  unet_plan(&m, batch);
  Adam opt;
  adam_init(&opt, m.num_params, 1e-4);
  size_t pix = (size_t)size * size;
  float *x = xmalloc(batch * pix * 3 * sizeof(float), "x");
  uint8_t *labels = xmalloc(batch * pix, "labels");
  UnetRng r;
  rng_seed(&r, 1);
  for (size_t i = 0; i < batch * pix * 3; i++) x[i] = (float)rng_below(&r, 256);
  for (size_t i = 0; i < batch * pix; i++) labels[i] = (uint8_t)rng_below(&r, 3);
  BatchNormReducer none = {0};
  float scale = 1.0f / (batch * pix);
  double adam_time = 0, t_start = 0;
  for (int s = 0; s <= steps; s++) { /* step 0 is a warm-up */
    if (s == 1) {
      unet_time_reset(&m);
      adam_time = 0;
      t_start = unet_now();
    }
    memset(m.grads, 0, m.num_params * sizeof(float));
    unet_train_step(&m, x, labels, batch, scale, none, NULL, NULL);
    double t0 = unet_now();
    adam_step(&opt, m.params, m.grads);
    adam_time += unet_now() - t0;
  }
  double total = unet_now() - t_start;
  double kinds[TIME_KINDS];
  unet_time_breakdown(&m, kinds);
  printf("unet-c images_per_s=%.2f peak_rss_mb=%.0f batch=%d size=%d threads=%d steps=%d\n", steps * batch / total,
         unet_peak_rss_kb() / 1024.0, batch, size, threads, steps);
  double other = total - adam_time;
  for (int k = 0; k < TIME_KINDS; k++) other -= kinds[k];
  printf("time per step by layer kind (s, share):\n");
  for (int k = 0; k < TIME_KINDS; k++)
    printf("  %-18s %7.3f  %5.1f%%\n", unet_time_kind_names[k], kinds[k] / steps, 100 * kinds[k] / total);
  printf("  %-18s %7.3f  %5.1f%%\n", "adam", adam_time / steps, 100 * adam_time / total);
  printf("  %-18s %7.3f  %5.1f%%\n", "other (zeroing..)", other / steps, 100 * other / total);
  xfree(x);
  xfree(labels);
  adam_free(&opt);
  unet_destroy(&m);
  return 0;
}
