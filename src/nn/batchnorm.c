/* batchnorm.c - BatchNormalization over N,H,W per channel, optionally
 * synchronized across replicas through a BatchNormReducer.
 *
 * Data are [M, C] (M = N*H*W pixels). All statistics are accumulated in
 * double, pixel by pixel: float partial sums over blocks of rows would make a
 * statistic depend on where the blocks cut the images, i.e. on an image's
 * place in the batch, and so on the rank count. Every
 * cross-replica quantity is a plain sum reduced together with the pixel
 * count, so a batch split over replicas gives the same result up to float
 * rounding. The variance takes a second pass around the global mean rather
 * than E[x^2] - E[x]^2, which cancels badly on 0..255 inputs.
 *
 * Scratch (batchnorm_workspace_floats): [sums: 2C+1 doubles | 3C floats of
 * per-channel coefficients | C floats: one row of the fused ReLU's gradient],
 * passed in by the caller.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "unet/layers.h"
#include "unet/util.h"
#include "vector_clones.h"


size_t batchnorm_workspace_floats(int c) { return (size_t)2 * (2 * (size_t)c + 1) + (size_t)4 * c; }

/* Splits the caller's scratch: sums [2c+1] doubles, then coef [4c] floats. */
static void split_workspace(float *ws, size_t ws_floats, int c, double **sums, float **coef, const char *who) {
  if (!ws || ws_floats < batchnorm_workspace_floats(c) || (uintptr_t)ws % sizeof(double))
    unet_fatal("%s: workspace of %zu floats at %p cannot hold the %zu floats for %d channels (8-byte aligned)", who,
               ws_floats, (void *)ws, batchnorm_workspace_floats(c), c);
  *sums = (double *)ws;
  *coef = ws + (size_t)2 * (2 * (size_t)c + 1);
}

static void reduce(BatchNormReducer red, double *values, int count) {
  if (red.sum) red.sum(values, count, red.ctx);
}

static void check_shape(long m, int c, const char *who) {
  if (m < 0 || c < 1) unet_fatal("%s: invalid shape M=%ld C=%d", who, m, c);
}

/* sums[ch] += sum over rows of (x - center[ch])^p, p = 1 or 2 (center may be
 * NULL for p = 1), each term rounded to float and added in double. */
VECTOR_CLONES static void channel_sums(double *restrict sums, const float *restrict x, const float *restrict center, long m, int c,
                         int squared) {
  for (long r = 0; r < m; r++) {
    const float *row = x + (size_t)r * c;
    if (squared)
      for (int ch = 0; ch < c; ch++) {
        float dev = row[ch] - center[ch];
        sums[ch] += (double)(dev * dev);
      }
    else
      for (int ch = 0; ch < c; ch++) sums[ch] += (double)row[ch];
  }
}

/* y[r,ch] = (x[r,ch] - mean[ch]) * scale[ch] + beta[ch], then with RELU
 * max(y, 0) exactly as relu_forward does it; out may equal in (element-wise,
 * each element read before it is written). RELU is a constant in each
 * caller, so the compiler makes two loops. */
