/* model_step.c - activation planning, the training step (forward + backward)
 * and inference of the U-Net. The block structure and tensor names are
 * described in model_internal.h. */
#include <string.h>

#include "model_internal.h"
#include "unet/util.h"

#define TIMED(m, kind, call)                      \
  do {                                            \
    double t0_ = unet_now();                      \
    call;                                         \
    (m)->impl->time[kind] += unet_now() - t0_;    \
  } while (0)

static float *P(UNet *m, int var) { return m->params + m->vars[var].offset; }
static float *G(UNet *m, int var) { return m->grads + m->vars[var].offset; }
static float *S(UNet *m, int var) { return m->state + m->vars[var].offset; }

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* The head: 3x3 conv from the last up block's output to the classes. */
static ConvDims head_dims(const UNet *m) { return (ConvDims){3, 1, m->impl->head_cin, m->num_classes}; }

/* ---- planning --------------------------------------------------------------*/

typedef struct { float *base; size_t used, cap; } Bump;
static float *take(Bump *b, size_t floats) {
  floats = (floats + 15) & ~(size_t)15; /* keep 64-byte alignment */
  float *p = b->base ? b->base + b->used : NULL;
  b->used += floats;
  return p;
}

/* Lays out every buffer; with base NULL it only measures. */
static size_t layout(UNet *m, int n, float *base) {
  UNetImpl *I = m->impl;
  Bump b = {base, 0, 0};
  size_t H = m->height, W = m->width, C = m->num_classes, H2 = H / 2, W2 = W / 2;
  I->entry_conv_out = take(&b, n * H2 * W2 * UNET_ENTRY_FILTERS);
  I->entry_out = take(&b, n * H2 * W2 * UNET_ENTRY_FILTERS);
  I->entry_save.mean = take(&b, UNET_ENTRY_FILTERS);
  I->entry_save.invstd = take(&b, UNET_ENTRY_FILTERS);
  size_t scratch = 0, grad = 0, grad_io = n * H2 * W2 * UNET_ENTRY_FILTERS, ws = 0;
  ws = max_sz(ws, conv2d_workspace_floats((ConvDims){3, 2, 3, UNET_ENTRY_FILTERS}, n, H, W));
  ws = max_sz(ws, batchnorm_workspace_floats(UNET_ENTRY_FILTERS));
  size_t s = H2, sw = W2;
  for (int i = 0; i < UNET_DOWN_BLOCKS; i++) {
    DownBlock *d = &I->down[i];
    d->s = (int)s;
    d->s_w = (int)sw;
    size_t in = n * s * sw * d->cin, mid = n * s * sw * d->f, out = n * (s / 2) * (sw / 2) * d->f;
    d->r0 = take(&b, in);
    d->d1 = take(&b, in);
    d->p1 = take(&b, mid);
    d->a1 = take(&b, mid);
    d->d2 = take(&b, mid);
    d->p2 = take(&b, mid);
    d->out = take(&b, out);
    d->argmax = (int32_t *)take(&b, out);
    d->save1.mean = take(&b, d->f);
    d->save1.invstd = take(&b, d->f);
    d->save2.mean = take(&b, d->f);
    d->save2.invstd = take(&b, d->f);
    scratch = max_sz(scratch, mid);
    grad = max_sz(grad, max_sz(in, mid));
    grad_io = max_sz(grad_io, max_sz(in, out));
    ws = max_sz(ws, conv2d_workspace_floats((ConvDims){1, 1, d->cin, d->f}, n, s, sw));
    ws = max_sz(ws, conv2d_workspace_floats((ConvDims){1, 1, d->f, d->f}, n, s, sw));
    ws = max_sz(ws, conv2d_workspace_floats((ConvDims){1, 2, d->cin, d->f}, n, s, sw));
    ws = max_sz(ws, depthwise3x3_workspace_floats((int)sw, d->cin));
    ws = max_sz(ws, depthwise3x3_workspace_floats((int)sw, d->f));
    ws = max_sz(ws, batchnorm_workspace_floats(d->f));
    s /= 2;
    sw /= 2;
  }
  for (int i = 0; i < UNET_UP_BLOCKS; i++) {
    UpBlock *u = &I->up[i];
    u->s = (int)s;
    u->s_w = (int)sw;
    size_t in = n * s * sw * u->cin, mid = n * s * sw * u->f, out = n * (2 * s) * (2 * sw) * u->f;
    u->r0 = take(&b, in);
    u->t1 = take(&b, mid);
    u->a1 = take(&b, mid);
    u->t2 = take(&b, mid);
    u->out = take(&b, out);
    u->save1.mean = take(&b, u->f);
    u->save1.invstd = take(&b, u->f);
    u->save2.mean = take(&b, u->f);
    u->save2.invstd = take(&b, u->f);
    scratch = max_sz(scratch, mid);
    grad = max_sz(grad, max_sz(in, mid));
    grad_io = max_sz(grad_io, max_sz(in, out));
    ws = max_sz(ws, conv_transpose3x3_workspace_floats(u->cin, u->f, n, s, sw));
    ws = max_sz(ws, conv_transpose3x3_workspace_floats(u->f, u->f, n, s, sw));
    ws = max_sz(ws, conv2d_workspace_floats((ConvDims){1, 1, u->cin, u->f}, n, s, sw));
    ws = max_sz(ws, batchnorm_workspace_floats(u->f));
    s *= 2;
    sw *= 2;
  }
  ws = max_sz(ws, conv2d_workspace_floats(head_dims(m), n, H, W));
  I->logits = take(&b, n * H * W * C);
  I->dlogits = take(&b, n * H * W * C);
  I->scratch = take(&b, scratch);
  I->grad_a = take(&b, grad);
  I->grad_b = take(&b, grad);
  I->grad_io_a = take(&b, grad_io);
  I->grad_io_b = take(&b, grad_io);
  I->workspace = take(&b, ws);
  I->scratch_floats = scratch;
  I->grad_floats = grad;
  I->grad_io_floats = grad_io;
  I->workspace_floats = ws;
  return b.used;
}

