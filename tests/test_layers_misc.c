/* test_layers_misc.c - BatchNorm (training vs a double reference with
 * finite-difference gradients, two replicas through a real reducer, the
 * moving statistics, inference), max pooling (hand-computed 4x4 and 5x5 plus
 * finite differences), upsampling, ReLU, Add and the softmax crossentropy. */
#include <pthread.h>

#include "layers_check.h"
#include "unet/layers.h"

static const BatchNormReducer NO_REDUCER = {NULL, NULL};

/* ---- BatchNorm ---------------------------------------------------------------*/
typedef struct {
  long m;
  int c;
  float eps;
  Pair x, gamma, beta;
  double *r;
} BnCase;

static void ref_bn(double *y, double *mean, double *var, const BnCase *t) {
  for (int ch = 0; ch < t->c; ch++) {
    double s = 0, q = 0;
    for (long i = 0; i < t->m; i++) s += t->x.d[i * t->c + ch];
    double mu = s / t->m;
    for (long i = 0; i < t->m; i++) q += (t->x.d[i * t->c + ch] - mu) * (t->x.d[i * t->c + ch] - mu);
    double v = q / t->m;
    if (mean) mean[ch] = mu;
    if (var) var[ch] = v;
    for (long i = 0; i < t->m; i++)
      y[i * t->c + ch] = t->gamma.d[ch] * (t->x.d[i * t->c + ch] - mu) / sqrt(v + t->eps) + t->beta.d[ch];
  }
}

static double bn_loss(void *ctx) {
  BnCase *t = ctx;
  double *y = xmalloc((size_t)t->x.len * sizeof(double), "reference output");
  ref_bn(y, NULL, NULL, t);
  double l = 0;
  for (long i = 0; i < t->x.len; i++) l += t->r[i] * y[i];
  xfree(y);
  return l;
}

/* Exactly the scratch the BatchNorm functions ask for (an overrun shows under ASan). */
static float *bn_scratch(int c) { return xmalloc(batchnorm_workspace_floats(c) * sizeof(float), "batchnorm scratch"); }

