/* test_checkpoint.c - the Keras 3 weights file and the training checkpoint
 * (src/io): bit-exact round trips, the file's layout against the spec table
 * (docs/model.md, 160x160x3 -> 3 classes), named errors that
 * leave the model untouched, and atomic saves (missing directory, a failure in
 * the middle of a write, a write that hits a file-size limit). */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <dirent.h>
#include <hdf5.h>
#include <zlib.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "unet/adam.h"
#include "unet/checkpoint.h"
#include "unet/weights_keras.h"
#include "unet/model.h"
#include "unet/rng.h"
#include "unet/util.h"

/* ---- the spec table: layer, Keras shapes of its variables in order, params ---- */
typedef struct {
  const char *layer;
  const char *shapes; /* space-separated, as the spec writes them */
  long params;
} SpecLayer;

static const SpecLayer spec_table[] = {
    {"conv2d", "(3,3,3,32) (32)", 896},
    {"batch_normalization", "(32) (32) (32) (32)", 128},
    {"separable_conv2d", "(3,3,32,1) (1,1,32,64) (64)", 2400},
    {"batch_normalization_1", "(64) (64) (64) (64)", 256},
    {"separable_conv2d_1", "(3,3,64,1) (1,1,64,64) (64)", 4736},
    {"batch_normalization_2", "(64) (64) (64) (64)", 256},
    {"conv2d_1", "(1,1,32,64) (64)", 2112},
    {"separable_conv2d_2", "(3,3,64,1) (1,1,64,128) (128)", 8896},
    {"batch_normalization_3", "(128) (128) (128) (128)", 512},
    {"separable_conv2d_3", "(3,3,128,1) (1,1,128,128) (128)", 17664},
    {"batch_normalization_4", "(128) (128) (128) (128)", 512},
    {"conv2d_2", "(1,1,64,128) (128)", 8320},
    {"separable_conv2d_4", "(3,3,128,1) (1,1,128,256) (256)", 34176},
    {"batch_normalization_5", "(256) (256) (256) (256)", 1024},
    {"separable_conv2d_5", "(3,3,256,1) (1,1,256,256) (256)", 68096},
    {"batch_normalization_6", "(256) (256) (256) (256)", 1024},
    {"conv2d_3", "(1,1,128,256) (256)", 33024},
    {"conv2d_transpose", "(3,3,256,256) (256)", 590080},
    {"batch_normalization_7", "(256) (256) (256) (256)", 1024},
    {"conv2d_transpose_1", "(3,3,256,256) (256)", 590080},
    {"batch_normalization_8", "(256) (256) (256) (256)", 1024},
    {"conv2d_4", "(1,1,256,256) (256)", 65792},
    {"conv2d_transpose_2", "(3,3,128,256) (128)", 295040},
    {"batch_normalization_9", "(128) (128) (128) (128)", 512},
    {"conv2d_transpose_3", "(3,3,128,128) (128)", 147584},
    {"batch_normalization_10", "(128) (128) (128) (128)", 512},
    {"conv2d_5", "(1,1,256,128) (128)", 32896},
    {"conv2d_transpose_4", "(3,3,64,128) (64)", 73792},
    {"batch_normalization_11", "(64) (64) (64) (64)", 256},
    {"conv2d_transpose_5", "(3,3,64,64) (64)", 36928},
    {"batch_normalization_12", "(64) (64) (64) (64)", 256},
    {"conv2d_6", "(1,1,128,64) (64)", 8256},
    {"conv2d_transpose_6", "(3,3,32,64) (32)", 18464},
    {"batch_normalization_13", "(32) (32) (32) (32)", 128},
    {"conv2d_transpose_7", "(3,3,32,32) (32)", 9248},
    {"batch_normalization_14", "(32) (32) (32) (32)", 128},
    {"conv2d_7", "(1,1,64,32) (32)", 2080},
    {"conv2d_8", "(3,3,32,3) (3)", 867},
};
enum { SPEC_LAYERS = sizeof spec_table / sizeof spec_table[0] };

/* Layers without variables in the Keras model: class name and how many. */
static const struct {
  const char *prefix;
  int count;
} varless[] = {{"input_layer", 1}, {"activation", 15}, {"max_pooling2d", 3}, {"up_sampling2d", 8}, {"add", 7}};

static char tmpdir[256];