void unet_release_plan(UNet *m) {
  if (!m->impl) return;
  xfree(m->impl->arena);
  m->impl->arena = NULL;
  m->impl->planned_batch = 0;
  m->impl->planned_bytes = 0;
}

void unet_plan(UNet *m, int max_batch) {
  UNetImpl *I = m->impl;
  if (I->planned_batch == max_batch) return;
  unet_release_plan(m);
  size_t floats = layout(m, max_batch, NULL);
  I->arena = xmalloc(floats * sizeof(float), "activations");
  /* touch it once so the peak is real and first steps are not page faults */
  memset(I->arena, 0, floats * sizeof(float));
  layout(m, max_batch, I->arena);
  I->planned_batch = max_batch;
  I->planned_bytes = floats * sizeof(float);
}

size_t unet_activation_bytes(const UNet *m) { return m->impl->planned_bytes; }

void unet_time_breakdown(const UNet *m, double out[TIME_KINDS]) {
  for (int k = 0; k < TIME_KINDS; k++) out[k] = m->impl->time[k];
}
void unet_time_reset(UNet *m) { memset(m->impl->time, 0, sizeof m->impl->time); }

/* ---- forward -----------------------------------------------------------------*/

/* out = BN(in), or with relu relu(BN(in)) in the same pass. */
static void bn_forward(UNet *m, float *out, const float *in, BNVars v, BNSave save, long count, int c, int train,
                       BatchNormReducer red, int relu) {
  UNetImpl *I = m->impl;
  if (train)
    (relu ? batchnorm_relu_forward_train : batchnorm_forward_train)(
        out, save.mean, save.invstd, S(m, v.mean), S(m, v.var), in, P(m, v.gamma), P(m, v.beta), count, c,
        m->bn_momentum, m->bn_epsilon, red, I->workspace, I->workspace_floats);
  else
    (relu ? batchnorm_relu_forward_infer : batchnorm_forward_infer)(out, in, P(m, v.gamma), P(m, v.beta),
                                                                    S(m, v.mean), S(m, v.var), count, c,
                                                                    m->bn_epsilon, I->workspace, I->workspace_floats);
}