static void test_batchnorm_train(long m, int c, float offset, uint64_t seed) {
  char name[100], what[200];
  snprintf(name, sizeof name, "batchnorm M=%ld C=%d offset %g", m, c, offset);
  UnetRng rng;
  rng_seed(&rng, seed);
  BnCase t = {m, c, 1e-3f, pair_alloc(m * c), pair_alloc(c), pair_alloc(c), NULL};
  pair_random(t.x, &rng, offset - 2, offset + 2);
  pair_random(t.gamma, &rng, 0.5f, 1.5f);
  pair_random(t.beta, &rng, -1, 1);
  /* Give channel 0 a tiny spread so eps matters. */
  for (long i = 0; i < m; i++) {
    t.x.f[i * c] = offset + 0.01f * rng_uniform_range(&rng, -1, 1);
    t.x.d[i * c] = t.x.f[i * c];
  }
  double *ref = xmalloc((size_t)m * c * sizeof(double), "reference"), *mean = xmalloc((size_t)c * sizeof(double), "m"),
         *var = xmalloc((size_t)c * sizeof(double), "v");
  ref_bn(ref, mean, var, &t);
  float *out = floats_zero(m * c), *save_mean = floats_zero(c), *save_invstd = floats_zero(c);
  float *mm = floats_zero(c), *mv = floats_zero(c);
  double *mm_want = xmalloc((size_t)c * sizeof(double), "w"), *mv_want = xmalloc((size_t)c * sizeof(double), "w"),
         *invstd_want = xmalloc((size_t)c * sizeof(double), "w");
  for (int ch = 0; ch < c; ch++) {
    mm[ch] = rng_uniform_range(&rng, -1, 1);
    mv[ch] = rng_uniform_range(&rng, 0.5f, 2);
    mm_want[ch] = 0.99 * mm[ch] + 0.01 * mean[ch];
    mv_want[ch] = 0.99 * mv[ch] + 0.01 * var[ch];
    invstd_want[ch] = 1 / sqrt(var[ch] + 1e-3);
  }
  float *ws = bn_scratch(c);
  const size_t wsn = batchnorm_workspace_floats(c);
  batchnorm_forward_train(out, save_mean, save_invstd, mm, mv, t.x.f, t.gamma.f, t.beta.f, m, c, 0.99f, 1e-3f,
                          NO_REDUCER, ws, wsn);
  snprintf(what, sizeof what, "%s forward", name);
  check_arrays_close(what, out, ref, m * c, 2e-5, 2e-5);
  snprintf(what, sizeof what, "%s saved mean", name);
  check_arrays_close(what, save_mean, mean, c, 1e-6, 1e-6);
  snprintf(what, sizeof what, "%s saved invstd", name);
  check_arrays_close(what, save_invstd, invstd_want, c, 0, 1e-4);
  snprintf(what, sizeof what, "%s moving mean", name);
  check_arrays_close(what, mm, mm_want, c, 1e-6, 1e-6);
  snprintf(what, sizeof what, "%s moving variance", name);
  check_arrays_close(what, mv, mv_want, c, 1e-6, 1e-5);

  /* In place gives the same output. */
  float *inplace = floats_zero(m * c);
  memcpy(inplace, t.x.f, (size_t)m * c * sizeof(float));
  batchnorm_forward_train(inplace, save_mean, save_invstd, NULL, NULL, inplace, t.gamma.f, t.beta.f, m, c, 0.99f,
                          1e-3f, NO_REDUCER, ws, wsn);
  snprintf(what, sizeof what, "%s in-place forward", name);
  check_float_arrays_close(what, inplace, out, m * c, 0, 0);

  Pair r = pair_alloc(m * c);
  pair_random(r, &rng, -1, 1);
  t.r = r.d;
  float *din = floats_zero(m * c), *dg = floats_zero(c), *dbeta = floats_zero(c);
  batchnorm_backward(din, dg, dbeta, r.f, t.x.f, save_mean, save_invstd, t.gamma.f, m, c, NO_REDUCER, 1, ws, wsn);
  snprintf(what, sizeof what, "%s d/din", name);
  check_gradient(what, t.x.d, m * c, din, bn_loss, &t, 2e-4);
  snprintf(what, sizeof what, "%s d/dgamma", name);
  check_gradient(what, t.gamma.d, c, dg, bn_loss, &t, 1e-4);
  snprintf(what, sizeof what, "%s d/dbeta", name);
  check_gradient(what, t.beta.d, c, dbeta, bn_loss, &t, 1e-4);
  float *din2 = floats_zero(m * c), *dg2 = floats_zero(c);
  for (long i = 0; i < m * c; i++) din2[i] = 2 * din[i];
  for (int i = 0; i < c; i++) dg2[i] = 2 * dg[i];
  batchnorm_backward(din, dg, NULL, r.f, t.x.f, save_mean, save_invstd, t.gamma.f, m, c, NO_REDUCER, 1, ws, wsn);
  snprintf(what, sizeof what, "%s backward twice: din", name);
  check_float_arrays_close(what, din, din2, m * c, 1e-6, 1e-5);
  snprintf(what, sizeof what, "%s backward twice: dgamma", name);
  check_float_arrays_close(what, dg, dg2, c, 1e-6, 1e-5);

  xfree(ws);
  xfree(din);
  xfree(dg);
  xfree(dbeta);
  xfree(din2);
  xfree(dg2);
  pair_free(r);
  xfree(inplace);
  xfree(out);
  xfree(save_mean);
  xfree(save_invstd);
  xfree(mm);
  xfree(mv);
  xfree(mm_want);
  xfree(mv_want);
  xfree(invstd_want);
  xfree(ref);
  xfree(mean);
  xfree(var);
  pair_free(t.x);
  pair_free(t.gamma);
  pair_free(t.beta);
}

/* Two replicas as two threads whose reducer is a real element-wise sum:
 * both publish their buffer, one adds, both read the total back. */
typedef struct {
  pthread_barrier_t barrier;
  double *values[2];
  double total[256];
} ReplicaGroup;
typedef struct {
  ReplicaGroup *group;
  int rank;
  long m;
  int c;
  const float *x, *dy, *gamma, *beta;
  float *out, *mean, *invstd, *mm, *mv, *din, *dgamma, *dbeta;
} Replica;

static void two_replica_sum(double *values, int count, void *ctx) {
  Replica *rep = ctx;
  ReplicaGroup *g = rep->group;
  if (count > 256) abort();
  g->values[rep->rank] = values;
  pthread_barrier_wait(&g->barrier);
  if (rep->rank == 0)
    for (int i = 0; i < count; i++) g->total[i] = g->values[0][i] + g->values[1][i];
  pthread_barrier_wait(&g->barrier);
  memcpy(values, g->total, (size_t)count * sizeof(double));
  pthread_barrier_wait(&g->barrier); /* nobody reuses total before both copied */
}

static void *replica_main(void *arg) {
  Replica *rep = arg;
  BatchNormReducer red = {two_replica_sum, rep};
  float *ws = bn_scratch(rep->c);
  const size_t wsn = batchnorm_workspace_floats(rep->c);
  batchnorm_forward_train(rep->out, rep->mean, rep->invstd, rep->mm, rep->mv, rep->x, rep->gamma, rep->beta, rep->m,
                          rep->c, 0.99f, 1e-3f, red, ws, wsn);
  batchnorm_backward(rep->din, rep->dgamma, rep->dbeta, rep->dy, rep->x, rep->mean, rep->invstd, rep->gamma, rep->m,
                     rep->c, red, 1, ws, wsn);
  xfree(ws);
  return NULL;
}

