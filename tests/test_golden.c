/* test_golden.c - the C model against the independent PyTorch implementation
 * (tests/torch_unet.py, float64), through tests/golden/golden_small.h5: hash-
 * initialised weights, training-mode forward (logits, loss), every gradient,
 * BN moving statistics, inference probabilities, and the weights after two
 * Keras-Adam steps. Layout and tolerances: tests/golden/README.md. */
#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "unet/adam.h"
#include "unet/model.h"
#include "unet/util.h"

static hid_t g_file;

static uint32_t hash32(uint32_t v, uint32_t i) {
  uint32_t h = v * 0x9E3779B1u + i;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

/* The golden README's initialiser, variable v = index in the model order. */
static void hash_init(UNet *m) {
  for (int v = 0; v < m->num_vars; v++) {
    const ModelVar *var = &m->vars[v];
    float *w = unet_var_data(m, var);
    float limit = var->fan_in ? (float)sqrt(6.0 / (double)(var->fan_in + var->fan_out)) : 0.0f;
    for (size_t i = 0; i < var->size; i++) {
      float r = (float)(hash32((uint32_t)v, (uint32_t)i) >> 8) * 0x1p-24f;
      float s = 2.0f * r - 1.0f;
      switch (var->role) {
      case VAR_KERNEL: case VAR_DEPTHWISE: case VAR_POINTWISE: w[i] = s * limit; break;
      case VAR_GAMMA: w[i] = 1.0f + s * 0.125f; break;
      case VAR_MOVING_VARIANCE: w[i] = 1.0f + r * 0.5f; break;
      default: w[i] = s * 0.125f; break; /* biases, beta, moving mean */
      }
    }
  }
}

static float *read_f32(const char *path, size_t *count) {
  hid_t d = H5Dopen2(g_file, path, H5P_DEFAULT);
  if (d < 0) {
    fprintf(stderr, "golden: missing %s\n", path);
    exit(1);
  }
  hid_t sp = H5Dget_space(d);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  float *buf = xmalloc((size_t)n * sizeof(float), path);
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  H5Sclose(sp);
  H5Dclose(d);
  if (count) *count = (size_t)n;
  return buf;
}

static double read_attr_f64(const char *path, const char *name) {
  hid_t d = H5Oopen(g_file, path, H5P_DEFAULT);
  hid_t a = H5Aopen(d, name, H5P_DEFAULT);
  double v = NAN;
  H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  H5Oclose(d);
  return v;
}

static int read_attr_int(const char *path, const char *name) {
  hid_t d = H5Oopen(g_file, path, H5P_DEFAULT);
  hid_t a = H5Aopen(d, name, H5P_DEFAULT);
  int v = 0;
  H5Aread(a, H5T_NATIVE_INT, &v);
  H5Aclose(a);
  H5Oclose(d);
  return v;
}

static double read_scalar_f64(const char *path) {
  hid_t d = H5Dopen2(g_file, path, H5P_DEFAULT);
  double v = NAN;
  H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
  H5Dclose(d);
  return v;
}

static double max_abs(const float *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
  return m;
}

/* Compares a whole tensor: max |ours - ref| <= rel * max |ref|. */
static void compare_tensor(const char *what, const float *ours, const char *path, double rel, double abs_tol) {
  size_t n;
  float *ref = read_f32(path, &n);
  double worst = 0, scale = max_abs(ref, n);
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(ours[i] - ref[i]));
  CHECK_MSG(worst <= rel * scale + abs_tol, "%s: max deviation %.3g (limit %.3g)", what, worst, rel * scale + abs_tol);
  printf("  %-26s max dev %.2e of max |ref| %.3g\n", what, worst, scale);
  xfree(ref);
}

typedef enum { CMP_EXACT, CMP_GRAD, CMP_ADAM } Compare;

/* Every variable's record in <set>/<layer>/<j> against values (params, state
 * or grads of the model). */