static inline void normalize_rows(float *out, const float *in, const float *restrict mean,
                                  const float *restrict scale, const float *restrict beta, long m, int c, int relu) {
  for (long r = 0; r < m; r++) {
    const float *x = in + (size_t)r * c;
    float *y = out + (size_t)r * c;
    for (int ch = 0; ch < c; ch++) {
      float v = (x[ch] - mean[ch]) * scale[ch] + beta[ch];
      y[ch] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
  }
}
VECTOR_CLONES static void normalize(float *out, const float *in, const float *mean, const float *scale,
                                    const float *beta, long m, int c) {
  normalize_rows(out, in, mean, scale, beta, m, c, 0);
}
VECTOR_CLONES static void normalize_relu(float *out, const float *in, const float *mean, const float *scale,
                                         const float *beta, long m, int c) {
  normalize_rows(out, in, mean, scale, beta, m, c, 1);
}

/* The gradient that reaches a BatchNorm followed by a ReLU is dout where
 * relu_out > 0, else 0, added to 0.0f as relu_backward adds it into a zeroed
 * buffer (so -0 becomes +0 the same way). The select goes to a row buffer
 * first, gate [C]: written as one expression, GCC folds the 0.0f + into the
 * branches of the select and the loop no longer vectorizes. */
static inline void gate_row(float *restrict gate, const float *restrict dy, const float *restrict relu_out, int c) {
  for (int ch = 0; ch < c; ch++) {
    float g = dy[ch]; /* loaded unconditionally, so the select vectorizes */
    gate[ch] = relu_out[ch] > 0.0f ? g : 0.0f;
  }
}

/* sums[ch] += dy, sums[c + ch] += dy * (x - mean) over rows, each term in
 * double. */
static inline void sums_row(double *restrict sums, const float *restrict dy, const float *restrict x,
                            const float *restrict mean, int c, int relu) {
  for (int ch = 0; ch < c; ch++) {
    float g = relu ? 0.0f + dy[ch] : dy[ch];
    sums[ch] += (double)g;
    sums[c + ch] += (double)(g * (x[ch] - mean[ch]));
  }
}
VECTOR_CLONES static void backward_sums(double *restrict sums, const float *restrict dout, const float *restrict in,
                                        const float *restrict mean, long m, int c) {
  for (long r = 0; r < m; r++) sums_row(sums, dout + (size_t)r * c, in + (size_t)r * c, mean, c, 0);
}
VECTOR_CLONES static void backward_sums_relu(double *restrict sums, float *restrict gate, const float *restrict dout,
                                             const float *restrict relu_out, const float *restrict in,
                                             const float *restrict mean, long m, int c) {
  for (long r = 0; r < m; r++) {
    gate_row(gate, dout + (size_t)r * c, relu_out + (size_t)r * c, c);
    sums_row(sums, gate, in + (size_t)r * c, mean, c, 1);
  }
}

/* dx += coef_dy * dy + coef_dev * (x - mean) + offset, per channel, or with
 * assign dx = 0 + that (the bits of += onto zeros: a -0 becomes +0). relu
 * and assign are constants at every call site. */
static inline void dx_row(float *restrict dx, const float *restrict dy, const float *restrict x,
                          const float *restrict mean, const float *restrict coef_dy, const float *restrict coef_dev,
                          const float *restrict offset, int c, int relu, int assign) {
  for (int ch = 0; ch < c; ch++) {
    float g = relu ? 0.0f + dy[ch] : dy[ch];
    float v = coef_dy[ch] * g + coef_dev[ch] * (x[ch] - mean[ch]) + offset[ch];
    dx[ch] = (assign ? 0.0f : dx[ch]) + v;
  }
}
VECTOR_CLONES static void backward_dx(float *restrict din, const float *restrict dout, const float *restrict in,
                                      const float *restrict mean, const float *restrict coef_dy,
                                      const float *restrict coef_dev, const float *restrict offset, long m, int c,
                                      int accumulate) {
  for (long r = 0; r < m; r++)
    if (accumulate)
      dx_row(din + (size_t)r * c, dout + (size_t)r * c, in + (size_t)r * c, mean, coef_dy, coef_dev, offset, c, 0, 0);
    else
      dx_row(din + (size_t)r * c, dout + (size_t)r * c, in + (size_t)r * c, mean, coef_dy, coef_dev, offset, c, 0, 1);
}
VECTOR_CLONES static void backward_dx_relu(float *restrict din, float *restrict gate, const float *restrict dout,
                                           const float *restrict relu_out, const float *restrict in,
                                           const float *restrict mean, const float *restrict coef_dy,
                                           const float *restrict coef_dev, const float *restrict offset, long m,
                                           int c, int accumulate) {
  for (long r = 0; r < m; r++) {
    gate_row(gate, dout + (size_t)r * c, relu_out + (size_t)r * c, c);
    if (accumulate)
      dx_row(din + (size_t)r * c, gate, in + (size_t)r * c, mean, coef_dy, coef_dev, offset, c, 1, 0);
    else
      dx_row(din + (size_t)r * c, gate, in + (size_t)r * c, mean, coef_dy, coef_dev, offset, c, 1, 1);
  }
}

static void forward_train(float *out, float *save_mean, float *save_invstd, float *moving_mean, float *moving_var,
                          const float *in, const float *gamma, const float *beta, long m, int c, float momentum,
                          float eps, BatchNormReducer red, float *ws, size_t ws_floats, int relu) {
  check_shape(m, c, "batchnorm_forward_train");
  double *sums;
  float *scale;
  split_workspace(ws, ws_floats, c, &sums, &scale, "batchnorm_forward_train");

  /* Pass 1: global mean. */
  memset(sums, 0, (size_t)(c + 1) * sizeof(double));
  channel_sums(sums, in, NULL, m, c, 0);
  sums[c] = (double)m;
  reduce(red, sums, c + 1);
  const double count = sums[c];
  if (!(count > 0)) unet_fatal("batchnorm_forward_train: the (global) batch has no pixels");
  for (int ch = 0; ch < c; ch++) save_mean[ch] = (float)(sums[ch] / count);

  /* Pass 2: global biased variance around that mean. */
  memset(sums, 0, (size_t)(c + 1) * sizeof(double));
  channel_sums(sums, in, save_mean, m, c, 1);
  reduce(red, sums, c); /* the count is already global */
  for (int ch = 0; ch < c; ch++) {
    double var = sums[ch] / count;
    double invstd = 1.0 / sqrt(var + (double)eps);
    save_invstd[ch] = (float)invstd;
    scale[ch] = (float)(gamma[ch] * invstd);
    if (moving_mean) moving_mean[ch] = momentum * moving_mean[ch] + (1.0f - momentum) * save_mean[ch];
    if (moving_var) moving_var[ch] = momentum * moving_var[ch] + (1.0f - momentum) * (float)var;
  }

  /* y = (x - mean) * (gamma * invstd) + beta; subtracting the mean first
   * keeps float precision when |mean| >> std (raw 0..255 activations). */
  (relu ? normalize_relu : normalize)(out, in, save_mean, scale, beta, m, c);
}

void batchnorm_forward_train(float *out, float *save_mean, float *save_invstd, float *moving_mean, float *moving_var,
                             const float *in, const float *gamma, const float *beta, long m, int c, float momentum,
                             float eps, BatchNormReducer red, float *ws, size_t ws_floats) {
  forward_train(out, save_mean, save_invstd, moving_mean, moving_var, in, gamma, beta, m, c, momentum, eps, red, ws,
                ws_floats, 0);
}

void batchnorm_relu_forward_train(float *out, float *save_mean, float *save_invstd, float *moving_mean,
                                  float *moving_var, const float *in, const float *gamma, const float *beta, long m,
                                  int c, float momentum, float eps, BatchNormReducer red, float *ws, size_t ws_floats) {
  forward_train(out, save_mean, save_invstd, moving_mean, moving_var, in, gamma, beta, m, c, momentum, eps, red, ws,
                ws_floats, 1);
}

static void forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                          const float *moving_mean, const float *moving_var, long m, int c, float eps, float *ws,
                          size_t ws_floats, int relu) {
  check_shape(m, c, "batchnorm_forward_infer");
  double *unused;
  float *scale;
  split_workspace(ws, ws_floats, c, &unused, &scale, "batchnorm_forward_infer");
  for (int ch = 0; ch < c; ch++) scale[ch] = (float)(gamma[ch] / sqrt((double)moving_var[ch] + (double)eps));
  (relu ? normalize_relu : normalize)(out, in, moving_mean, scale, beta, m, c);
}