static void test_batchnorm_two_replicas(void) {
  enum { M = 70, M0 = 37, C = 5 };
  UnetRng rng;
  rng_seed(&rng, 77);
  float x[M * C], dy[M * C], gamma[C], beta[C];
  for (int i = 0; i < M * C; i++) {
    x[i] = rng_uniform_range(&rng, 3, 9);
    dy[i] = rng_uniform_range(&rng, -1, 1);
  }
  for (int i = 0; i < C; i++) {
    gamma[i] = rng_uniform_range(&rng, 0.5f, 2);
    beta[i] = rng_uniform_range(&rng, -1, 1);
  }
  /* One replica holding the whole batch. */
  float out[M * C], mean[C], invstd[C], mm[C] = {0}, mv[C] = {1, 1, 1, 1, 1}, din[M * C] = {0}, dg[C] = {0},
                                                                      db[C] = {0};
  float *ws = bn_scratch(C);
  batchnorm_forward_train(out, mean, invstd, mm, mv, x, gamma, beta, M, C, 0.99f, 1e-3f, NO_REDUCER, ws,
                          batchnorm_workspace_floats(C));
  batchnorm_backward(din, dg, db, dy, x, mean, invstd, gamma, M, C, NO_REDUCER, 1, ws, batchnorm_workspace_floats(C));
  xfree(ws);

  /* The same batch split 37 + 33 over two replicas. */
  ReplicaGroup group;
  pthread_barrier_init(&group.barrier, NULL, 2);
  float out2[M * C], mean2[2][C], invstd2[2][C], mm2[2][C] = {{0}}, mv2[2][C], din2[M * C] = {0}, dg2[2][C] = {{0}},
                                                 db2[2][C] = {{0}};
  Replica reps[2];
  for (int k = 0; k < 2; k++) {
    long r0 = k ? M0 : 0;
    for (int ch = 0; ch < C; ch++) mv2[k][ch] = 1;
    reps[k] = (Replica){&group, k, k ? M - M0 : M0, C, x + r0 * C, dy + r0 * C, gamma, beta, out2 + r0 * C,
                        mean2[k], invstd2[k], mm2[k], mv2[k], din2 + r0 * C, dg2[k], db2[k]};
  }
  pthread_t thread;
  pthread_create(&thread, NULL, replica_main, &reps[1]);
  replica_main(&reps[0]);
  pthread_join(thread, NULL);
  pthread_barrier_destroy(&group.barrier);

  check_float_arrays_close("batchnorm 2 replicas: output", out2, out, M * C, 1e-5, 1e-5);
  check_float_arrays_close("batchnorm 2 replicas: din", din2, din, M * C, 1e-6, 1e-5);
  for (int k = 0; k < 2; k++) {
    check_float_arrays_close("batchnorm 2 replicas: mean", mean2[k], mean, C, 1e-6, 1e-6);
    check_float_arrays_close("batchnorm 2 replicas: invstd", invstd2[k], invstd, C, 0, 1e-5);
    check_float_arrays_close("batchnorm 2 replicas: moving mean", mm2[k], mm, C, 1e-6, 1e-6);
    check_float_arrays_close("batchnorm 2 replicas: moving var", mv2[k], mv, C, 1e-6, 1e-6);
  }
  /* dgamma/dbeta are local sums: the replicas' add up to the full batch's. */
  float dg_sum[C], db_sum[C];
  for (int ch = 0; ch < C; ch++) {
    dg_sum[ch] = dg2[0][ch] + dg2[1][ch];
    db_sum[ch] = db2[0][ch] + db2[1][ch];
    CHECK_MSG(fabsf(dg2[0][ch] - dg[ch]) > 1e-3f, "replica 0's dgamma[%d] should be a partial sum", ch);
  }
  check_float_arrays_close("batchnorm 2 replicas: dgamma sum", dg_sum, dg, C, 1e-5, 1e-5);
  check_float_arrays_close("batchnorm 2 replicas: dbeta sum", db_sum, db, C, 1e-5, 1e-5);
}

static void test_batchnorm_infer(void) {
  /* 2 pixels x 2 channels, by hand: y = gamma (x - mm) / sqrt(mv + eps) + beta */
  const float x[4] = {1, 2, 3, 4}, gamma[2] = {2, 0.5f}, beta[2] = {0.25f, -1}, mm[2] = {1, 3}, mv[2] = {3.999f, 0.999f};
  float y[4], *ws = bn_scratch(2);
  batchnorm_forward_infer(y, x, gamma, beta, mm, mv, 2, 2, 1e-3f, ws, batchnorm_workspace_floats(2));
  xfree(ws);
  /* sqrt(4) = 2, sqrt(1) = 1 */
  const float want[4] = {0.25f, -1.5f, 2.25f, -0.5f};
  check_float_arrays_close("batchnorm inference", y, want, 4, 1e-6, 1e-6);
}

/* The fused BatchNorm+ReLU functions against the unfused pair, bit for bit
 * (memcmp): forward in training and inference, and the backward given the
 * ReLU's gradient, which holds -0 and values where the ReLU is off. */