static void tmp_file(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", tmpdir, name); }

static void format_dims(char *out, size_t len, int ndim, const hsize_t *dims) {
  size_t used = (size_t)snprintf(out, len, "(");
  for (int i = 0; i < ndim; i++) used += (size_t)snprintf(out + used, len - used, i ? ",%llu" : "%llu",
                                                          (unsigned long long)dims[i]);
  snprintf(out + used, len - used, ")");
}

/* "(3,3,3,32) (32)" of /layers/<layer>/vars/0.. as stored in the file. */
static void file_shapes(hid_t f, const char *layer, char *out, size_t len, long *elements, int *nvars) {
  char gpath[128];
  snprintf(gpath, sizeof gpath, "/layers/%s/vars", layer);
  out[0] = 0;
  *elements = 0;
  *nvars = -1;
  if (H5Lexists(f, "layers", H5P_DEFAULT) <= 0) return;
  hid_t lg = H5Gopen2(f, "layers", H5P_DEFAULT);
  int has = H5Lexists(lg, layer, H5P_DEFAULT) > 0;
  H5Gclose(lg);
  if (!has) return;
  hid_t g = H5Gopen2(f, gpath, H5P_DEFAULT);
  if (g < 0) return;
  H5G_info_t info;
  H5Gget_info(g, &info);
  *nvars = (int)info.nlinks;
  size_t used = 0;
  for (int i = 0; i < *nvars; i++) {
    char name[16];
    snprintf(name, sizeof name, "%d", i);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) { *nvars = -2; break; }
    hid_t s = H5Dget_space(d);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_dims(s, dims, NULL);
    hid_t t = H5Dget_type(d);
    /* float32 little-endian, as numpy writes it */
    CHECK_MSG(H5Tequal(t, H5T_IEEE_F32LE) > 0, "%s/%s is not float32", gpath, name);
    CHECK_MSG(H5Aget_num_attrs(d) == 0, "%s/%s carries attributes", gpath, name);
    H5Tclose(t);
    long n = 1;
    for (int k = 0; k < nd; k++) n *= (long)dims[k];
    *elements += n;
    char one[64];
    format_dims(one, sizeof one, nd, dims);
    used += (size_t)snprintf(out + used, len - used, i ? " %s" : "%s", one);
    H5Sclose(s);
    H5Dclose(d);
  }
  H5Gclose(g);
}

static long group_links(hid_t f, const char *path) {
  hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
  if (g < 0) return -1;
  H5G_info_t info;
  H5Gget_info(g, &info);
  H5Gclose(g);
  return (long)info.nlinks;
}

static int count_tmp_files(void) {
  DIR *d = opendir(tmpdir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) n++;
  if (d) closedir(d);
  return n;
}

static void randomize(float *x, size_t n, UnetRng *r, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = rng_uniform_range(r, lo, hi);
}

/* Values that a lossy path would not keep: -0, a subnormal, a NaN payload, inf. */
static void add_special_values(float *x) {
  uint32_t nan_bits = 0x7fc01234u;
  x[0] = -0.0f;
  x[1] = 1e-40f;
  memcpy(&x[2], &nan_bits, sizeof nan_bits);
  x[3] = -INFINITY;
}

static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static int model_equals(const UNet *a, const UNet *b) {
  return a->num_params == b->num_params && a->num_state == b->num_state &&
         same_bits(a->params, b->params, a->num_params) && same_bits(a->state, b->state, a->num_state);
}

/* Edits a copy of a saved file with HDF5 directly to build broken inputs. */
static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  if (!in || !out) {
    if (in) fclose(in);
    if (out) fclose(out);
    return -1;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  fclose(in);
  return fclose(out);
}

static void expect_error(int rc, const char *err, const char *part1, const char *part2, const char *part3) {
  CHECK_MSG(rc != 0, "load succeeded, expected an error mentioning %s", part1);
  CHECK_MSG(strstr(err, part1) != NULL, "message '%s' lacks '%s'", err, part1);
  if (part2) CHECK_MSG(strstr(err, part2) != NULL, "message '%s' lacks '%s'", err, part2);
  if (part3) CHECK_MSG(strstr(err, part3) != NULL, "message '%s' lacks '%s'", err, part3);
  printf("  expected error: %s\n", err);
}

