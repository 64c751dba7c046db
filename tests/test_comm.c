/* test_comm.c - the MPI layer alone (run under mpirun by test_comm.sh):
 *   test-comm sums      bucketed overlapping allreduce == the exact sum of every
 *                       rank's gradient; BN reducer and gather in rank order
 *   test-comm mismatch  rank 1 holds different weights: comm_check_identical must
 *                       stop the whole job with a message naming rank 1 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "unet/comm.h"
#include "unet/util.h"

static int test_sums(void) {
  int rank = comm_rank(), size = comm_size();
  /* grads[i] = (rank + 1) * (i mod 1000) / 2: halves of integers below 2^24
   * are exact in float, so the sum over P ranks, P(P+1)/2 * (i mod 1000) / 2,
   * is exact whatever the reduction order */
  enum { N = 300000 };
  float *grads = xmalloc(N * sizeof(float), "grads");
  for (int i = 0; i < N; i++) grads[i] = (float)(rank + 1) * (float)(i % 1000) * 0.5f;
  GradSync *g = gradsync_create(grads, N, 1, 1 << 14);
  gradsync_begin(g);
  /* the backward pass reports ranges from the end of the arena to its start */
  for (size_t off = N; off > 0;) {
    off = off > 50000 ? off - 50000 : 0;
    gradsync_ready(off, g);
  }
  gradsync_finish(g);
  double factor = size * (size + 1) / 2.0;
  long bad = 0;
  for (int i = 0; i < N; i++)
    if (grads[i] != (float)(factor * (i % 1000) * 0.5)) bad++;
  CHECK_MSG(bad == 0, "rank %d: %ld gradient elements differ from the exact sum", rank, bad);
  CHECK_MSG(gradsync_last_buckets(g) >= (size > 1 ? 2 : 0), "rank %d: %d buckets", rank, gradsync_last_buckets(g));
  gradsync_free(g);
  xfree(grads);

  BatchNormReducer red = comm_batchnorm_reducer();
  double v[3] = {rank, 1.0, 0.25};
  if (red.sum) red.sum(v, 3, red.ctx);
  CHECK(v[0] == size * (size - 1) / 2.0 && v[1] == size && v[2] == 0.25 * size);

  double mine[2] = {rank * 10.0, rank * 10.0 + 1};
  double all[64];
  comm_gather_doubles(mine, 2, all, 0);
  if (rank == 0)
    for (int q = 0; q < size && q < 32; q++) CHECK(all[2 * q] == q * 10.0 && all[2 * q + 1] == q * 10.0 + 1);
  float same[4] = {1, 2, 3, 4};
  comm_check_identical(same, sizeof same, "test weights"); /* equal: must return */
  if (check_failures) return 1;
  if (rank == 0) printf("all checks passed on %d rank(s)\n", size);
  return 0;
}

static int test_mismatch(void) {
  float w[4] = {1, 2, 3, 4};
  if (comm_rank() == 1) w[2] = 3.5f;
  comm_check_identical(w, sizeof w, "model weights");
  fprintf(stderr, "rank %d: comm_check_identical returned despite a mismatch\n", comm_rank());
  return 1;
}

int main(int argc, char **argv) {
  unet_set_progname("test-comm");
  comm_init(&argc, &argv);
  int rc = argc > 1 && strcmp(argv[1], "mismatch") == 0 ? test_mismatch() : test_sums();
  comm_finalize();
  return rc;
}