static void test_batchnorm_relu_fused(long m, int c, uint64_t seed) {
  char what[120];
  UnetRng rng;
  rng_seed(&rng, seed);
  size_t len = (size_t)m * c;
  float *x = xmalloc(len * sizeof(float), "x"), *dout = xmalloc(len * sizeof(float), "dout");
  float *g = xmalloc((size_t)c * sizeof(float), "gamma"), *b = xmalloc((size_t)c * sizeof(float), "beta");
  for (size_t i = 0; i < len; i++) x[i] = rng_uniform_range(&rng, -3, 5);
  for (size_t i = 0; i < len; i++) dout[i] = i % 7 == 0 ? -0.0f : rng_uniform_range(&rng, -1, 1);
  for (int i = 0; i < c; i++) g[i] = rng_uniform_range(&rng, 0.5f, 1.5f), b[i] = rng_uniform_range(&rng, -1, 1);
  float *ws = bn_scratch(c);
  size_t wsn = batchnorm_workspace_floats(c);
  float *y1 = xmalloc(len * sizeof(float), "y1"), *y2 = xmalloc(len * sizeof(float), "y2");
  float mean1[64], inv1[64], mean2[64], inv2[64], mm1[64], mv1[64], mm2[64], mv2[64];
  for (int i = 0; i < c; i++) mm1[i] = mm2[i] = 0.1f * i, mv1[i] = mv2[i] = 1 + 0.2f * i;
  batchnorm_forward_train(y1, mean1, inv1, mm1, mv1, x, g, b, m, c, 0.99f, 1e-3f, NO_REDUCER, ws, wsn);
  relu_forward(y1, y1, (long)len);
  batchnorm_relu_forward_train(y2, mean2, inv2, mm2, mv2, x, g, b, m, c, 0.99f, 1e-3f, NO_REDUCER, ws, wsn);
  snprintf(what, sizeof what, "fused BN+ReLU train M=%ld C=%d: same bits", m, c);
  CHECK_MSG(!memcmp(y1, y2, len * sizeof(float)) && !memcmp(mean1, mean2, c * sizeof(float)) &&
                !memcmp(inv1, inv2, c * sizeof(float)) && !memcmp(mm1, mm2, c * sizeof(float)) &&
                !memcmp(mv1, mv2, c * sizeof(float)),
            "%s", what);
  /* backward: unfused = relu_backward into zeros, then batchnorm_backward */
  float *gr = floats_zero((long)len), *d1 = floats_zero((long)len), *d2 = floats_zero((long)len);
  float *dg1 = floats_zero(c), *db1 = floats_zero(c), *dg2 = floats_zero(c), *db2 = floats_zero(c);
  relu_backward(gr, dout, y1, (long)len);
  batchnorm_backward(d1, dg1, db1, gr, x, mean1, inv1, g, m, c, NO_REDUCER, 1, ws, wsn);
  batchnorm_relu_backward(d2, dg2, db2, dout, y2, x, mean2, inv2, g, m, c, NO_REDUCER, 1, ws, wsn);
  snprintf(what, sizeof what, "fused BN+ReLU backward M=%ld C=%d: same bits", m, c);
  CHECK_MSG(!memcmp(d1, d2, len * sizeof(float)) && !memcmp(dg1, dg2, c * sizeof(float)) &&
                !memcmp(db1, db2, c * sizeof(float)),
            "%s", what);
  /* accumulate 0 writes din without reading it (NaN there must vanish) and
   * gives the bits of += onto zeros, -0 sums included (dout has -0s). */
  {
    float *a1 = xmalloc(len * sizeof(float), "d1 assigned"), *a2 = xmalloc(len * sizeof(float), "d2 assigned");
    memset(a1, 0xff, len * sizeof(float));
    memset(a2, 0xff, len * sizeof(float));
    batchnorm_backward(a1, NULL, NULL, gr, x, mean1, inv1, g, m, c, NO_REDUCER, 0, ws, wsn);
    batchnorm_relu_backward(a2, NULL, NULL, dout, y2, x, mean2, inv2, g, m, c, NO_REDUCER, 0, ws, wsn);
    snprintf(what, sizeof what, "BN backward M=%ld C=%d with accumulate 0: the bits of += onto zeros", m, c);
    CHECK_MSG(!memcmp(a1, d1, len * sizeof(float)) && !memcmp(a2, d2, len * sizeof(float)), "%s", what);
    xfree(a1), xfree(a2);
  }
  long off = 0;
  for (size_t i = 0; i < len; i++) off += y2[i] == 0.0f;
  CHECK_MSG(off > (long)len / 10 && off < (long)len * 9 / 10, "the ReLU is off on %ld of %zu values", off, len);
  /* inference */
  batchnorm_forward_infer(y1, x, g, b, mm1, mv1, m, c, 1e-3f, ws, wsn);
  relu_forward(y1, y1, (long)len);
  batchnorm_relu_forward_infer(y2, x, g, b, mm1, mv1, m, c, 1e-3f, ws, wsn);
  snprintf(what, sizeof what, "fused BN+ReLU inference M=%ld C=%d: same bits", m, c);
  CHECK_MSG(!memcmp(y1, y2, len * sizeof(float)), "%s", what);
  printf("ok: fused BatchNorm+ReLU M=%ld C=%d: forward, backward and inference bit-identical to the pair (ReLU off "
         "on %ld of %zu)\n",
         m, c, off, len);
  xfree(x), xfree(dout), xfree(g), xfree(b), xfree(ws), xfree(y1), xfree(y2);
  xfree(gr), xfree(d1), xfree(d2), xfree(dg1), xfree(db1), xfree(dg2), xfree(db2);
}