static void compare_records(UNet *m, const char *set, const float *param_like, int trainable_only, Compare how) {
  int bad_vars = 0, total = 0;
  for (int v = 0; v < m->num_vars; v++) {
    const ModelVar *var = &m->vars[v];
    if (trainable_only && !var->trainable) continue;
    const float *ours = (var->trainable ? param_like : m->state) + var->offset;
    char path[256];
    snprintf(path, sizeof path, "/%s/%s/%d", set, var->layer, var->index);
    size_t n;
    float *ref = read_f32(path, &n);
    int stride = read_attr_int(path, "stride");
    int zero_grad = read_attr_int(path, "zero_true_gradient");
    double scale = max_abs(ref, n), worst = 0, sum = 0, sumsq = 0;
    size_t beyond = 0;
    for (size_t k = 0; k < n; k++) {
      double d = fabs((double)ours[k * stride] - ref[k]);
      worst = fmax(worst, d);
      if (d > 1e-5 * fmax(1.0, fabs(ref[k]))) beyond++; /* relative for large values (moving variance ~30) */
    }
    for (size_t i = 0; i < var->size; i++) {
      sum += ours[i];
      sumsq += (double)ours[i] * ours[i];
    }
    double ref_sum = read_attr_f64(path, "sum"), ref_sumabs = read_attr_f64(path, "sumabs"),
           ref_sumsq = read_attr_f64(path, "sumsq");
    int ok = 1;
    switch (how) {
    case CMP_EXACT:
      for (size_t k = 0; k < n; k++) ok &= ours[k * stride] == ref[k];
      break;
    case CMP_GRAD:
      if (zero_grad && var->trainable)
        ok = worst <= 1e-4;
      else
        ok = worst <= 1e-4 * scale && fabs(sum - ref_sum) <= 1e-4 * ref_sumabs &&
             fabs(sumsq - ref_sumsq) <= 1e-4 * ref_sumsq;
      break;
    case CMP_ADAM:
      if (zero_grad && var->trainable)
        ok = worst <= 4e-3;
      else
        ok = worst <= 5e-4 && beyond <= n / 1000 + 1 && fabs(sum - ref_sum) <= 1e-5 * ref_sumabs + 1e-6;
      break;
    }
    total++;
    if (!ok) {
      bad_vars++;
      fprintf(stderr, "  %s: max dev %.3g (max |ref| %.3g), sum %.6g vs %.6g, sumsq %.6g vs %.6g, %zu beyond 1e-5\n",
              path, worst, scale, sum, ref_sum, sumsq, ref_sumsq, beyond);
    }
    xfree(ref);
  }
  printf("  %-26s %d variables, %d outside tolerance\n", set, total, bad_vars);
  CHECK_MSG(bad_vars == 0, "%s: %d variable(s) outside tolerance", set, bad_vars);
}

int main(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  const char *path = UNET_SOURCE_DIR "/tests/golden/golden_small.h5";
  g_file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (g_file < 0) {
    fprintf(stderr, "cannot open %s\n", path);
    return 1;
  }
  const int n = 2, h = 32, w = 32, c = 3;
  UNet m;
  char err[256];
  CHECK(unet_create(&m, h, w, c, err, sizeof err) == 0);
  CHECK(m.num_vars == 112);
  hash_init(&m);
  compare_records(&m, "init", m.params, 0, CMP_EXACT);

  float *x = read_f32("/input/x", NULL);
  uint8_t labels[2 * 32 * 32];
  hid_t d = H5Dopen2(g_file, "/input/labels", H5P_DEFAULT);
  H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
  H5Dclose(d);

  /* inference with the initial moving statistics */
  unet_plan(&m, n);
  float *probs = xmalloc((size_t)n * h * w * c * sizeof(float), "probs");
  unet_predict(&m, x, n, probs);
  compare_tensor("inference logits", unet_last_logits(&m), "/inference/logits", 1e-4, 0);
  compare_tensor("inference probs", probs, "/inference/probs", 0, 2e-4);

  /* training-mode forward + backward */
  BatchNormReducer none = {0};
  const float scale = 1.0f / (n * h * w);
  memset(m.grads, 0, m.num_params * sizeof(float));
  double loss = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL) * scale;
  double ref_loss = read_scalar_f64("/train/loss");
  printf("  train loss %.9f, reference %.9f\n", loss, ref_loss);
  CHECK_CLOSE(loss, ref_loss, 0, 1e-5);
  compare_tensor("train logits", unet_last_logits(&m), "/train/logits", 1e-4, 0);
  compare_records(&m, "grads", m.grads, 1, CMP_GRAD);
  for (int v = 0; v < m.num_vars; v++) { /* moving statistics after one training forward */
    const ModelVar *var = &m.vars[v];
    if (var->trainable) continue;
    char p[256];
    snprintf(p, sizeof p, "/bn_after_train/%s/%d", var->layer, var->index);
    compare_tensor(p, unet_var_data(&m, var), p, 1e-5, 0);
  }

  /* two Keras-Adam steps from the initial state */
  hash_init(&m);
  Adam opt;
  adam_init(&opt, m.num_params, 1e-3);
  double step_loss[2];
  for (int s = 0; s < 2; s++) {
    memset(m.grads, 0, m.num_params * sizeof(float));
    step_loss[s] = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL) * scale;
    adam_step(&opt, m.params, m.grads);
  }
  hid_t dl = H5Dopen2(g_file, "/adam/losses", H5P_DEFAULT);
  double losses[2];
  H5Dread(dl, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, losses);
  H5Dclose(dl);
  CHECK_CLOSE(step_loss[0], losses[0], 0, 1e-5);
  CHECK_CLOSE(step_loss[1], losses[1], 0, 1e-5);
  compare_records(&m, "adam/weights", m.params, 0, CMP_ADAM);
  adam_free(&opt);
  xfree(x);
  xfree(probs);
  unet_destroy(&m);
  H5Fclose(g_file);
  CHECK_DONE();
}