/* Reads the input at impl->x; leaves logits in impl->logits. */
static void forward(UNet *m, int n, int train, BatchNormReducer red) {
  UNetImpl *I = m->impl;
  int H = m->height, W = m->width, H2 = H / 2, W2 = W / 2;
  float *ws = I->workspace;
  size_t wsn = I->workspace_floats;
  long count;

  TIMED(m, TIME_CONV, conv2d_forward(I->entry_conv_out, I->x, P(m, I->entry_conv.kernel), P(m, I->entry_conv.bias), n,
                                     H, W, (ConvDims){3, 2, 3, UNET_ENTRY_FILTERS}, 0, ws, wsn));
  count = (long)n * H2 * W2;
  TIMED(m, TIME_BN,
        bn_forward(m, I->entry_out, I->entry_conv_out, I->entry_bn, I->entry_save, count, UNET_ENTRY_FILTERS, train,
                   red, 1));
  const float *prev = I->entry_out;

  for (int i = 0; i < UNET_DOWN_BLOCKS; i++) {
    DownBlock *d = &I->down[i];
    int s = d->s, sw = d->s_w;
    count = (long)n * s * sw;
    TIMED(m, TIME_ELEMWISE, relu_forward(d->r0, prev, count * d->cin));
    TIMED(m, TIME_SEPARABLE, {
      depthwise3x3_forward(d->d1, d->r0, P(m, d->sep1.depthwise), n, s, sw, d->cin, ws, wsn);
      conv2d_forward(d->p1, d->d1, P(m, d->sep1.pointwise), P(m, d->sep1.bias), n, s, sw,
                     (ConvDims){1, 1, d->cin, d->f}, 0, ws, wsn);
    });
    TIMED(m, TIME_BN, bn_forward(m, d->a1, d->p1, d->bn1, d->save1, count, d->f, train, red, 1));
    TIMED(m, TIME_SEPARABLE, {
      depthwise3x3_forward(d->d2, d->a1, P(m, d->sep2.depthwise), n, s, sw, d->f, ws, wsn);
      conv2d_forward(d->p2, d->d2, P(m, d->sep2.pointwise), P(m, d->sep2.bias), n, s, sw,
                     (ConvDims){1, 1, d->f, d->f}, 0, ws, wsn);
    });
    TIMED(m, TIME_BN, bn_forward(m, I->scratch, d->p2, d->bn2, d->save2, count, d->f, train, red, 0));
    TIMED(m, TIME_POOL_UP, maxpool3s2_forward(d->out, d->argmax, I->scratch, n, s, sw, d->f));
    TIMED(m, TIME_CONV, conv2d_forward(d->out, prev, P(m, d->res.kernel), P(m, d->res.bias), n, s, sw,
                                       (ConvDims){1, 2, d->cin, d->f}, 1, ws, wsn));
    prev = d->out;
  }

  for (int i = 0; i < UNET_UP_BLOCKS; i++) {
    UpBlock *u = &I->up[i];
    int s = u->s, sw = u->s_w;
    count = (long)n * s * sw;
    TIMED(m, TIME_ELEMWISE, relu_forward(u->r0, prev, count * u->cin));
    TIMED(m, TIME_CONVT, conv_transpose3x3_forward(u->t1, u->r0, P(m, u->ct1.kernel), P(m, u->ct1.bias), n, s, sw,
                                                   u->cin, u->f, ws, wsn));
    TIMED(m, TIME_BN, bn_forward(m, u->a1, u->t1, u->bn1, u->save1, count, u->f, train, red, 1));
    TIMED(m, TIME_CONVT, conv_transpose3x3_forward(u->t2, u->a1, P(m, u->ct2.kernel), P(m, u->ct2.bias), n, s, sw,
                                                   u->f, u->f, ws, wsn));
    TIMED(m, TIME_BN, bn_forward(m, I->scratch, u->t2, u->bn2, u->save2, count, u->f, train, red, 0));
    TIMED(m, TIME_CONV, conv2d_forward(I->scratch, prev, P(m, u->res.kernel), P(m, u->res.bias), n, s, sw,
                                       (ConvDims){1, 1, u->cin, u->f}, 1, ws, wsn));
    TIMED(m, TIME_POOL_UP, upsample2x_forward(u->out, I->scratch, n, s, sw, u->f));
    prev = u->out;
  }

  TIMED(m, TIME_CONV, conv2d_forward(I->logits, prev, P(m, I->head.kernel), P(m, I->head.bias), n, H, W,
                                     head_dims(m), 0, ws, wsn));
}

