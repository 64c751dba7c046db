/* layers_check.h - helpers shared by the layer tests: random tensors held
 * both as float (for the layer under test) and as the same values in double
 * (for the naive reference), and a central finite-difference gradient check
 * of a double-precision reference loss.
 *
 * Gradient checks use a random linear functional of the output,
 * L = sum_i r_i * out_i, so dL/dout = r is what the backward pass is fed and
 * the finite differences of the double reference give the exact gradient to
 * ~1e-8, leaving only the float rounding of the layer under test.
 */
#ifndef UNET_LAYERS_CHECK_H
#define UNET_LAYERS_CHECK_H
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "unet/rng.h"
#include "unet/util.h"

/* A tensor as float and double copies of the same values. */
typedef struct {
  float *f;
  double *d;
  long len;
} Pair;

static Pair pair_alloc(long len) {
  Pair p = {xcalloc((size_t)(len ? len : 1), sizeof(float), "test tensor"),
            xcalloc((size_t)(len ? len : 1), sizeof(double), "test tensor"), len};
  return p;
}
static void pair_random(Pair p, UnetRng *rng, float lo, float hi) {
  for (long i = 0; i < p.len; i++) {
    p.f[i] = rng_uniform_range(rng, lo, hi);
    p.d[i] = p.f[i];
  }
}
static void pair_free(Pair p) {
  xfree(p.f);
  xfree(p.d);
}
static float *floats_zero(long len) { return xcalloc((size_t)(len ? len : 1), sizeof(float), "test gradient"); }

/* max |a_f - b_d| <= atol + rtol * max|b| over the arrays; reports the worst. */
static int check_arrays_close(const char *what, const float *a, const double *b, long len, double atol, double rtol) {
  double worst = 0, scale = 0;
  long at = -1;
  int nan_seen = 0;
  for (long i = 0; i < len; i++) {
    if (fabs(b[i]) > scale) scale = fabs(b[i]);
    double e = fabs((double)a[i] - b[i]);
    if (e != e) {
      if (!nan_seen) at = i;
      nan_seen = 1;
    } else if (e > worst && !nan_seen) {
      worst = e;
      at = i;
    }
  }
  int ok = !nan_seen && worst <= atol + rtol * scale;
  if (!ok) {
    fprintf(stderr, "%s: max error %.3g at [%ld] (got %.9g, want %.9g, scale %.3g)\n", what, worst, at,
            at >= 0 ? a[at] : 0.0, at >= 0 ? b[at] : 0.0, scale);
    check_failures++;
  }
  return ok;
}

static int check_float_arrays_close(const char *what, const float *a, const float *b, long len, double atol,
                                    double rtol) {
  double *bd = xmalloc((size_t)(len ? len : 1) * sizeof(double), "test copy");
  for (long i = 0; i < len; i++) bd[i] = b[i];
  int ok = check_arrays_close(what, a, bd, len, atol, rtol);
  xfree(bd);
  return ok;
}

/* Central differences of loss() with respect to every element of param
 * (double, perturbed in place), compared with the analytic float gradient:
 * |analytic - fd| <= tol * (max|fd| + |fd|). */
static int check_gradient(const char *what, double *param, long len, const float *analytic, double (*loss)(void *),
                          void *ctx, double tol) {
  const double h = 1e-4;
  double *fd = xmalloc((size_t)(len ? len : 1) * sizeof(double), "finite differences");
  double scale = 0;
  for (long j = 0; j < len; j++) {
    double saved = param[j];
    param[j] = saved + h;
    double lp = loss(ctx);
    param[j] = saved - h;
    double lm = loss(ctx);
    param[j] = saved;
    fd[j] = (lp - lm) / (2 * h);
    if (fabs(fd[j]) > scale) scale = fabs(fd[j]);
  }
  int bad = 0;
  for (long j = 0; j < len; j++) {
    double e = fabs((double)analytic[j] - fd[j]);
    if (!(e <= tol * (scale + fabs(fd[j])))) {
      if (bad < 5)
        fprintf(stderr, "%s: gradient [%ld] analytic %.9g vs finite difference %.9g (scale %.3g)\n", what, j,
                analytic[j], fd[j], scale);
      bad++;
    }
  }
  if (bad) {
    fprintf(stderr, "%s: %d of %ld gradient entries off\n", what, bad, len);
    check_failures++;
  }
  if (scale == 0) {
    fprintf(stderr, "%s: gradient is identically zero, the check is vacuous\n", what);
    check_failures++;
  }
  xfree(fd);
  return !bad;
}

/* TF 'same' padding written out independently of layers.h. */
static int ref_out_size(int n, int s) { return (n + s - 1) / s; }
static int ref_pad_before(int n, int k, int s) {
  int total = (ref_out_size(n, s) - 1) * s + k - n;
  return total > 0 ? total / 2 : 0;
}

#endif
