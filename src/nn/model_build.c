/* model_build.c - the U-Net's layers and variables in Keras model order, the
 * parameter arenas, and Keras initialisation. The forward/backward wiring is in
 * model_step.c; both share model_internal.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_internal.h"
#include "unet/rng.h"
#include "unet/util.h"

const char *const unet_time_kind_names[TIME_KINDS] = {"conv2d", "conv2d_transpose", "separable_conv2d",
                                                       "batch_norm", "maxpool/upsample", "relu/add/copy",
                                                       "softmax_xent"};

/* ---- building the layer and variable tables ------------------------------ */

typedef struct {
  UNet *m;
  int counters[9]; /* per Keras class, for the _N name suffixes */
} Builder;

enum { K_INPUT, K_CONV, K_BN, K_ACT, K_SEP, K_POOL, K_ADD, K_CONVT, K_UP, K_CLASSES };
static const char *const keras_class_names[] = {"input_layer", "conv2d", "batch_normalization", "activation",
                                                "separable_conv2d", "max_pooling2d", "add", "conv2d_transpose",
                                                "up_sampling2d"};

static int add_layer(Builder *b, int kind) {
  UNet *m = b->m;
  ModelLayer *l = &m->layers[m->num_layers];
  int n = b->counters[kind]++;
  if (n == 0)
    snprintf(l->name, sizeof l->name, "%s", keras_class_names[kind]);
  else
    snprintf(l->name, sizeof l->name, "%s_%d", keras_class_names[kind], n);
  l->first_var = m->num_vars;
  l->num_vars = 0;
  return m->num_layers++;
}

static int add_var(Builder *b, int layer, VarRole role, int trainable, int ndim, int d0, int d1, int d2, int d3) {
  UNet *m = b->m;
  ModelVar *v = &m->vars[m->num_vars];
  memset(v, 0, sizeof *v);
  snprintf(v->layer, sizeof v->layer, "%s", m->layers[layer].name);
  v->index = m->layers[layer].num_vars++;
  v->role = role;
  v->ndim = ndim;
  int dims[4] = {d0, d1, d2, d3};
  v->size = 1;
  for (int i = 0; i < ndim; i++) {
    v->shape[i] = dims[i];
    v->size *= (size_t)dims[i];
  }
  v->trainable = trainable;
  if (trainable) {
    v->offset = m->num_params;
    m->num_params += v->size;
  } else {
    v->offset = m->num_state;
    m->num_state += v->size;
  }
  if (ndim == 4) { /* glorot on the Keras kernel shape (kh, kw, a, b) */
    int rf = dims[0] * dims[1];
    v->fan_in = rf * dims[2];
    v->fan_out = rf * dims[3];
  }
  return m->num_vars++;
}

static ConvVars build_conv(Builder *b, int k, int cin, int cout) {
  int l = add_layer(b, K_CONV);
  ConvVars c;
  c.kernel = add_var(b, l, VAR_KERNEL, 1, 4, k, k, cin, cout);
  c.bias = add_var(b, l, VAR_BIAS, 1, 1, cout, 0, 0, 0);
  return c;
}

static ConvVars build_convt(Builder *b, int cin, int cout) {
  int l = add_layer(b, K_CONVT);
  ConvVars c;
  c.kernel = add_var(b, l, VAR_KERNEL, 1, 4, 3, 3, cout, cin); /* Keras (kh, kw, out, in) */
  c.bias = add_var(b, l, VAR_BIAS, 1, 1, cout, 0, 0, 0);
  return c;
}

static SepVars build_sep(Builder *b, int cin, int cout) {
  int l = add_layer(b, K_SEP);
  SepVars s;
  s.depthwise = add_var(b, l, VAR_DEPTHWISE, 1, 4, 3, 3, cin, 1);
  s.pointwise = add_var(b, l, VAR_POINTWISE, 1, 4, 1, 1, cin, cout);
  s.bias = add_var(b, l, VAR_BIAS, 1, 1, cout, 0, 0, 0);
  return s;
}

static BNVars build_bn(Builder *b, int c) {
  int l = add_layer(b, K_BN);
  BNVars v;
  v.gamma = add_var(b, l, VAR_GAMMA, 1, 1, c, 0, 0, 0);
  v.beta = add_var(b, l, VAR_BETA, 1, 1, c, 0, 0, 0);
  v.mean = add_var(b, l, VAR_MOVING_MEAN, 0, 1, c, 0, 0, 0);
  v.var = add_var(b, l, VAR_MOVING_VARIANCE, 0, 1, c, 0, 0, 0);
  return v;
}