/* ---- backward ----------------------------------------------------------------*/

static void zero(float *p, size_t count) { memset(p, 0, count * sizeof(float)); }

/* din = the gradient at in of BN(in) (overwritten, never read). */
static void bn_backward(UNet *m, float *din, const float *dout, const float *in, BNVars v, BNSave save, long count,
                        int c, BatchNormReducer red) {
  batchnorm_backward(din, G(m, v.gamma), G(m, v.beta), dout, in, save.mean, save.invstd, P(m, v.gamma), count, c, red,
                     0, m->impl->workspace, m->impl->workspace_floats);
}

/* din = the gradient at in of relu_out = relu(BN(in)), given dout at relu_out. */
static void bn_relu_backward(UNet *m, float *din, const float *dout, const float *relu_out, const float *in,
                             BNVars v, BNSave save, long count, int c, BatchNormReducer red) {
  batchnorm_relu_backward(din, G(m, v.gamma), G(m, v.beta), dout, relu_out, in, save.mean, save.invstd,
                          P(m, v.gamma), count, c, red, 0, m->impl->workspace, m->impl->workspace_floats);
}

static void ready(UNet *m, GradReadyFn fn, void *ctx, int first_var) {
  if (fn) fn(m->vars[first_var].offset, ctx);
}

static void backward(UNet *m, int n, BatchNormReducer red, GradReadyFn on_ready, void *ctx) {
  UNetImpl *I = m->impl;
  int H = m->height, W = m->width, H2 = H / 2, W2 = W / 2;
  float *ws = I->workspace;
  size_t wsn = I->workspace_floats;
  float *ga = I->grad_a, *gb = I->grad_b;
  float *dout = I->grad_io_a, *dprev = I->grad_io_b;
  long count;

  /* head: logits = conv3x3(up[3].out) */
  const float *head_in = I->up[UNET_UP_BLOCKS - 1].out;
  TIMED(m, TIME_CONV, conv2d_backward(dout, G(m, I->head.kernel), G(m, I->head.bias), I->dlogits, head_in,
                                      P(m, I->head.kernel), n, H, W, head_dims(m), 0, ws, wsn));
  ready(m, on_ready, ctx, I->head.kernel);

  for (int i = UNET_UP_BLOCKS - 1; i >= 0; i--) {
    UpBlock *u = &I->up[i];
    int s = u->s, sw = u->s_w;
    const float *in = i > 0 ? I->up[i - 1].out : I->down[UNET_DOWN_BLOCKS - 1].out;
    count = (long)n * s * sw;
    size_t nin = count * u->cin, nmid = count * u->f;
    /* Layers that write their input gradient (accumulate 0) need no zeroed
     * buffer; the transposed convs and the ReLU add into theirs. */
    TIMED(m, TIME_POOL_UP, upsample2x_backward(ga, dout, n, s, sw, u->f, 0)); /* ga = d(BN2 + res) */
    TIMED(m, TIME_CONV, conv2d_backward(dprev, G(m, u->res.kernel), G(m, u->res.bias), ga, in, P(m, u->res.kernel),
                                        n, s, sw, (ConvDims){1, 1, u->cin, u->f}, 0, ws, wsn));
    TIMED(m, TIME_BN, bn_backward(m, gb, ga, u->t2, u->bn2, u->save2, count, u->f, red));
    zero(ga, nmid);
    TIMED(m, TIME_CONVT, conv_transpose3x3_backward(ga, G(m, u->ct2.kernel), G(m, u->ct2.bias), gb, u->a1,
                                                    P(m, u->ct2.kernel), n, s, sw, u->f, u->f, ws, wsn));
    /* a1 = relu(BN1(t1)): ga is the gradient at a1 */
    TIMED(m, TIME_BN, bn_relu_backward(m, gb, ga, u->a1, u->t1, u->bn1, u->save1, count, u->f, red));
    zero(ga, nin);
    TIMED(m, TIME_CONVT, conv_transpose3x3_backward(ga, G(m, u->ct1.kernel), G(m, u->ct1.bias), gb, u->r0,
                                                    P(m, u->ct1.kernel), n, s, sw, u->cin, u->f, ws, wsn));
    TIMED(m, TIME_ELEMWISE, relu_backward(dprev, ga, u->r0, nin));
    ready(m, on_ready, ctx, u->ct1.kernel);
    float *t = dout;
    dout = dprev;
    dprev = t;
  }

  for (int i = UNET_DOWN_BLOCKS - 1; i >= 0; i--) {
    DownBlock *d = &I->down[i];
    int s = d->s, sw = d->s_w;
    const float *in = i > 0 ? I->down[i - 1].out : I->entry_out;
    count = (long)n * s * sw;
    size_t nin = count * d->cin, nmid = count * d->f;
    /* As in the up blocks: only the scattering layers get a zeroed buffer. */
    TIMED(m, TIME_CONV, conv2d_backward(dprev, G(m, d->res.kernel), G(m, d->res.bias), dout, in, P(m, d->res.kernel),
                                        n, s, sw, (ConvDims){1, 2, d->cin, d->f}, 0, ws, wsn));
    zero(ga, nmid);
    TIMED(m, TIME_POOL_UP, maxpool3s2_backward(ga, dout, d->argmax, n, s, sw, d->f));
    TIMED(m, TIME_BN, bn_backward(m, gb, ga, d->p2, d->bn2, d->save2, count, d->f, red));
    TIMED(m, TIME_SEPARABLE, conv2d_backward(ga, G(m, d->sep2.pointwise), G(m, d->sep2.bias), gb, d->d2,
                                             P(m, d->sep2.pointwise), n, s, sw, (ConvDims){1, 1, d->f, d->f}, 0, ws,
                                             wsn));
    zero(gb, nmid);
    TIMED(m, TIME_SEPARABLE,
          depthwise3x3_backward(gb, G(m, d->sep2.depthwise), ga, d->a1, P(m, d->sep2.depthwise), n, s, sw, d->f, ws,
                                wsn));
    /* a1 = relu(BN1(p1)): gb is the gradient at a1 */
    TIMED(m, TIME_BN, bn_relu_backward(m, ga, gb, d->a1, d->p1, d->bn1, d->save1, count, d->f, red));
    TIMED(m, TIME_SEPARABLE,
          conv2d_backward(gb, G(m, d->sep1.pointwise), G(m, d->sep1.bias), ga, d->d1, P(m, d->sep1.pointwise), n, s,
                          sw, (ConvDims){1, 1, d->cin, d->f}, 0, ws, wsn));
    zero(ga, nin);
    TIMED(m, TIME_SEPARABLE,
          depthwise3x3_backward(ga, G(m, d->sep1.depthwise), gb, d->r0, P(m, d->sep1.depthwise), n, s, sw, d->cin, ws,
                                wsn));
    TIMED(m, TIME_ELEMWISE, relu_backward(dprev, ga, d->r0, nin));
    ready(m, on_ready, ctx, d->sep1.depthwise);
    float *t = dout;
    dout = dprev;
    dprev = t;
  }

  /* entry: entry_out = relu(BN(conv(x))) */
  count = (long)n * H2 * W2;
  /* entry_out = relu(BN(entry_conv_out)) */
  TIMED(m, TIME_BN, bn_relu_backward(m, gb, dout, I->entry_out, I->entry_conv_out, I->entry_bn, I->entry_save, count,
                                     UNET_ENTRY_FILTERS, red));
  TIMED(m, TIME_CONV, conv2d_backward(NULL, G(m, I->entry_conv.kernel), G(m, I->entry_conv.bias), gb, I->x,
                                      P(m, I->entry_conv.kernel), n, H, W, (ConvDims){3, 2, 3, UNET_ENTRY_FILTERS},
                                      0, ws, wsn));
  ready(m, on_ready, ctx, I->entry_conv.kernel);
}