/* ---- 1. the model's variable table and the file's layout vs. the spec ------ */
static void test_layout(void) {
  char err[512];
  UNet m;
  CHECK(unet_create(&m, 160, 160, 3, err, sizeof err) == 0);
  CHECK(m.num_params == 2055203);
  CHECK(m.num_state == 3776);
  CHECK(unet_param_count_total(&m) == 2058979);

  /* the model's own table, layer by layer */
  long total = 0;
  int vars_seen = 0;
  for (int i = 0; i < SPEC_LAYERS; i++) {
    const SpecLayer *s = &spec_table[i];
    char shapes[256] = "";
    size_t used = 0;
    long elements = 0;
    int n = 0;
    for (int k = 0; k < 8; k++) {
      const ModelVar *v = unet_find_var(&m, s->layer, k);
      if (!v) break;
      hsize_t dims[4];
      for (int d = 0; d < v->ndim; d++) dims[d] = (hsize_t)v->shape[d];
      char one[64];
      format_dims(one, sizeof one, v->ndim, dims);
      used += (size_t)snprintf(shapes + used, sizeof shapes - used, k ? " %s" : "%s", one);
      elements += (long)v->size;
      CHECK_MSG(v->trainable == !(strncmp(s->layer, "batch_normalization", 19) == 0 && k >= 2),
                "%s variable %d trainable flag", s->layer, k);
      n++;
    }
    vars_seen += n;
    CHECK_MSG(strcmp(shapes, s->shapes) == 0, "model table %s: %s, spec %s", s->layer, shapes, s->shapes);
    CHECK_MSG(elements == s->params, "model table %s: %ld params, spec %ld", s->layer, elements, s->params);
    total += elements;
  }
  CHECK(total == 2058979);
  CHECK(vars_seen == m.num_vars);

  /* the file */
  char path[512];
  tmp_file(path, sizeof path, "layout.weights.h5");
  CHECK(weights_save_keras(&m, path, err, sizeof err) == 0);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(f >= 0);
  if (f < 0) { unet_destroy(&m); return; }
  CHECK(group_links(f, "/") == 2);       /* exactly /layers and /vars */
  CHECK(group_links(f, "/vars") == 0);   /* the Functional model's own (empty) variables */
  hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
  /* Keras writes no attributes and reads none: our root attributes are the
   * training size and the CRC-32 of the two arenas (zlib's, computed here
   * over the model's own arenas) */
  CHECK(H5Aget_num_attrs(root) == 3);
  const struct {
    const char *name;
    const float *arena;
    size_t n;
  } crcs[] = {{"unet_crc32_params", m.params, m.num_params}, {"unet_crc32_state", m.state, m.num_state}};
  for (int k = 0; k < 2; k++) {
    uint32_t stored = 0, want = (uint32_t)crc32(0, (const unsigned char *)crcs[k].arena, (uInt)(crcs[k].n * 4));
    hid_t a = H5Aopen(root, crcs[k].name, H5P_DEFAULT);
    CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_UINT32, &stored) >= 0);
    if (a >= 0) H5Aclose(a);
    CHECK_MSG(stored == want && want != 0, "%s = 0x%08x, crc32 of the arena 0x%08x", crcs[k].name, stored, want);
  }
  int32_t size[2] = {0, 0};
  hid_t attr = H5Aopen(root, "unet_input_size", H5P_DEFAULT);
  CHECK(attr >= 0 && H5Aread(attr, H5T_NATIVE_INT32, size) >= 0);
  if (attr >= 0) H5Aclose(attr);
  CHECK_MSG(size[0] == m.height && size[1] == m.width, "unet_input_size %d x %d, model %d x %d", size[0], size[1],
            m.height, m.width);
  H5Gclose(root);
  int layers_with_vars = 0;
  long file_total = 0;
  for (int i = 0; i < SPEC_LAYERS; i++) {
    char shapes[256];
    long elements;
    int nvars;
    file_shapes(f, spec_table[i].layer, shapes, sizeof shapes, &elements, &nvars);
    CHECK_MSG(strcmp(shapes, spec_table[i].shapes) == 0, "file %s: '%s', spec '%s'", spec_table[i].layer, shapes,
              spec_table[i].shapes);
    file_total += elements;
    layers_with_vars++;
  }
  CHECK(file_total == 2058979);
  /* layers without variables: each has an empty vars group */
  int varless_total = 0;
  for (size_t c = 0; c < sizeof varless / sizeof varless[0]; c++) {
    for (int k = 0; k < varless[c].count; k++) {
      char name[64], gpath[128];
      if (k == 0) snprintf(name, sizeof name, "%s", varless[c].prefix);
      else snprintf(name, sizeof name, "%s_%d", varless[c].prefix, k);
      snprintf(gpath, sizeof gpath, "/layers/%s/vars", name);
      CHECK_MSG(group_links(f, gpath) == 0, "%s should exist and be empty", gpath);
      varless_total++;
    }
    /* and no more of that class */
    char name[64];
    snprintf(name, sizeof name, "%s_%d", varless[c].prefix, varless[c].count);
    hid_t lg = H5Gopen2(f, "layers", H5P_DEFAULT);
    CHECK_MSG(H5Lexists(lg, name, H5P_DEFAULT) == 0, "unexpected layer %s", name);
    H5Gclose(lg);
  }
  CHECK(group_links(f, "/layers") == layers_with_vars + varless_total);
  CHECK(group_links(f, "/layers") == 72);
  H5Fclose(f);

  /* a 32x32 model has the very same variables (the net is fully convolutional) */
  UNet small;
  CHECK(unet_create(&small, 32, 32, 3, err, sizeof err) == 0);
  CHECK(small.num_vars == m.num_vars && small.num_params == m.num_params && small.num_state == m.num_state);
  for (int i = 0; i < small.num_vars && i < m.num_vars; i++)
    CHECK(strcmp(small.vars[i].layer, m.vars[i].layer) == 0 && small.vars[i].size == m.vars[i].size);
  unet_destroy(&small);
  unet_destroy(&m);
  unlink(path);
}

