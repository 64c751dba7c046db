/* bench_layers.c - times forward and backward of every layer of the U-Net at
 * its real shapes (docs/model.md table, 160x160 input) for one batch, and
 * prints per-layer milliseconds (best of the repeats) and GFLOP/s plus
 * totals per layer kind, so one can see where a training step spends its
 * time. Not a test.
 *
 *   OPENBLAS_NUM_THREADS=2 ./bench-layers [batch=32] [repeats=3] [filter|all] [cpu]
 *
 * filter, if given, keeps the layers whose name contains it. "cpu" times with
 * the process CPU clock instead of the wall clock: with one thread that is
 * the time the layer would take on an idle machine, even when other jobs
 * share the cores.
 */
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/layers.h"
#include "unet/util.h"

typedef enum { CONV, CONVT, DEPTHWISE, BNORM, POOL, UPSAMPLE, RELU, ADD, XENT, KINDS } Kind;
static const char *kind_names[KINDS] = {"conv2d",  "conv_transpose", "depthwise", "batchnorm", "maxpool",
                                        "upsample", "relu",           "add",       "softmax_xent"};

/* h, w: input size; cin/cout channels; k/s for convs. */
typedef struct {
  const char *name;
  Kind kind;
  int h, w, cin, cout, k, s;
} Layer;

/* The model in execution order (forward), as model_step.c runs it: an up
 * block adds conv1x1(prev) to BN2's output at low resolution, then upsamples
 * the sum (the 1x1 conv commutes with nearest upsampling). */
