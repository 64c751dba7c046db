/* compare_h5.c - test helper: compares every float dataset under /layers of
 * two Keras-layout files (weights, checkpoints, gradient dumps).
 *   compare-h5 A B [--rtol X] [--atol Y]   per dataset, in the L2 norm:
 *       ||a-b|| <= atol * sqrt(n) + rtol * ||b||   (elementwise ratios are
 *       meaningless where float sums cancel, e.g. the gradient of a bias that
 *       feeds a BatchNorm, exactly zero in exact arithmetic)
 *   compare-h5 A B --exact      bit-identical values
 *   --apart GLOBS --apart-max Z: datasets matching one of the comma-separated
 *       fnmatch patterns are compared apart, elementwise |a-b| <= Z (the biases
 *       that feed a BatchNorm: zero true gradient, so under Adam they move by
 *       float noise scaled to the learning rate, not in proportion to a value)
 * Prints the worst dataset; exit 0 equal, 1 different, 2 unreadable. */
#include <hdf5.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  hid_t other;
  double rtol, atol;
  int exact, compared, failed;
  double worst_rel;
  const char *apart;
  double apart_max, apart_worst;
  int apart_count;
  char worst[512];
} Ctx;

static float *read_all(hid_t file, const char *name, hssize_t *n) {
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  if (d < 0) return NULL;
  hid_t sp = H5Dget_space(d);
  *n = H5Sget_simple_extent_npoints(sp);
  float *buf = malloc((*n > 0 ? *n : 1) * sizeof(float));
  if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    free(buf);
    buf = NULL;
  }
  H5Sclose(sp);
  H5Dclose(d);
  return buf;
}

static int is_apart(const char *globs, const char *name) {
  if (!globs) return 0;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", globs);
  for (char *save = NULL, *g = strtok_r(buf, ",", &save); g; g = strtok_r(NULL, ",", &save))
    if (fnmatch(g, name, 0) == 0) return 1;
  return 0;
}

static herr_t visit(hid_t obj, const char *name, const H5O_info_t *info, void *op) {
  Ctx *c = op;
  if (info->type != H5O_TYPE_DATASET || strncmp(name, "layers/", 7) != 0) return 0;
  hid_t d = H5Dopen2(obj, name, H5P_DEFAULT);
  hid_t t = H5Dget_type(d);
  int is_float = H5Tget_class(t) == H5T_FLOAT;
  H5Tclose(t);
  H5Dclose(d);
  if (!is_float) return 0;
  hssize_t na = 0, nb = 0;
  float *a = read_all(obj, name, &na), *b = read_all(c->other, name, &nb);
  c->compared++;
  if (a && b && na == nb && !c->exact && is_apart(c->apart, name)) {
    double dev = 0;
    for (hssize_t i = 0; i < na; i++) dev = fmax(dev, fabs((double)a[i] - b[i]));
    c->apart_count++;
    c->apart_worst = fmax(c->apart_worst, dev);
    if (dev > c->apart_max) {
      c->failed++;
      fprintf(stderr, "  %s (apart): max |diff| %.3g > %.3g\n", name, dev, c->apart_max);
    }
    free(a);
    free(b);
    return 0;
  }
  if (!a || !b || na != nb) {
    fprintf(stderr, "%s: missing or different size in the second file\n", name);
    c->failed++;
  } else {
    double norm_b = 0, norm_d = 0, dev = 0;
    for (hssize_t i = 0; i < na; i++) {
      double d = (double)a[i] - b[i];
      if (c->exact && memcmp(&a[i], &b[i], sizeof(float)) != 0) dev = INFINITY;
      dev = fmax(dev, fabs(d));
      norm_d += d * d;
      norm_b += (double)b[i] * b[i];
    }
    norm_b = sqrt(norm_b);
    norm_d = sqrt(norm_d);
    double rel = norm_b > 0 ? norm_d / norm_b : norm_d;
    int bad = c->exact ? dev != 0 : norm_d > c->atol * sqrt((double)na) + c->rtol * norm_b;
    if (bad) {
      c->failed++;
      fprintf(stderr, "  %s: ||diff|| %.3g, ||b|| %.3g (relative %.3g)\n", name, norm_d, norm_b, rel);
    }
    if ((!c->exact || bad) && (rel > c->worst_rel || c->worst[0] == 0)) {
      c->worst_rel = rel;
      snprintf(c->worst, sizeof c->worst, "%s (||diff|| %.3g, ||value|| %.3g)", name, norm_d, norm_b);
    }
  }
  free(a);
  free(b);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: compare-h5 A B [--rtol X | --exact]\n");
    return 2;
  }
  Ctx c = {0};
  c.rtol = 1e-5;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--exact")) c.exact = 1;
    else if (!strcmp(argv[i], "--rtol") && i + 1 < argc) c.rtol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--atol") && i + 1 < argc) c.atol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--apart") && i + 1 < argc) c.apart = argv[++i];
    else if (!strcmp(argv[i], "--apart-max") && i + 1 < argc) c.apart_max = atof(argv[++i]);
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t fa = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT), fb = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (fa < 0 || fb < 0) {
    fprintf(stderr, "cannot open %s\n", fa < 0 ? argv[1] : argv[2]);
    return 2;
  }
  c.other = fb;
  H5Ovisit2(fa, H5_INDEX_NAME, H5_ITER_NATIVE, visit, &c, H5O_INFO_BASIC);
  printf("%d datasets compared, %d differ (%s); worst: %s, relative %.3g\n", c.compared, c.failed,
         c.exact ? "exact" : "rtol", c.worst, c.worst_rel);
  if (c.apart_count) printf("%d compared apart, worst max |diff| %.3g\n", c.apart_count, c.apart_worst);
  H5Fclose(fa);
  H5Fclose(fb);
  return c.failed || c.compared == 0 ? 1 : 0;
}