/* The input is used where the caller keeps it: no copy (the caller's one
 * copy is its byte-to-float conversion). */
static void load_input(UNet *m, const float *x, int n) {
  if (n > m->impl->planned_batch) unet_plan(m, n);
  m->impl->x = x;
}

double unet_train_step(UNet *m, const float *x, const uint8_t *labels, int n, float loss_scale,
                       BatchNormReducer bn_reduce, GradReadyFn on_ready, void *ready_ctx) {
  load_input(m, x, n);
  forward(m, n, 1, bn_reduce);
  double loss = 0;
  TIMED(m, TIME_LOSS,
        loss = softmax_xent_weighted(m->impl->dlogits, NULL, m->impl->logits, labels, (long)n * m->height * m->width,
                                     m->num_classes, loss_scale, &m->loss));
  backward(m, n, bn_reduce, on_ready, ready_ctx);
  return loss;
}

void unet_update_batch_stats(UNet *m, const float *x, int n, BatchNormReducer bn_reduce) {
  load_input(m, x, n);
  forward(m, n, 1, bn_reduce);
}

void unet_average_batch_stats(UNet *m, const float *x, int n, int k, BatchNormReducer bn_reduce) {
  const float momentum = m->bn_momentum;
  m->bn_momentum = 1.0f - 1.0f / (float)k;
  unet_update_batch_stats(m, x, n, bn_reduce);
  m->bn_momentum = momentum;
}