/* ---- MaxPooling2D(3, stride 2, same) ---------------------------------------*/
static void test_maxpool_hand(void) {
  /* 4x4 (even: pad 0 before, 1 after -> windows rows/cols {0,1,2}, {2,3}),
   * all values negative so a zero padding that could win would show. */
  float in4[16];
  for (int i = 0; i < 16; i++) in4[i] = -(float)i - 1;
  float out4[4];
  int32_t arg4[4];
  maxpool3s2_forward(out4, arg4, in4, 1, 4, 4, 1);
  const float want4[4] = {-1, -3, -9, -11};
  const int32_t want_arg4[4] = {0, 2, 8, 10};
  check_float_arrays_close("maxpool 4x4 values", out4, want4, 4, 0, 0);
  for (int i = 0; i < 4; i++) CHECK_MSG(arg4[i] == want_arg4[i], "maxpool 4x4 argmax[%d] = %d, want %d", i, arg4[i],
                                        want_arg4[i]);

  /* 5x5 (odd: pad 1 before and after -> windows {0,1}, {1,2,3}, {3,4}),
   * channel 0 a falling ramp (winner at the window's top-left), channel 1 a
   * rising one (winner at its bottom-right). */
  float in5[50];
  for (int i = 0; i < 25; i++) {
    in5[2 * i] = -(float)i - 1;
    in5[2 * i + 1] = (float)i;
  }
  float out5[18];
  int32_t arg5[18];
  maxpool3s2_forward(out5, arg5, in5, 1, 5, 5, 2);
  const int32_t want_arg5_c0[9] = {0, 1, 3, 5, 6, 8, 15, 16, 18};
  const int32_t want_arg5_c1[9] = {6, 8, 9, 16, 18, 19, 21, 23, 24};
  for (int p = 0; p < 9; p++) {
    CHECK_MSG(arg5[2 * p] == want_arg5_c0[p] && out5[2 * p] == -(float)want_arg5_c0[p] - 1,
              "maxpool 5x5 ch0 [%d]: %g at %d", p, out5[2 * p], arg5[2 * p]);
    CHECK_MSG(arg5[2 * p + 1] == want_arg5_c1[p] && out5[2 * p + 1] == (float)want_arg5_c1[p],
              "maxpool 5x5 ch1 [%d]: %g at %d", p, out5[2 * p + 1], arg5[2 * p + 1]);
  }
  /* Backward routes each gradient to its winner, summing overlaps. */
  float dout[18], din[50];
  for (int i = 0; i < 18; i++) dout[i] = (float)(i + 1);
  for (int i = 0; i < 50; i++) din[i] = 0.5f;
  maxpool3s2_backward(din, dout, arg5, 1, 5, 5, 2);
  float want_din[50];
  for (int i = 0; i < 50; i++) want_din[i] = 0.5f;
  for (int p = 0; p < 9; p++) {
    want_din[2 * want_arg5_c0[p]] += dout[2 * p];
    want_din[2 * want_arg5_c1[p] + 1] += dout[2 * p + 1];
  }
  check_float_arrays_close("maxpool 5x5 backward", din, want_din, 50, 0, 0);

  /* Ties (a constant image) go to the first cell of the window; backward
   * then sums the overlapping windows' gradients on shared winners. */
  float flat[16], out_flat[4], dflat[16] = {0}, ones[4] = {1, 1, 1, 1};
  int32_t arg_flat[4];
  for (int i = 0; i < 16; i++) flat[i] = 7;
  maxpool3s2_forward(out_flat, arg_flat, flat, 1, 4, 4, 1);
  CHECK(arg_flat[0] == 0 && arg_flat[1] == 2 && arg_flat[2] == 8 && arg_flat[3] == 10);
  maxpool3s2_backward(dflat, ones, arg_flat, 1, 4, 4, 1);
  CHECK(dflat[0] == 1 && dflat[2] == 1 && dflat[8] == 1 && dflat[10] == 1 && dflat[5] == 0);

  /* Batch of 2 images, 3x2: argmax indexes each image's own plane. */
  float two[12] = {0, 1, 2, 3, 4, 5, 50, 40, 30, 20, 10, 0}, out2[4];
  int32_t arg2[4];
  maxpool3s2_forward(out2, arg2, two, 2, 3, 2, 1); /* out 2x1 per image */
  CHECK(out2[0] == 3 && arg2[0] == 3 && out2[1] == 5 && arg2[1] == 5);
  CHECK(out2[2] == 50 && arg2[2] == 0 && out2[3] == 30 && arg2[3] == 2);
}