static const Layer model[] = {
    {"entry conv3x3s2", CONV, 160, 160, 3, 32, 3, 2},
    {"entry bn", BNORM, 80, 80, 32, 32, 0, 0},
    {"entry relu", RELU, 80, 80, 32, 32, 0, 0},
    /* down 64 */
    {"d64 relu", RELU, 80, 80, 32, 32, 0, 0},
    {"d64 dw1", DEPTHWISE, 80, 80, 32, 32, 0, 0},
    {"d64 pw1", CONV, 80, 80, 32, 64, 1, 1},
    {"d64 bn1", BNORM, 80, 80, 64, 64, 0, 0},
    {"d64 relu2", RELU, 80, 80, 64, 64, 0, 0},
    {"d64 dw2", DEPTHWISE, 80, 80, 64, 64, 0, 0},
    {"d64 pw2", CONV, 80, 80, 64, 64, 1, 1},
    {"d64 bn2", BNORM, 80, 80, 64, 64, 0, 0},
    {"d64 pool", POOL, 80, 80, 64, 64, 0, 0},
    {"d64 res1x1s2", CONV, 80, 80, 32, 64, 1, 2},
    {"d64 add", ADD, 40, 40, 64, 64, 0, 0},
    /* down 128 */
    {"d128 relu", RELU, 40, 40, 64, 64, 0, 0},
    {"d128 dw1", DEPTHWISE, 40, 40, 64, 64, 0, 0},
    {"d128 pw1", CONV, 40, 40, 64, 128, 1, 1},
    {"d128 bn1", BNORM, 40, 40, 128, 128, 0, 0},
    {"d128 relu2", RELU, 40, 40, 128, 128, 0, 0},
    {"d128 dw2", DEPTHWISE, 40, 40, 128, 128, 0, 0},
    {"d128 pw2", CONV, 40, 40, 128, 128, 1, 1},
    {"d128 bn2", BNORM, 40, 40, 128, 128, 0, 0},
    {"d128 pool", POOL, 40, 40, 128, 128, 0, 0},
    {"d128 res1x1s2", CONV, 40, 40, 64, 128, 1, 2},
    {"d128 add", ADD, 20, 20, 128, 128, 0, 0},
    /* down 256 */
    {"d256 relu", RELU, 20, 20, 128, 128, 0, 0},
    {"d256 dw1", DEPTHWISE, 20, 20, 128, 128, 0, 0},
    {"d256 pw1", CONV, 20, 20, 128, 256, 1, 1},
    {"d256 bn1", BNORM, 20, 20, 256, 256, 0, 0},
    {"d256 relu2", RELU, 20, 20, 256, 256, 0, 0},
    {"d256 dw2", DEPTHWISE, 20, 20, 256, 256, 0, 0},
    {"d256 pw2", CONV, 20, 20, 256, 256, 1, 1},
    {"d256 bn2", BNORM, 20, 20, 256, 256, 0, 0},
    {"d256 pool", POOL, 20, 20, 256, 256, 0, 0},
    {"d256 res1x1s2", CONV, 20, 20, 128, 256, 1, 2},
    {"d256 add", ADD, 10, 10, 256, 256, 0, 0},
    /* up 256 */
    {"u256 relu", RELU, 10, 10, 256, 256, 0, 0},
    {"u256 convT1", CONVT, 10, 10, 256, 256, 3, 1},
    {"u256 bn1", BNORM, 10, 10, 256, 256, 0, 0},
    {"u256 relu2", RELU, 10, 10, 256, 256, 0, 0},
    {"u256 convT2", CONVT, 10, 10, 256, 256, 3, 1},
    {"u256 bn2", BNORM, 10, 10, 256, 256, 0, 0},
    {"u256 res1x1", CONV, 10, 10, 256, 256, 1, 1},
    {"u256 add", ADD, 10, 10, 256, 256, 0, 0},
    {"u256 up", UPSAMPLE, 10, 10, 256, 256, 0, 0},
    /* up 128 */
    {"u128 relu", RELU, 20, 20, 256, 256, 0, 0},
    {"u128 convT1", CONVT, 20, 20, 256, 128, 3, 1},
    {"u128 bn1", BNORM, 20, 20, 128, 128, 0, 0},
    {"u128 relu2", RELU, 20, 20, 128, 128, 0, 0},
    {"u128 convT2", CONVT, 20, 20, 128, 128, 3, 1},
    {"u128 bn2", BNORM, 20, 20, 128, 128, 0, 0},
    {"u128 res1x1", CONV, 20, 20, 256, 128, 1, 1},
    {"u128 add", ADD, 20, 20, 128, 128, 0, 0},
    {"u128 up", UPSAMPLE, 20, 20, 128, 128, 0, 0},
    /* up 64 */
    {"u64 relu", RELU, 40, 40, 128, 128, 0, 0},
    {"u64 convT1", CONVT, 40, 40, 128, 64, 3, 1},
    {"u64 bn1", BNORM, 40, 40, 64, 64, 0, 0},
    {"u64 relu2", RELU, 40, 40, 64, 64, 0, 0},
    {"u64 convT2", CONVT, 40, 40, 64, 64, 3, 1},
    {"u64 bn2", BNORM, 40, 40, 64, 64, 0, 0},
    {"u64 res1x1", CONV, 40, 40, 128, 64, 1, 1},
    {"u64 add", ADD, 40, 40, 64, 64, 0, 0},
    {"u64 up", UPSAMPLE, 40, 40, 64, 64, 0, 0},
    /* up 32 */
    {"u32 relu", RELU, 80, 80, 64, 64, 0, 0},
    {"u32 convT1", CONVT, 80, 80, 64, 32, 3, 1},
    {"u32 bn1", BNORM, 80, 80, 32, 32, 0, 0},
    {"u32 relu2", RELU, 80, 80, 32, 32, 0, 0},
    {"u32 convT2", CONVT, 80, 80, 32, 32, 3, 1},
    {"u32 bn2", BNORM, 80, 80, 32, 32, 0, 0},
    {"u32 res1x1", CONV, 80, 80, 64, 32, 1, 1},
    {"u32 add", ADD, 80, 80, 32, 32, 0, 0},
    {"u32 up", UPSAMPLE, 80, 80, 32, 32, 0, 0},
    /* head */
    {"head conv3x3", CONV, 160, 160, 32, 3, 3, 1},
    {"head softmax_xent", XENT, 160, 160, 3, 3, 0, 0},
};