/* ---- 2. weights round trip and load errors --------------------------------- */
static void test_weights(void) {
  char err[512], path[512], bad[512];
  UNet a, b, snapshot;
  CHECK(unet_create(&a, 32, 32, 3, err, sizeof err) == 0);
  CHECK(unet_create(&b, 32, 32, 3, err, sizeof err) == 0);
  CHECK(unet_create(&snapshot, 32, 32, 3, err, sizeof err) == 0);
  unet_init_keras(&a, 11);
  UnetRng r;
  rng_seed(&r, 2024);
  randomize(a.params, a.num_params, &r, -3.0f, 3.0f);
  randomize(a.state, a.num_state, &r, 0.0f, 5.0f);
  add_special_values(a.params);
  add_special_values(a.state);
  unet_init_keras(&b, 99);
  CHECK(!model_equals(&a, &b));

  tmp_file(path, sizeof path, "a.weights.h5");
  CHECK(weights_save_keras(&a, path, err, sizeof err) == 0);
  CHECK(count_tmp_files() == 0);
  CHECK(weights_load_keras(&b, path, err, sizeof err) == 0);
  CHECK_MSG(model_equals(&a, &b), "weights round trip is not bit-exact");

  /* The errors below must leave b exactly as it is. */
  unet_init_keras(&b, 5);
  memcpy(snapshot.params, b.params, b.num_params * sizeof(float));
  memcpy(snapshot.state, b.state, b.num_state * sizeof(float));

  /* a missing layer */
  tmp_file(bad, sizeof bad, "missing_layer.weights.h5");
  CHECK(copy_file(path, bad) == 0);
  hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(H5Ldelete(f, "/layers/separable_conv2d_4", H5P_DEFAULT) >= 0);
  H5Fclose(f);
  expect_error(weights_load_keras(&b, bad, err, sizeof err), err, "separable_conv2d_4", "missing", bad);
  CHECK(model_equals(&b, &snapshot));

  /* a missing variable */
  tmp_file(bad, sizeof bad, "missing_var.weights.h5");
  CHECK(copy_file(path, bad) == 0);
  f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(H5Ldelete(f, "/layers/batch_normalization_9/vars/3", H5P_DEFAULT) >= 0);
  H5Fclose(f);
  expect_error(weights_load_keras(&b, bad, err, sizeof err), err, "batch_normalization_9", "3 variables", "expects 4");
  CHECK(model_equals(&b, &snapshot));

  /* a wrong shape, late in the file, so earlier layers have been read already */
  tmp_file(bad, sizeof bad, "wrong_shape.weights.h5");
  CHECK(copy_file(path, bad) == 0);
  f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(H5Ldelete(f, "/layers/conv2d_transpose_3/vars/0", H5P_DEFAULT) >= 0);
  hsize_t dims[4] = {3, 3, 64, 128};
  hid_t space = H5Screate_simple(4, dims, NULL);
  hid_t d = H5Dcreate2(f, "/layers/conv2d_transpose_3/vars/0", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT);
  float *zeros = calloc(3 * 3 * 64 * 128, sizeof(float));
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
  free(zeros);
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(f);
  expect_error(weights_load_keras(&b, bad, err, sizeof err), err, "layer conv2d_transpose_3 variable 0",
               "(3,3,64,128)", "(3,3,128,128)");
  CHECK(model_equals(&b, &snapshot));

  /* an extra layer: the file is for a different model */
  tmp_file(bad, sizeof bad, "extra_layer.weights.h5");
  CHECK(copy_file(path, bad) == 0);
  f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t g = H5Gcreate2(f, "/layers/dense", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Gclose(H5Gcreate2(g, "vars", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Gclose(g);
  H5Fclose(f);
  expect_error(weights_load_keras(&b, bad, err, sizeof err), err, "layer dense", "not part of this model", NULL);
  CHECK(model_equals(&b, &snapshot));

  /* a model with another class count: the head differs */
  UNet four;
  CHECK(unet_create(&four, 32, 32, 4, err, sizeof err) == 0);
  expect_error(weights_load_keras(&four, path, err, sizeof err), err, "conv2d_8", "(3,3,32,3)", "(3,3,32,4)");
  unet_destroy(&four);

  /* not HDF5, and absent */
  tmp_file(bad, sizeof bad, "garbage.weights.h5");
  FILE *gf = fopen(bad, "wb");
  fputs("this is not hdf5\n", gf);
  fclose(gf);
  expect_error(weights_load_keras(&b, bad, err, sizeof err), err, "not an HDF5 file", bad, NULL);
  tmp_file(bad, sizeof bad, "absent.weights.h5");
  expect_error(weights_load_keras(&b, bad, err, sizeof err), err, "absent.weights.h5", "No such file", NULL);
  CHECK(model_equals(&b, &snapshot));

  /* a weights file is not a checkpoint */
  Adam opt;
  adam_init(&opt, b.num_params, 1e-4);
  TrainState ts;
  memset(&ts, 0, sizeof ts);
  expect_error(checkpoint_load(&b, &opt, &ts, path, err, sizeof err), err,
               "not a training checkpoint (no /optimizer group)", NULL, NULL);
  CHECK(model_equals(&b, &snapshot));
  adam_free(&opt);

  unet_destroy(&a);
  unet_destroy(&b);
  unet_destroy(&snapshot);
}

/* ---- 3. checkpoint round trip ------------------------------------------------ */
static void test_checkpoint(void) {
  char err[512], path[512], bad[512];
  UNet a, b;
  CHECK(unet_create(&a, 32, 32, 3, err, sizeof err) == 0);
  CHECK(unet_create(&b, 32, 32, 3, err, sizeof err) == 0);
  UnetRng r;
  rng_seed(&r, 77);
  randomize(a.params, a.num_params, &r, -1.0f, 1.0f);
  randomize(a.state, a.num_state, &r, 0.0f, 2.0f);
  Adam oa, ob;
  adam_init(&oa, a.num_params, 1e-4);
  adam_init(&ob, b.num_params, 0.5);
  randomize(oa.m, a.num_params, &r, -0.01f, 0.01f);
  randomize(oa.v, a.num_params, &r, 0.0f, 1e-4f);
  add_special_values(oa.m);
  oa.iterations = 123456789012LL;
  oa.beta1 = 0.85;
  oa.epsilon = 1e-8;

  TrainState ta, tb;
  memset(&ta, 0, sizeof ta);
  memset(&tb, 0xAB, sizeof tb);
  ta.epoch = 7;
  ta.step = 1234;
  ta.step_in_epoch = 3;
  ta.best_val_loss = INFINITY;
  ta.seed = -42;
  ta.world_size = 2;
  ta.global_batch = 16;

  tmp_file(path, sizeof path, "train.ckpt.h5");
  CHECK(checkpoint_save(&a, &oa, &ta, path, err, sizeof err) == 0);
  CHECK(checkpoint_load(&b, &ob, &tb, path, err, sizeof err) == 0);
  CHECK_MSG(model_equals(&a, &b), "checkpoint weights not bit-exact");
  CHECK(same_bits(oa.m, ob.m, a.num_params));
  CHECK(same_bits(oa.v, ob.v, a.num_params));
  CHECK(ob.iterations == 123456789012LL);
  CHECK(ob.lr == 1e-4 && ob.beta1 == 0.85 && ob.beta2 == 0.999 && ob.epsilon == 1e-8);
  CHECK(tb.epoch == 7 && tb.step == 1234 && tb.step_in_epoch == 3 && tb.seed == -42);
  CHECK(isinf(tb.best_val_loss) && tb.best_val_loss > 0);
  CHECK(tb.world_size == 2 && tb.global_batch == 16);

  /* a finite best loss survives bit-exactly too */
  ta.best_val_loss = 0.7986123456789;
  CHECK(checkpoint_save(&a, &oa, &ta, path, err, sizeof err) == 0);
  CHECK(checkpoint_load(&b, &ob, &tb, path, err, sizeof err) == 0);
  CHECK(tb.best_val_loss == 0.7986123456789);

  /* Keras's optimizer layout: iterations, learning_rate, then m, v interleaved */
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  long trainable = 0;
  for (int i = 0; i < a.num_vars; i++) trainable += a.vars[i].trainable;
  /* 9 Conv2D x 2 + 8 Conv2DTranspose x 2 + 6 SeparableConv2D x 3 + 15 BN x 2 (gamma, beta) */
  CHECK(trainable == 82);
  CHECK(group_links(f, "/optimizer/vars") == 2 + 2 * 82);
  hid_t d = H5Dopen2(f, "/optimizer/vars/0", H5P_DEFAULT);
  hid_t t = H5Dget_type(d), s = H5Dget_space(d);
  CHECK(H5Tequal(t, H5T_STD_I64LE) > 0 && H5Sget_simple_extent_ndims(s) == 0);
  int64_t it = 0;
  H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &it);
  CHECK(it == 123456789012LL);
  H5Tclose(t), H5Sclose(s), H5Dclose(d);
  d = H5Dopen2(f, "/optimizer/vars/1", H5P_DEFAULT);
  t = H5Dget_type(d), s = H5Dget_space(d);
  float lr = 0;
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &lr);
  CHECK(H5Tequal(t, H5T_IEEE_F32LE) > 0 && H5Sget_simple_extent_ndims(s) == 0 && lr == 1e-4f);
  H5Tclose(t), H5Sclose(s), H5Dclose(d);
  /* slot 2+2k / 3+2k: momentum / velocity of trainable variable k, Keras shape */
  const ModelVar *head_kernel = unet_find_var(&a, "conv2d_8", 0);
  int k = 0;
  for (int i = 0; i < a.num_vars; i++) {
    if (&a.vars[i] == head_kernel) break;
    k += a.vars[i].trainable;
  }
  char name[64];
  snprintf(name, sizeof name, "/optimizer/vars/%d", 3 + 2 * k);
  d = H5Dopen2(f, name, H5P_DEFAULT);
  s = H5Dget_space(d);
  hsize_t dims[4] = {0};
  CHECK(H5Sget_simple_extent_ndims(s) == 4);
  H5Sget_simple_extent_dims(s, dims, NULL);
  CHECK(dims[0] == 3 && dims[1] == 3 && dims[2] == 32 && dims[3] == 3);
  float *vel = malloc(head_kernel->size * sizeof(float));
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vel);
  CHECK(same_bits(vel, oa.v + head_kernel->offset, head_kernel->size));
  free(vel);
  H5Sclose(s), H5Dclose(d);
  CHECK(H5Lexists(f, "/train", H5P_DEFAULT) > 0);
  /* /train holds each value once: no generator state, no third learning rate */
  CHECK(group_links(f, "/train") == 14);
  CHECK(H5Lexists(f, "/train/rng_state", H5P_DEFAULT) == 0 && H5Lexists(f, "/train/lr", H5P_DEFAULT) == 0);
  H5Fclose(f);

  /* a format-1 checkpoint (with rng_state and lr, never used) still loads */
  tmp_file(bad, sizeof bad, "v1.ckpt.h5");
  CHECK(copy_file(path, bad) == 0);
  f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  {
    int32_t one_version = 1;
    d = H5Dopen2(f, "/train/format_version", H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, &one_version);
    H5Dclose(d);
    hsize_t four = 4;
    uint64_t state[4] = {1, 2, 3, 4};
    s = H5Screate_simple(1, &four, NULL);
    d = H5Dcreate2(f, "/train/rng_state", H5T_STD_U64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, state);
    H5Dclose(d), H5Sclose(s);
    float old_lr = 5e-4f;
    s = H5Screate(H5S_SCALAR);
    d = H5Dcreate2(f, "/train/lr", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &old_lr);
    H5Dclose(d), H5Sclose(s);
  }
  H5Fclose(f);
  CHECK_MSG(checkpoint_load(&b, &ob, &tb, bad, err, sizeof err) == 0, "%s", err);
  CHECK(model_equals(&a, &b) && ob.lr == 1e-4 && tb.global_batch == 16 && tb.seed == -42);

  /* a checkpoint is also a valid weights file (Keras ignores /optimizer when not compiled, and /train) */
  unet_init_keras(&b, 3);
  CHECK(weights_load_keras(&b, path, err, sizeof err) == 0);
  CHECK(model_equals(&a, &b));

  /* missing /train: error, nothing changes */
  tmp_file(bad, sizeof bad, "no_train.ckpt.h5");
  CHECK(copy_file(path, bad) == 0);
  f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(H5Ldelete(f, "/train", H5P_DEFAULT) >= 0);
  H5Fclose(f);
  unet_init_keras(&b, 4);
  UNet snap;
  CHECK(unet_create(&snap, 32, 32, 3, err, sizeof err) == 0);
  memcpy(snap.params, b.params, b.num_params * sizeof(float));
  memcpy(snap.state, b.state, b.num_state * sizeof(float));
  ob.iterations = 5;
  memset(ob.m, 0, b.num_params * sizeof(float));
  TrainState before = tb;
  expect_error(checkpoint_load(&b, &ob, &tb, bad, err, sizeof err), err, "no /train group", NULL, NULL);
  CHECK(model_equals(&b, &snap) && ob.iterations == 5 && ob.m[0] == 0.0f && memcmp(&before, &tb, sizeof tb) == 0);

  /* a wrong Adam moment shape names the variable */
  tmp_file(bad, sizeof bad, "bad_moment.ckpt.h5");
  CHECK(copy_file(path, bad) == 0);
  f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  H5Ldelete(f, "/optimizer/vars/2", H5P_DEFAULT);
  hsize_t one = 7;
  s = H5Screate_simple(1, &one, NULL);
  d = H5Dcreate2(f, "/optimizer/vars/2", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  float seven[7] = {0};
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, seven);
  H5Dclose(d), H5Sclose(s), H5Fclose(f);
  expect_error(checkpoint_load(&b, &ob, &tb, bad, err, sizeof err), err, "momentum of layer conv2d variable 0", "(7)",
               "(3,3,3,32)");
  CHECK(model_equals(&b, &snap) && ob.iterations == 5);

  /* an Adam of the wrong size is refused before anything is written */
  Adam wrong;
  adam_init(&wrong, 10, 1e-3);
  tmp_file(bad, sizeof bad, "wrong_adam.ckpt.h5");
  expect_error(checkpoint_save(&a, &wrong, &ta, bad, err, sizeof err), err, "Adam holds 10 values", NULL, NULL);
  CHECK(access(bad, F_OK) != 0);
  adam_free(&wrong);

  unet_destroy(&snap);
  adam_free(&oa);
  adam_free(&ob);
  unet_destroy(&a);
  unet_destroy(&b);
}