typedef struct {
  int n, h, w, c;
  Pair x;
  double *r;
} PoolCase;

static double pool_loss(void *ctx) {
  PoolCase *t = ctx;
  int oh = ref_out_size(t->h, 2), ow = ref_out_size(t->w, 2);
  int pt = ref_pad_before(t->h, 3, 2), pl = ref_pad_before(t->w, 3, 2);
  double l = 0;
  long o = 0;
  for (int b = 0; b < t->n; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < t->c; ch++, o++) {
          double best = -INFINITY;
          for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
              int y = oy * 2 - pt + i, x = ox * 2 - pl + j;
              if (y < 0 || y >= t->h || x < 0 || x >= t->w) continue;
              double v = t->x.d[(((long)b * t->h + y) * t->w + x) * t->c + ch];
              if (v > best) best = v;
            }
          l += t->r[o] * best;
        }
  return l;
}

static void test_maxpool_gradient(int n, int h, int w, int c, uint64_t seed) {
  char what[120];
  UnetRng rng;
  rng_seed(&rng, seed);
  PoolCase t = {n, h, w, c, pair_alloc((long)n * h * w * c), NULL};
  pair_random(t.x, &rng, -1, 1);
  long out_len = (long)n * ref_out_size(h, 2) * ref_out_size(w, 2) * c;
  Pair r = pair_alloc(out_len);
  pair_random(r, &rng, -1, 1);
  t.r = r.d;
  float *out = floats_zero(out_len), *din = floats_zero(t.x.len);
  int32_t *arg = xmalloc((size_t)out_len * sizeof(int32_t), "argmax");
  maxpool3s2_forward(out, arg, t.x.f, n, h, w, c);
  double sum = 0;
  for (long i = 0; i < out_len; i++) sum += r.d[i] * out[i];
  double want = pool_loss(&t);
  CHECK_MSG(fabs(sum - want) <= 1e-5, "maxpool n%d %dx%dx%d forward: sum r*out %.9g, reference %.9g", n, h, w, c, sum,
            want);
  maxpool3s2_backward(din, r.f, arg, n, h, w, c);
  snprintf(what, sizeof what, "maxpool n%d %dx%dx%d d/din", n, h, w, c);
  check_gradient(what, t.x.d, t.x.len, din, pool_loss, &t, 1e-5);
  xfree(out);
  xfree(din);
  xfree(arg);
  pair_free(r);
  pair_free(t.x);
}

/* ---- UpSampling2D, ReLU, Add ------------------------------------------------*/
static void test_upsample(void) {
  /* [1,1,2,2] -> [1,2,4,2] */
  const float in[4] = {1, 2, 3, 4};
  float out[16];
  upsample2x_forward(out, in, 1, 1, 2, 2);
  const float want[16] = {1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4};
  check_float_arrays_close("upsample forward", out, want, 16, 0, 0);
  float dout[16], din[4] = {10, 20, 30, 40};
  for (int i = 0; i < 16; i++) dout[i] = (float)i;
  upsample2x_backward(din, dout, 1, 1, 2, 2, 1);
  /* pixel 0 ch0 gets dout[0]+dout[2]+dout[8]+dout[10] = 20, etc. */
  const float want_din[4] = {10 + 20, 20 + 24, 30 + 36, 40 + 40};
  check_float_arrays_close("upsample backward (accumulating)", din, want_din, 4, 0, 0);
  /* accumulate 0: NaN in din is overwritten; a -0 block sum becomes +0, as += onto zeros gives */
  float din_set[4] = {NAN, NAN, NAN, NAN}, dneg[16];
  for (int i = 0; i < 16; i++) dneg[i] = i % 2 ? -0.0f : (float)i;
  upsample2x_backward(din_set, dneg, 1, 1, 2, 2, 0);
  const float want_set[4] = {0 + 2 + 8 + 10, 0.0f, 4 + 6 + 12 + 14, 0.0f};
  CHECK_MSG(!memcmp(din_set, want_set, sizeof want_set), "upsample backward (accumulate 0): %g %g %g %g (signbit %d)",
            din_set[0], din_set[1], din_set[2], din_set[3], signbit(din_set[1]) != 0);
  /* Two images, 2x1x1: the rows of different images stay apart. */
  const float in2[4] = {1, 2, 3, 4};
  float out2[16];
  upsample2x_forward(out2, in2, 2, 2, 1, 1);
  const float want2[16] = {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4};
  check_float_arrays_close("upsample forward, 2 images", out2, want2, 16, 0, 0);
}

