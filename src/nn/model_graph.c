/* model_graph.c - the inference graph of a built UNet (model_graph.h), read off
 * the same block wiring (model_internal.h) that model_step.c's forward pass
 * runs, op for op. */
#include <stdio.h>
#include <string.h>

#include "model_internal.h"
#include "unet/model_graph.h"
#include "unet/util.h"

#define GRAPH_MAX_OPS (2 * UNET_MAX_LAYERS)

static const char *const kind_names[] = {"conv",    "depthwise", "conv_transpose", "batchnorm", "relu",
                                         "maxpool", "add",       "upsample",       "softmax"};

const char *unet_graph_op_kind_name(GraphOpKind k) { return kind_names[k]; }

typedef struct {
  const UNet *m;
  ModelGraph *g;
  int counters[GOP_SOFTMAX + 1]; /* for the names of ops without variables */
  int h, w;                      /* spatial size of the tensor being produced */
} Walk;

/* Appends an op reading tensors a (and b) and returns its output tensor. */
static int emit(Walk *wk, GraphOpKind kind, int a, int b, int cin, int cout, int kernel, int stride, int v0, int v1,
                int v2, int v3, const char *suffix) {
  ModelGraph *g = wk->g;
  if (g->num_ops == GRAPH_MAX_OPS) unet_fatal("internal: inference graph longer than %d ops", GRAPH_MAX_OPS);
  GraphOp *op = &g->ops[g->num_ops];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->input[0] = a;
  op->input[1] = b;
  op->output = g->num_ops + 1;
  op->cin = cin;
  op->cout = cout;
  op->kernel = kernel;
  op->stride = stride;
  int vars[4] = {v0, v1, v2, v3};
  memcpy(op->vars, vars, sizeof vars);
  int n = wk->counters[kind]++;
  if (v0 >= 0)
    snprintf(op->name, sizeof op->name, "%s%s", wk->m->vars[v0].layer, suffix);
  else if (kind == GOP_SOFTMAX)
    snprintf(op->name, sizeof op->name, "softmax");
  else
    snprintf(op->name, sizeof op->name, "%s_%d", kind_names[kind], n);
  if (kernel > 1 || stride > 1) { /* TensorFlow 'same' padding at the current input size */
    int top = same_pad_before(wk->h, kernel, stride), left = same_pad_before(wk->w, kernel, stride);
    int oh = same_out_size(wk->h, stride), ow = same_out_size(wk->w, stride);
    int th = (oh - 1) * stride + kernel - wk->h, tw = (ow - 1) * stride + kernel - wk->w;
    op->pads[0] = top;
    op->pads[1] = left;
    op->pads[2] = (th > 0 ? th : 0) - top;
    op->pads[3] = (tw > 0 ? tw : 0) - left;
    wk->h = oh;
    wk->w = ow;
  }
  if (kind == GOP_UPSAMPLE2X) {
    wk->h *= 2;
    wk->w *= 2;
  }
  return g->num_ops++ + 1;
}

static int conv(Walk *wk, int in, ConvVars c, int k, int stride) {
  const ModelVar *kv = &wk->m->vars[c.kernel];
  return emit(wk, GOP_CONV, in, -1, kv->shape[2], kv->shape[3], k, stride, c.kernel, c.bias, -1, -1, "");
}

static int bn(Walk *wk, int in, BNVars v) {
  int c = wk->m->vars[v.gamma].shape[0];
  return emit(wk, GOP_BATCHNORM, in, -1, c, c, 1, 1, v.gamma, v.beta, v.mean, v.var, "");
}

static int relu(Walk *wk, int in, int c) { return emit(wk, GOP_RELU, in, -1, c, c, 1, 1, -1, -1, -1, -1, ""); }

static int separable(Walk *wk, int in, SepVars s) {
  const ModelVar *pv = &wk->m->vars[s.pointwise];
  int cin = pv->shape[2], cout = pv->shape[3];
  int d = emit(wk, GOP_DEPTHWISE, in, -1, cin, cin, 3, 1, s.depthwise, -1, -1, -1, "/depthwise");
  return emit(wk, GOP_CONV, d, -1, cin, cout, 1, 1, s.pointwise, s.bias, -1, -1, "/pointwise");
}

static int conv_transpose(Walk *wk, int in, ConvVars c) {
  const ModelVar *kv = &wk->m->vars[c.kernel]; /* Keras (3, 3, out, in) */
  return emit(wk, GOP_CONV_TRANSPOSE, in, -1, kv->shape[3], kv->shape[2], 3, 1, c.kernel, c.bias, -1, -1, "");
}

void unet_inference_graph(const UNet *m, ModelGraph *g) {
  const UNetImpl *I = m->impl;
  memset(g, 0, sizeof *g);
  g->ops = xcalloc(GRAPH_MAX_OPS, sizeof(GraphOp), "inference graph");
  g->bn_epsilon = m->bn_epsilon;
  Walk wk = {.m = m, .g = g, .h = m->height, .w = m->width};

  /* entry: relu(BN(conv3x3 stride 2(x))) */
  int prev = conv(&wk, 0, I->entry_conv, 3, 2);
  prev = bn(&wk, prev, I->entry_bn);
  prev = relu(&wk, prev, UNET_ENTRY_FILTERS);

  for (int i = 0; i < UNET_DOWN_BLOCKS; i++) {
    const DownBlock *d = &I->down[i];
    int sh = wk.h, sw = wk.w;
    int x = relu(&wk, prev, d->cin);
    x = separable(&wk, x, d->sep1);
    x = relu(&wk, bn(&wk, x, d->bn1), d->f);
    x = separable(&wk, x, d->sep2);
    x = bn(&wk, x, d->bn2);
    x = emit(&wk, GOP_MAXPOOL, x, -1, d->f, d->f, 3, 2, -1, -1, -1, -1, "");
    wk.h = sh; /* the residual reads prev at the block's input size */
    wk.w = sw;
    int r = conv(&wk, prev, d->res, 1, 2);
    prev = emit(&wk, GOP_ADD, x, r, d->f, d->f, 1, 1, -1, -1, -1, -1, "");
  }

  for (int i = 0; i < UNET_UP_BLOCKS; i++) {
    const UpBlock *u = &I->up[i];
    int x = relu(&wk, prev, u->cin);
    x = conv_transpose(&wk, x, u->ct1);
    x = relu(&wk, bn(&wk, x, u->bn1), u->f);
    x = conv_transpose(&wk, x, u->ct2);
    x = bn(&wk, x, u->bn2);
    int r = conv(&wk, prev, u->res, 1, 1);
    x = emit(&wk, GOP_ADD, x, r, u->f, u->f, 1, 1, -1, -1, -1, -1, "");
    prev = emit(&wk, GOP_UPSAMPLE2X, x, -1, u->f, u->f, 1, 1, -1, -1, -1, -1, "");
  }

  int logits = conv(&wk, prev, I->head, 3, 1);
  emit(&wk, GOP_SOFTMAX, logits, -1, m->num_classes, m->num_classes, 1, 1, -1, -1, -1, -1, "");
  g->num_tensors = g->num_ops + 1;
}

void unet_graph_free(ModelGraph *g) {
  if (!g) return;
  xfree(g->ops);
  memset(g, 0, sizeof *g);
}