void batchnorm_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                             const float *moving_mean, const float *moving_var, long m, int c, float eps, float *ws,
                             size_t ws_floats) {
  forward_infer(out, in, gamma, beta, moving_mean, moving_var, m, c, eps, ws, ws_floats, 0);
}

void batchnorm_relu_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                                  const float *moving_mean, const float *moving_var, long m, int c, float eps,
                                  float *ws, size_t ws_floats) {
  forward_infer(out, in, gamma, beta, moving_mean, moving_var, m, c, eps, ws, ws_floats, 1);
}

/* With xhat = (x - mean) * invstd and sums over the global batch of count
 * pixels:
 *   dgamma = sum(dy * xhat), dbeta = sum(dy),
 *   dx = gamma * invstd * (dy - sum(dy)/count - xhat * sum(dy * xhat)/count).
 * dgamma/dbeta get this replica's sums only (the gradient allreduce adds the
 * others); dx needs the global sums, reduced here. */
static void backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *relu_out,
                     const float *in, const float *save_mean, const float *save_invstd, const float *gamma, long m,
                     int c, BatchNormReducer red, int accumulate, float *ws, size_t ws_floats) {
  check_shape(m, c, "batchnorm_backward");
  /* sums = [sum dy (C) | sum dy*xhat (C) | count] */
  double *sums;
  float *coef_dy;
  split_workspace(ws, ws_floats, c, &sums, &coef_dy, "batchnorm_backward");
  memset(sums, 0, (size_t)(2 * c + 1) * sizeof(double));
  float *coef_dev = coef_dy + c, *offset = coef_dev + c, *gate = offset + c;

  /* sum(dy * xhat) = invstd * sum(dy * (x - mean)) */
  if (relu_out)
    backward_sums_relu(sums, gate, dout, relu_out, in, save_mean, m, c);
  else
    backward_sums(sums, dout, in, save_mean, m, c);
  for (int ch = 0; ch < c; ch++) sums[c + ch] *= save_invstd[ch];
  for (int ch = 0; ch < c; ch++) {
    if (dbeta) dbeta[ch] += (float)sums[ch];
    if (dgamma) dgamma[ch] += (float)sums[c + ch];
  }
  if (!din) return;
  sums[2 * c] = (double)m;
  reduce(red, sums, 2 * c + 1);
  const double count = sums[2 * c];
  if (!(count > 0)) unet_fatal("batchnorm_backward: the (global) batch has no pixels");

  /* dx = a*dy + b*(x - mean) + o with a = gamma*invstd,
   * b = -a*invstd*mean(dy*xhat), o = -a*mean(dy). */
  for (int ch = 0; ch < c; ch++) {
    double a = (double)gamma[ch] * save_invstd[ch];
    double mean_dy = sums[ch] / count, mean_dyxhat = sums[c + ch] / count;
    coef_dy[ch] = (float)a;
    coef_dev[ch] = (float)(-a * save_invstd[ch] * mean_dyxhat);
    offset[ch] = (float)(-a * mean_dy);
  }
  if (relu_out)
    backward_dx_relu(din, gate, dout, relu_out, in, save_mean, coef_dy, coef_dev, offset, m, c, accumulate);
  else
    backward_dx(din, dout, in, save_mean, coef_dy, coef_dev, offset, m, c, accumulate);
}

void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *save_mean, const float *save_invstd, const float *gamma, long m, int c,
                        BatchNormReducer red, int accumulate, float *ws, size_t ws_floats) {
  backward(din, dgamma, dbeta, dout, NULL, in, save_mean, save_invstd, gamma, m, c, red, accumulate, ws, ws_floats);
}

void batchnorm_relu_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *relu_out,
                             const float *in, const float *save_mean, const float *save_invstd, const float *gamma,
                             long m, int c, BatchNormReducer red, int accumulate, float *ws, size_t ws_floats) {
  backward(din, dgamma, dbeta, dout, relu_out, in, save_mean, save_invstd, gamma, m, c, red, accumulate, ws,
           ws_floats);
}
