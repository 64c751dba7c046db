/* bench_train.c - training speed and memory: images/s of full training steps
 * (forward, backward, gradient allreduce, Adam) at a global batch and size,
 * peak resident memory per rank and in all, where the time goes per layer
 * kind, and how much of the gradient communication the backward pass hid.
 * Runs as one process or under mpirun (the batch is split like unet-train's).
 * usage: [mpirun -np P] bench-train [--batch 32] [--size 160] [--steps 5] [--threads 2] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/adam.h"
#include "unet/comm.h"
#include "unet/model.h"
#include "unet/rng.h"
#include "unet/util.h"


int main(int argc, char **argv) {
  comm_init(&argc, &argv);
  int batch = 32, size = 160, steps = 5, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--batch")) batch = v;
    else if (!strcmp(argv[i], "--size")) size = v;
    else if (!strcmp(argv[i], "--steps")) steps = v;
    else if (!strcmp(argv[i], "--threads")) threads = v;
  }
  int rank = comm_rank(), ranks = comm_size();
  int local = batch / ranks + (rank < batch % ranks ? 1 : 0);
  unet_set_threads(threads);
  UNet m;
  char err[256];
  if (unet_create(&m, size, size, 3, err, sizeof err) != 0) unet_fatal("%s", err);
  unet_plan(&m, local);
  Adam opt;
  adam_init(&opt, m.num_params, 1e-4);
  size_t pix = (size_t)size * size;
  float *x = xmalloc(local * pix * 3 * sizeof(float), "x");
  uint8_t *labels = xmalloc(local * pix, "labels");
  UnetRng r;
  rng_seed(&r, 1 + rank);
  for (size_t i = 0; i < local * pix * 3; i++) x[i] = (float)rng_below(&r, 256);
  for (size_t i = 0; i < local * pix; i++) labels[i] = (uint8_t)rng_below(&r, 3);
  BatchNormReducer bn = comm_batchnorm_reducer();
  GradSync *sync = gradsync_create(m.grads, m.num_params, 1, 1 << 16);
  float scale = 1.0f / (batch * pix);
  double adam_time = 0, wait_time = 0, t_start = 0;
  for (int s = 0; s <= steps; s++) { /* step 0 is a warm-up */
    if (s == 1) {
      comm_barrier();
      unet_time_reset(&m);
      adam_time = wait_time = 0;
      t_start = unet_now();
    }
    memset(m.grads, 0, m.num_params * sizeof(float));
    gradsync_begin(sync);
    unet_train_step(&m, x, labels, local, scale, bn, gradsync_ready, sync);
    gradsync_finish(sync);
    wait_time += gradsync_last_wait(sync);
    double t0 = unet_now();
    adam_step(&opt, m.params, m.grads);
    adam_time += unet_now() - t0;
  }
  double total = unet_now() - t_start;
  /* what one blocking allreduce of the whole gradient costs, for comparison */
  double blocking = 0;
  if (ranks > 1) {
    GradSync *plain = gradsync_create(m.grads, m.num_params, 0, 0);
    for (int k = 0; k < 5; k++) {
      comm_barrier();
      gradsync_begin(plain);
      gradsync_finish(plain);
      blocking += gradsync_last_wait(plain) / 5;
    }
    gradsync_free(plain);
  }
  /* peak memory: every rank's, gathered on rank 0 for the total and the largest */
  double own_rss = unet_peak_rss_kb() / 1024.0, rss_total = 0, rss_max = 0;
  double *all = rank == 0 ? xmalloc(ranks * sizeof(double), "rss") : NULL;
  comm_gather_doubles(&own_rss, 1, all, 0);
  if (rank == 0) {
    for (int q = 0; q < ranks; q++) {
      rss_total += all[q];
      if (all[q] > rss_max) rss_max = all[q];
    }
    double kinds[TIME_KINDS];
    unet_time_breakdown(&m, kinds);
    printf("unet-c images_per_s=%.2f peak_rss_mb_total=%.0f peak_rss_mb_max_rank=%.0f ranks=%d threads=%d batch=%d "
           "size=%d steps=%d gemm=%s\n",
           steps * batch / total, rss_total, rss_max, ranks, threads, batch, size, steps, unet_gemm_backend());
    double other = total - adam_time - wait_time;
    for (int k = 0; k < TIME_KINDS; k++) other -= kinds[k];
    printf("time per step on rank 0 by layer kind (s, share):\n");
    for (int k = 0; k < TIME_KINDS; k++)
      printf("  %-18s %7.3f  %5.1f%%\n", unet_time_kind_names[k], kinds[k] / steps, 100 * kinds[k] / total);
    printf("  %-18s %7.3f  %5.1f%%\n", "adam", adam_time / steps, 100 * adam_time / total);
    printf("  %-18s %7.3f  %5.1f%%\n", "allreduce wait", wait_time / steps, 100 * wait_time / total);
    printf("  %-18s %7.3f  %5.1f%%\n", "other (zeroing..)", other / steps, 100 * other / total);
    if (ranks > 1)
      printf("gradient allreduce: %.1f MB; a blocking allreduce takes %.3f s, the overlapped step waited %.3f s: "
             "%.0f%% hidden\n",
             m.num_params * 4 / 1e6, blocking, wait_time / steps,
             blocking > 0 ? 100 * (1 - (wait_time / steps) / blocking) : 0.0);
  }
  xfree(all);
  xfree(x);
  xfree(labels);
  gradsync_free(sync);
  adam_free(&opt);
  unet_destroy(&m);
  comm_finalize();
  return 0;
}