/* ---- 4. atomic saves ----------------------------------------------------------- */
static void test_atomic(void) {
  char err[512], path[512], missing_dir[512];
  UNet a, b, saved;
  CHECK(unet_create(&a, 32, 32, 3, err, sizeof err) == 0);
  CHECK(unet_create(&b, 32, 32, 3, err, sizeof err) == 0);
  CHECK(unet_create(&saved, 32, 32, 3, err, sizeof err) == 0);
  unet_init_keras(&a, 1);
  unet_init_keras(&saved, 1);

  /* directory does not exist */
  snprintf(missing_dir, sizeof missing_dir, "%s/no/such/dir/w.weights.h5", tmpdir);
  expect_error(weights_save_keras(&a, missing_dir, err, sizeof err), err, "w.weights.h5", "No such file", NULL);
  CHECK(count_tmp_files() == 0);

  tmp_file(path, sizeof path, "keep.weights.h5");
  CHECK(weights_save_keras(&a, path, err, sizeof err) == 0);

  /* a failure in the middle of writing (duplicate layer name -> group creation
   * fails after many datasets were written): old file stays, no temporary */
  UNet broken = a;
  ModelLayer *layers = malloc((size_t)a.num_layers * sizeof *layers);
  memcpy(layers, a.layers, (size_t)a.num_layers * sizeof *layers);
  memcpy(layers[a.num_layers - 2].name, layers[a.num_layers - 3].name, UNET_NAME_LEN);
  broken.layers = layers;
  unet_init_keras(&a, 2); /* different values, so a partial overwrite would show */
  expect_error(weights_save_keras(&broken, path, err, sizeof err), err, "keep.weights.h5", "cannot create group",
               NULL);
  free(layers);
  CHECK(count_tmp_files() == 0);
  CHECK(weights_load_keras(&b, path, err, sizeof err) == 0);
  CHECK(model_equals(&b, &saved));

  /* a write that runs into a file-size limit (like a full disk) */
  struct rlimit old;
  getrlimit(RLIMIT_FSIZE, &old);
  struct rlimit small = old;
  small.rlim_cur = 256 * 1024; /* the file is ~8 MB */
  signal(SIGXFSZ, SIG_IGN);    /* get EFBIG instead of being killed */
  CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
  int rc = weights_save_keras(&a, path, err, sizeof err);
  setrlimit(RLIMIT_FSIZE, &old);
  expect_error(rc, err, "keep.weights.h5", NULL, NULL);
  CHECK(count_tmp_files() == 0);
  unet_init_keras(&b, 9);
  CHECK(weights_load_keras(&b, path, err, sizeof err) == 0);
  CHECK(model_equals(&b, &saved));

  /* a checkpoint save that fails the same way */
  Adam opt;
  adam_init(&opt, a.num_params, 1e-4);
  TrainState ts;
  memset(&ts, 0, sizeof ts);
  tmp_file(path, sizeof path, "keep.ckpt.h5");
  CHECK(checkpoint_save(&saved, &opt, &ts, path, err, sizeof err) == 0);
  CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
  rc = checkpoint_save(&a, &opt, &ts, path, err, sizeof err);
  setrlimit(RLIMIT_FSIZE, &old);
  expect_error(rc, err, "keep.ckpt.h5", NULL, NULL);
  CHECK(count_tmp_files() == 0);
  CHECK(checkpoint_load(&b, &opt, &ts, path, err, sizeof err) == 0);
  CHECK(model_equals(&b, &saved));
  adam_free(&opt);

  unet_destroy(&a);
  unet_destroy(&b);
  unet_destroy(&saved);
}