static float *buffer(size_t count) {
  float *p = xmalloc((count ? count : 1) * sizeof(float), "benchmark buffer");
  uint32_t state = 12345u;
  for (size_t i = 0; i < count; i++) {
    state = state * 1664525u + 1013904223u;
    p[i] = (float)(state >> 8) / 16777216.0f - 0.5f;
  }
  return p;
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void no_reduce(double *values, int count, void *ctx) { (void)values, (void)count, (void)ctx; }

/* Runs one layer forward (phase 0) or backward (phase 1) on batch n. */
typedef struct {
  float *in, *out, *dout, *din, *kernel, *bias, *dkernel, *dbias, *ws, *g, *b, *mean, *invstd, *mm, *mv, *dg, *db;
  int32_t *argmax;
  uint8_t *labels;
  size_t ws_floats;
} Buffers;

static void run(const Layer *L, int n, Buffers *B, int backward) {
  long in_count = (long)n * L->h * L->w * L->cin;
  ConvDims d = {L->k, L->s, L->cin, L->cout};
  BatchNormReducer red = {no_reduce, NULL}; /* the cost of a call, not of MPI */
  switch (L->kind) {
  case CONV:
    if (!backward)
      conv2d_forward(B->out, B->in, B->kernel, B->bias, n, L->h, L->w, d, 0, B->ws, B->ws_floats);
    else /* the entry conv needs no input gradient; din is written (accumulate 0), as in the model */
      conv2d_backward(L->cin == 3 ? NULL : B->din, B->dkernel, B->dbias, B->dout, B->in, B->kernel, n, L->h, L->w, d,
                      0, B->ws, B->ws_floats);
    break;
  case CONVT:
    if (!backward)
      conv_transpose3x3_forward(B->out, B->in, B->kernel, B->bias, n, L->h, L->w, L->cin, L->cout, B->ws,
                                B->ws_floats);
    else
      conv_transpose3x3_backward(B->din, B->dkernel, B->dbias, B->dout, B->in, B->kernel, n, L->h, L->w, L->cin,
                                 L->cout, B->ws, B->ws_floats);
    break;
  case DEPTHWISE:
    if (!backward)
      depthwise3x3_forward(B->out, B->in, B->kernel, n, L->h, L->w, L->cin, B->ws, B->ws_floats);
    else
      depthwise3x3_backward(B->din, B->dkernel, B->dout, B->in, B->kernel, n, L->h, L->w, L->cin, B->ws, B->ws_floats);
    break;
  case BNORM:
    if (!backward)
      batchnorm_forward_train(B->out, B->mean, B->invstd, B->mm, B->mv, B->in, B->g, B->b, (long)n * L->h * L->w,
                              L->cin, 0.99f, 1e-3f, red, B->ws, B->ws_floats);
    else
      batchnorm_backward(B->din, B->dg, B->db, B->dout, B->in, B->mean, B->invstd, B->g, (long)n * L->h * L->w, L->cin,
                         red, 0, B->ws, B->ws_floats);
    break;
  case POOL:
    if (!backward)
      maxpool3s2_forward(B->out, B->argmax, B->in, n, L->h, L->w, L->cin);
    else
      maxpool3s2_backward(B->din, B->dout, B->argmax, n, L->h, L->w, L->cin);
    break;
  case UPSAMPLE:
    if (!backward)
      upsample2x_forward(B->out, B->in, n, L->h, L->w, L->cin);
    else
      upsample2x_backward(B->din, B->dout, n, L->h, L->w, L->cin, 0);
    break;
  case RELU:
    if (!backward)
      relu_forward(B->out, B->in, in_count);
    else
      relu_backward(B->din, B->dout, B->out, in_count);
    break;
  case ADD:
    if (!backward) add_forward(B->out, B->in, B->dout, in_count); /* backward is a pass-through */
    break;
  case XENT:
    if (!backward)
      softmax_xent_forward_backward(B->din, NULL, B->in, B->labels, (long)n * L->h * L->w, L->cin, 1.0f / in_count);
    break;
  default:
    break;
  }
}

/* Multiply-adds x 2 of the forward pass; backward is twice that for convs
 * with an input gradient (din and dkernel each cost one forward). */
static double forward_flops(const Layer *L, int n) {
  int oh = L->s ? same_out_size(L->h, L->s) : L->h, ow = L->s ? same_out_size(L->w, L->s) : L->w;
  switch (L->kind) {
  case CONV:
  case CONVT:
    return 2.0 * n * oh * ow * (double)L->k * L->k * L->cin * L->cout;
  case DEPTHWISE:
    return 2.0 * n * L->h * L->w * 9.0 * L->cin;
  default:
    return 0;
  }
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 32, repeats = argc > 2 ? atoi(argv[2]) : 3;
  const char *filter = argc > 3 && strcmp(argv[3], "all") ? argv[3] : NULL;
  int cpu_clock = argc > 4 && !strcmp(argv[4], "cpu");
  if (n < 1 || repeats < 1) unet_fatal("usage: bench-layers [batch>=1] [repeats>=1] [name filter]");
  const char *threads = getenv("OPENBLAS_NUM_THREADS");
  printf("batch %d, %d repeat(s), OPENBLAS_NUM_THREADS=%s, %s clock\n", n, repeats, threads ? threads : "(unset)",
         cpu_clock ? "process CPU" : "wall");
  printf("%-18s %-16s %9s %9s %8s %8s\n", "layer", "input", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s");
  double kind_ms[KINDS][2] = {{0}}, kind_flops[KINDS][2] = {{0}};
  double total_ms = 0, total_flops = 0;
  for (size_t li = 0; li < sizeof model / sizeof model[0]; li++) {
    const Layer *L = &model[li];
    if (filter && !strstr(L->name, filter)) continue;
    int oh = L->h, ow = L->w, oc = L->cout;
    if (L->kind == CONV) oh = same_out_size(L->h, L->s), ow = same_out_size(L->w, L->s);
    if (L->kind == POOL) oh = same_out_size(L->h, 2), ow = same_out_size(L->w, 2);
    if (L->kind == UPSAMPLE) oh = 2 * L->h, ow = 2 * L->w;
    size_t in_count = (size_t)n * L->h * L->w * L->cin, out_count = (size_t)n * oh * ow * oc;
    size_t kernel_count = L->kind == DEPTHWISE ? 9 * (size_t)L->cin : (size_t)L->k * L->k * L->cin * L->cout;
    Buffers B = {0};
    B.in = buffer(in_count);
    B.out = buffer(out_count);
    B.dout = buffer(out_count > in_count ? out_count : in_count);
    B.din = buffer(in_count);
    B.kernel = buffer(kernel_count);
    B.dkernel = buffer(kernel_count);
    B.bias = buffer(L->cout);
    B.dbias = buffer(L->cout);
    B.g = buffer(L->cin), B.b = buffer(L->cin), B.mean = buffer(L->cin), B.invstd = buffer(L->cin);
    B.mm = buffer(L->cin), B.mv = buffer(L->cin), B.dg = buffer(L->cin), B.db = buffer(L->cin);
    B.argmax = xcalloc(out_count ? out_count : 1, sizeof(int32_t), "argmax");
    B.labels = xcalloc(in_count ? in_count : 1, 1, "labels");
    if (L->kind == CONV) B.ws_floats = conv2d_workspace_floats((ConvDims){L->k, L->s, L->cin, L->cout}, n, L->h, L->w);
    if (L->kind == CONVT) B.ws_floats = conv_transpose3x3_workspace_floats(L->cin, L->cout, n, L->h, L->w);
    if (L->kind == DEPTHWISE) B.ws_floats = depthwise3x3_workspace_floats(L->w, L->cin);
    if (L->kind == BNORM) B.ws_floats = batchnorm_workspace_floats(L->cin);
    B.ws = buffer(B.ws_floats);
    for (long i = 0; i < (long)out_count; i++) B.argmax[i] = 0;

    /* Best of the repeats (the machine is shared); rep 0 warms up. */
    double ms[2] = {1e30, 1e30};
    for (int rep = 0; rep <= repeats; rep++)
      for (int phase = 0; phase < 2; phase++) {
        double t0 = cpu_clock ? cpu_seconds() : unet_now();
        run(L, n, &B, phase);
        double t = ((cpu_clock ? cpu_seconds() : unet_now()) - t0) * 1e3;
        if (rep > 0 && t < ms[phase]) ms[phase] = t;
      }
    double ff = forward_flops(L, n);
    double bf = (L->kind == CONV && L->cin == 3) ? ff : 2 * ff;
    char shape[40];
    snprintf(shape, sizeof shape, "%dx%dx%d>%d", L->h, L->w, L->cin, L->cout);
    printf("%-18s %-16s %9.2f %9.2f", L->name, shape, ms[0], ms[1]);
    if (ff > 0)
      printf(" %8.1f %8.1f\n", ff / ms[0] * 1e-6, bf / ms[1] * 1e-6);
    else
      printf("\n");
    kind_ms[L->kind][0] += ms[0];
    kind_ms[L->kind][1] += ms[1];
    kind_flops[L->kind][0] += ff;
    kind_flops[L->kind][1] += bf;
    total_ms += ms[0] + ms[1];
    total_flops += ff + bf;
    float *bufs[] = {B.in, B.out, B.dout, B.din, B.kernel, B.dkernel, B.bias, B.dbias, B.g, B.b, B.mean,
                     B.invstd, B.mm, B.mv, B.dg, B.db, B.ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) xfree(bufs[i]);
    xfree(B.argmax);
    xfree(B.labels);
  }
  printf("\n%-16s %9s %9s %8s %8s %7s\n", "kind", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s", "share");
  for (int k = 0; k < KINDS; k++) {
    if (kind_ms[k][0] + kind_ms[k][1] == 0) continue;
    printf("%-16s %9.1f %9.1f", kind_names[k], kind_ms[k][0], kind_ms[k][1]);
    if (kind_flops[k][0] > 0)
      printf(" %8.1f %8.1f", kind_flops[k][0] / kind_ms[k][0] * 1e-6, kind_flops[k][1] / kind_ms[k][1] * 1e-6);
    else
      printf(" %8s %8s", "", "");
    printf(" %6.1f%%\n", 100 * (kind_ms[k][0] + kind_ms[k][1]) / total_ms);
  }
  printf("\ntotal %.1f ms per batch of %d (%.2f GFLOP/image, %.1f GFLOP/s): %.2f images/s for the layers alone\n",
         total_ms, n, total_flops / n * 1e-9, total_flops / total_ms * 1e-6, n / total_ms * 1e3);
  return 0;
}