void unet_predict(UNet *m, const float *x, int n, float *probs) {
  BatchNormReducer none = {0};
  load_input(m, x, n);
  forward(m, n, 0, none);
  softmax_forward(probs, m->impl->logits, (long)n * m->height * m->width, m->num_classes);
}

const float *unet_last_logits(const UNet *m) { return m->impl->logits; }

/* dst[b, y, x, :] = src[b, y, W-1-x, :] for ch channels */
static void mirror_rows(float *dst, const float *src, long rows, int W, int ch) {
  for (long r = 0; r < rows; r++) {
    const float *s = src + r * W * ch;
    float *d = dst + r * W * ch;
    for (int x = 0; x < W; x++) memcpy(d + (size_t)x * ch, s + (size_t)(W - 1 - x) * ch, ch * sizeof(float));
  }
}

void unet_predict_flip_average(UNet *m, const float *x, int n, float *probs, float *x_mirror, float *logits) {
  const int H = m->height, W = m->width, C = m->num_classes;
  const long rows = (long)n * H, count = rows * W * C;
  BatchNormReducer none = {0};
  mirror_rows(x_mirror, x, rows, W, 3);
  load_input(m, x_mirror, n);
  forward(m, n, 0, none);
  mirror_rows(logits, m->impl->logits, rows, W, C); /* f(mirror x), mirrored back */
  load_input(m, x, n);
  forward(m, n, 0, none);
  const float *direct = m->impl->logits;
  for (long i = 0; i < count; i++) logits[i] = 0.5f * (logits[i] + direct[i]);
  softmax_forward(probs, logits, rows * W, C);
}