static void remove_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(tmpdir);
}

/* --keep DIR: write example files for tests/keras_layout_check.py and exit. */
static int write_examples(const char *dir) {
  char err[512], path[1024];
  UNet m;
  if (unet_create(&m, 160, 160, 3, err, sizeof err) != 0) return fprintf(stderr, "%s\n", err), 1;
  unet_init_keras(&m, 1);
  Adam opt;
  adam_init(&opt, m.num_params, 1e-4);
  UnetRng r;
  rng_seed(&r, 5);
  randomize(opt.m, m.num_params, &r, -1e-3f, 1e-3f);
  randomize(opt.v, m.num_params, &r, 0.0f, 1e-6f);
  opt.iterations = 270;
  TrainState ts;
  memset(&ts, 0, sizeof ts);
  ts.epoch = 27;
  ts.step = 270;
  ts.best_val_loss = 0.7986;
  ts.seed = 1337;
  ts.world_size = 2;
  ts.global_batch = 32;
  int rc = 0;
  snprintf(path, sizeof path, "%s/unet.weights.h5", dir);
  if (weights_save_keras(&m, path, err, sizeof err) != 0) rc = 1, fprintf(stderr, "%s\n", err);
  snprintf(path, sizeof path, "%s/unet.ckpt.h5", dir);
  if (checkpoint_save(&m, &opt, &ts, path, err, sizeof err) != 0) rc = 1, fprintf(stderr, "%s\n", err);
  adam_free(&opt);
  unet_destroy(&m);
  return rc;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "--keep") == 0) return write_examples(argv[2]);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/unet_test_checkpoint_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    fprintf(stderr, "cannot create a temporary directory\n");
    return 1;
  }
  test_layout();
  test_weights();
  test_checkpoint();
  test_atomic();
  remove_tmpdir();
  CHECK_DONE();
}