static void test_relu_add(void) {
  float x[5] = {-2, -0.0f, 0.5f, 3, -1e-30f}, out[5];
  relu_forward(out, x, 5);
  const float want[5] = {0, 0, 0.5f, 3, 0};
  check_float_arrays_close("relu forward", out, want, 5, 0, 0);
  relu_forward(x, x, 5);
  check_float_arrays_close("relu forward in place", x, want, 5, 0, 0);
  float dout[5] = {1, 2, 3, 4, 5}, din[5] = {1, 1, 1, 1, 1};
  relu_backward(din, dout, out, 5);
  const float want_din[5] = {1, 1, 4, 5, 1};
  check_float_arrays_close("relu backward (accumulating)", din, want_din, 5, 0, 0);
  float a[3] = {1, 2, 3}, b[3] = {10, 20, 30}, s[3];
  add_forward(s, a, b, 3);
  add_forward(a, a, b, 3);
  const float want_s[3] = {11, 22, 33};
  check_float_arrays_close("add", s, want_s, 3, 0, 0);
  check_float_arrays_close("add aliasing its input", a, want_s, 3, 0, 0);
}

/* ---- softmax + sparse categorical crossentropy ----------------------------*/
static void test_softmax_xent(void) {
  /* Pixel 0: logits (1,2,3), label 2; pixel 1: (0,0,0), label 0.
   * loss = log(1 + e^-1 + e^-2) + log(3) = 1.5062182531124901 */
  const float logits[6] = {1, 2, 3, 0, 0, 0};
  const uint8_t labels[2] = {2, 0};
  float dl[6], probs[6];
  double loss = softmax_xent_forward_backward(dl, probs, logits, labels, 2, 3, 0.5f);
  CHECK_CLOSE(loss, 1.5062182531124901, 1e-9, 0);
  const double p0[3] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
  const float want_probs[6] = {(float)p0[0], (float)p0[1], (float)p0[2], 1.0f / 3, 1.0f / 3, 1.0f / 3};
  const float want_dl[6] = {(float)(0.5 * p0[0]), (float)(0.5 * p0[1]), (float)(0.5 * (p0[2] - 1)),
                            (float)(0.5 * (1.0 / 3 - 1)), (float)(0.5 / 3), (float)(0.5 / 3)};
  check_float_arrays_close("softmax probabilities", probs, want_probs, 6, 1e-7, 0);
  check_float_arrays_close("softmax xent dlogits", dl, want_dl, 6, 1e-7, 0);
  float p2[6];
  softmax_forward(p2, logits, 2, 3);
  check_float_arrays_close("softmax_forward", p2, want_probs, 6, 1e-7, 0);
  /* Only the loss, no outputs. */
  CHECK_CLOSE(softmax_xent_forward_backward(NULL, NULL, logits, labels, 2, 3, 1), 1.5062182531124901, 1e-9, 0);

  /* Huge logits stay finite (log-softmax, no overflow, no clipping). */
  const float big[3] = {1000, 0, -1000};
  const uint8_t lab_big[1] = {2};
  CHECK_CLOSE(softmax_xent_forward_backward(dl, NULL, big, lab_big, 1, 3, 1), 2000.0, 1e-6, 0);
  CHECK_CLOSE(dl[0], 1.0, 1e-7, 0);
  CHECK_CLOSE(dl[2], -1.0, 1e-7, 0);

  /* Finite differences of the loss on a random 5-pixel, 4-class case. */
  UnetRng rng;
  rng_seed(&rng, 9);
  enum { M = 5, C = 4 };
  float z[M * C], g[M * C];
  uint8_t lab[M];
  for (int i = 0; i < M * C; i++) z[i] = rng_uniform_range(&rng, -3, 3);
  for (int i = 0; i < M; i++) lab[i] = (uint8_t)rng_below(&rng, C);
  softmax_xent_forward_backward(g, NULL, z, lab, M, C, 0.25f);
  for (int i = 0; i < M * C; i++) {
    float saved = z[i], h = 1e-2f;
    z[i] = saved + h;
    double lp = softmax_xent_forward_backward(NULL, NULL, z, lab, M, C, 1);
    z[i] = saved - h;
    double lm = softmax_xent_forward_backward(NULL, NULL, z, lab, M, C, 1);
    z[i] = saved;
    double fd = 0.25 * (lp - lm) / ((double)(saved + h) - (double)(saved - h));
    CHECK_CLOSE(g[i], fd, 2e-5, 1e-3);
  }
}

/* Class weights and an ignored label (users' own data). Pixel 0: logits
 * (1,2,3), label 2, weight 0.5; pixel 1: (0,0,0), label 0, weight 2; pixel 2:
 * label 255, ignored. By hand: 0.5 * log(1 + e^-1 + e^-2) + 2 * log(3)
 * = 0.5 * 0.40760596444438 + 2 * 1.09861228866811 = 2.40102755955841. */