int unet_create(UNet *m, int height, int width, int num_classes, char *err, size_t err_len) {
  memset(m, 0, sizeof *m);
  m->loss = LOSS_SPEC_PLAIN; /* label 0 is a class, not ignored */
  if (height <= 0 || width <= 0 || height % UNET_SIZE_MULTIPLE || width % UNET_SIZE_MULTIPLE) {
    snprintf(err, err_len, "input size %dx%d is not a positive multiple of %d (the model halves it 4 times)", height,
             width, UNET_SIZE_MULTIPLE);
    return -1;
  }
  if (num_classes < 2 || num_classes > UNET_MAX_CLASSES) {
    snprintf(err, err_len, "class count %d out of range 2..%d", num_classes, UNET_MAX_CLASSES);
    return -1;
  }
  m->height = height;
  m->width = width;
  m->num_classes = num_classes;
  m->bn_momentum = 0.99f;
  m->bn_epsilon = 1e-3f;
  m->vars = xcalloc(UNET_MAX_VARS, sizeof(ModelVar), "model variable table");
  m->layers = xcalloc(UNET_MAX_LAYERS, sizeof(ModelLayer), "model layer table");
  UNetImpl *impl = xcalloc(1, sizeof(UNetImpl), "model wiring");
  m->impl = impl;
  Builder b = {.m = m};

  add_layer(&b, K_INPUT);
  /* entry: Conv2D(32, 3, strides 2) -> BN -> ReLU */
  impl->entry_conv = build_conv(&b, 3, 3, UNET_ENTRY_FILTERS);
  impl->entry_bn = build_bn(&b, UNET_ENTRY_FILTERS);
  add_layer(&b, K_ACT);

  int cin = UNET_ENTRY_FILTERS;
  for (int i = 0; i < UNET_DOWN_BLOCKS; i++) {
    int f = unet_down_filters[i];
    DownBlock *d = &impl->down[i];
    d->cin = cin;
    d->f = f;
    add_layer(&b, K_ACT);
    d->sep1 = build_sep(&b, cin, f);
    d->bn1 = build_bn(&b, f);
    add_layer(&b, K_ACT);
    d->sep2 = build_sep(&b, f, f);
    d->bn2 = build_bn(&b, f);
    add_layer(&b, K_POOL);
    d->res = build_conv(&b, 1, cin, f);
    add_layer(&b, K_ADD);
    cin = f;
  }
  for (int i = 0; i < UNET_UP_BLOCKS; i++) {
    int f = unet_up_filters[i];
    UpBlock *u = &impl->up[i];
    u->cin = cin;
    u->f = f;
    add_layer(&b, K_ACT);
    u->ct1 = build_convt(&b, cin, f);
    u->bn1 = build_bn(&b, f);
    add_layer(&b, K_ACT);
    u->ct2 = build_convt(&b, f, f);
    u->bn2 = build_bn(&b, f);
    add_layer(&b, K_UP);
    add_layer(&b, K_UP);
    u->res = build_conv(&b, 1, cin, f);
    add_layer(&b, K_ADD);
    cin = f;
  }
  impl->head_cin = cin; /* the last up block's filters */
  impl->head = build_conv(&b, 3, cin, num_classes);

  m->params = xcalloc(m->num_params, sizeof(float), "parameters");
  m->grads = xcalloc(m->num_params, sizeof(float), "gradients");
  m->state = xcalloc(m->num_state, sizeof(float), "BatchNorm moving statistics");
  unet_init_keras(m, 1337);
  return 0;
}

void unet_destroy(UNet *m) {
  if (!m) return;
  unet_release_plan(m);
  xfree(m->impl);
  xfree(m->vars);
  xfree(m->layers);
  xfree(m->params);
  xfree(m->grads);
  xfree(m->state);
  memset(m, 0, sizeof *m);
}

void unet_init_keras(UNet *m, uint64_t seed) {
  UnetRng rng;
  rng_seed(&rng, seed);
  for (int i = 0; i < m->num_vars; i++) {
    const ModelVar *v = &m->vars[i];
    float *w = unet_var_data(m, v);
    float value = 0.0f;
    switch (v->role) {
    case VAR_KERNEL:
    case VAR_DEPTHWISE:
    case VAR_POINTWISE: {
      float limit = (float)sqrt(6.0 / (double)(v->fan_in + v->fan_out));
      for (size_t j = 0; j < v->size; j++) w[j] = rng_uniform_range(&rng, -limit, limit);
      continue;
    }
    case VAR_GAMMA:
    case VAR_MOVING_VARIANCE: value = 1.0f; break;
    default: value = 0.0f; break;
    }
    for (size_t j = 0; j < v->size; j++) w[j] = value;
  }
}

const ModelVar *unet_find_var(const UNet *m, const char *layer, int index) {
  for (int i = 0; i < m->num_vars; i++)
    if (m->vars[i].index == index && strcmp(m->vars[i].layer, layer) == 0) return &m->vars[i];
  return NULL;
}

float *unet_var_data(UNet *m, const ModelVar *v) { return (v->trainable ? m->params : m->state) + v->offset; }

size_t unet_param_count_total(const UNet *m) { return m->num_params + m->num_state; }