static void test_weighted_xent(void) {
  const float logits[9] = {1, 2, 3, 0, 0, 0, 5, -1, 2};
  const uint8_t labels[3] = {2, 0, 255};
  const float w[3] = {2.0f, 1.0f, 0.5f};
  const LossSpec spec = {w, 255};
  float dl[9], probs[9];
  double loss = softmax_xent_weighted(dl, probs, logits, labels, 3, 3, 0.25f, &spec);
  CHECK_CLOSE(loss, 2.40102755955841, 1e-9, 0);
  CHECK_CLOSE(loss_weight_sum(labels, 3, &spec), 2.5, 0, 0); /* 0.5 + 2, the ignored pixel counts 0 */
  const double p0[3] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
  const float want_dl[9] = {(float)(0.25 * 0.5 * p0[0]), (float)(0.25 * 0.5 * p0[1]), (float)(0.25 * 0.5 * (p0[2] - 1)),
                            (float)(0.25 * 2 * (1.0 / 3 - 1)), (float)(0.25 * 2 / 3), (float)(0.25 * 2 / 3), 0, 0, 0};
  check_float_arrays_close("weighted xent dlogits (ignored pixel: 0)", dl, want_dl, 9, 1e-7, 0);
  CHECK_CLOSE(probs[6] + probs[7] + probs[8], 1.0, 1e-6, 0); /* softmax still written for the ignored pixel */
  /* the ignored pixel's logits and its label value change nothing */
  float other[9];
  memcpy(other, logits, sizeof other);
  other[6] = -7, other[7] = 40, other[8] = 0.5f;
  float dl2[9];
  CHECK(softmax_xent_weighted(dl2, NULL, other, labels, 3, 3, 0.25f, &spec) == loss);
  CHECK(memcmp(dl, dl2, sizeof dl) == 0);
  /* ...and the check has teeth: counted as class 1 it changes the loss */
  const uint8_t counted[3] = {2, 0, 1};
  CHECK(softmax_xent_weighted(NULL, NULL, logits, counted, 3, 3, 1, &spec) > loss + 1);
  /* LOSS_SPEC_PLAIN is the plain loss, bit for bit */
  const uint8_t plain_labels[3] = {2, 0, 1};
  float da[9], db[9];
  const LossSpec plain = LOSS_SPEC_PLAIN;
  CHECK(softmax_xent_weighted(da, NULL, logits, plain_labels, 3, 3, 0.3f, &plain) ==
        softmax_xent_forward_backward(db, NULL, logits, plain_labels, 3, 3, 0.3f));
  CHECK(memcmp(da, db, sizeof da) == 0);
  CHECK(loss_weight_sum(plain_labels, 3, &plain) == 3);
  /* finite differences of the weighted loss with an ignored pixel, 6 pixels x 4 classes */
  UnetRng rng;
  rng_seed(&rng, 21);
  enum { M = 6, C = 4 };
  float z[M * C], g[M * C];
  const float cw[C] = {0.2f, 1.5f, 3.0f, 0.7f};
  const LossSpec ws = {cw, 255};
  uint8_t lab[M] = {0, 1, 255, 3, 2, 1};
  for (int i = 0; i < M * C; i++) z[i] = rng_uniform_range(&rng, -3, 3);
  softmax_xent_weighted(g, NULL, z, lab, M, C, 0.25f, &ws);
  for (int i = 0; i < M * C; i++) {
    float saved = z[i], h = 1e-2f;
    z[i] = saved + h;
    double lp = softmax_xent_weighted(NULL, NULL, z, lab, M, C, 1, &ws);
    z[i] = saved - h;
    double lm = softmax_xent_weighted(NULL, NULL, z, lab, M, C, 1, &ws);
    z[i] = saved;
    double fd = 0.25 * (lp - lm) / ((double)(saved + h) - (double)(saved - h));
    CHECK_CLOSE(g[i], fd, 2e-5, 1e-3);
  }
}

int main(void) {
  test_batchnorm_train(35, 3, 0, 1);
  test_batchnorm_train(70, 4, 100, 2); /* 0..255-like offsets: mean >> std */
  test_batchnorm_train(2, 2, 0, 3);    /* two pixels: channel 0's variance ~ eps */
  test_batchnorm_two_replicas();
  test_batchnorm_infer();
  test_batchnorm_relu_fused(1000, 64, 21); /* vector loops */
  test_batchnorm_relu_fused(37, 13, 22);   /* vector tails */
  test_batchnorm_relu_fused(3, 1, 23);
  test_maxpool_hand();
  test_maxpool_gradient(2, 5, 7, 3, 10);
  test_maxpool_gradient(2, 6, 8, 2, 11);
  test_maxpool_gradient(1, 1, 1, 2, 12);
  test_maxpool_gradient(1, 2, 3, 4, 13);
  test_upsample();
  test_relu_add();
  test_softmax_xent();
  test_weighted_xent();
  CHECK_DONE();
}
