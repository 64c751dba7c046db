/* model_internal.h - private wiring of the U-Net shared by model_build.c
 * (variable tables) and model_step.c (forward/backward). Indices below are
 * into UNet.vars. */
#ifndef UNET_MODEL_INTERNAL_H
#define UNET_MODEL_INTERNAL_H
#include "unet/model.h"

#define UNET_MAX_VARS 128
#define UNET_MAX_LAYERS 96
#define UNET_ENTRY_FILTERS 32
#define UNET_DOWN_BLOCKS 3
#define UNET_UP_BLOCKS 4
static const int unet_down_filters[UNET_DOWN_BLOCKS] = {64, 128, 256};
static const int unet_up_filters[UNET_UP_BLOCKS] = {256, 128, 64, 32};

typedef struct { int kernel, bias; } ConvVars;
typedef struct { int depthwise, pointwise, bias; } SepVars;
typedef struct { int gamma, beta, mean, var; } BNVars;

/* Saved per-BN batch statistics for backward: [C] each. */
typedef struct { float *mean, *invstd; } BNSave;

/* Down block at input size S x S (cin) -> S/2 x S/2 (f):
 *   r0 = relu(prev)            [N,S,S,cin]
 *   d1 = depthwise(r0)         [N,S,S,cin]
 *   p1 = pointwise(d1) + b     [N,S,S,f]    (BN1 input)
 *   a1 = relu(BN1(p1))         [N,S,S,f]
 *   d2 = depthwise(a1)         [N,S,S,f]
 *   p2 = pointwise(d2) + b     [N,S,S,f]    (BN2 input)
 *   out = maxpool(BN2(p2)) + conv1x1_s2(prev)  [N,S/2,S/2,f]; argmax saved */
typedef struct {
  int cin, f, s; /* s: input spatial size (height; width is s_w) */
  int s_w;
  SepVars sep1, sep2;
  BNVars bn1, bn2;
  ConvVars res;
  float *r0, *d1, *p1, *a1, *d2, *p2, *out;
  int32_t *argmax;
  BNSave save1, save2;
} DownBlock;

/* Up block at input size S x S (cin) -> 2S x 2S (f). Keras computes
 * upsample(BN2(t2)) + conv1x1(upsample(prev)); a 1x1 conv commutes with
 * nearest upsampling, so we compute upsample(BN2(t2) + conv1x1(prev)) at low
 * resolution: the same numbers per pixel at a quarter of the cost and memory.
 *   r0 = relu(prev)            [N,S,S,cin]
 *   t1 = convT(r0)             [N,S,S,f]    (BN1 input)
 *   a1 = relu(BN1(t1))         [N,S,S,f]
 *   t2 = convT(a1)             [N,S,S,f]    (BN2 input)
 *   out = upsample(BN2(t2) + conv1x1(prev)) [N,2S,2S,f] */
typedef struct {
  int cin, f, s, s_w;
  ConvVars ct1, ct2;
  BNVars bn1, bn2;
  ConvVars res;
  float *r0, *t1, *a1, *t2, *out;
  BNSave save1, save2;
} UpBlock;

struct UNetImpl {
  ConvVars entry_conv;
  BNVars entry_bn;
  DownBlock down[UNET_DOWN_BLOCKS];
  UpBlock up[UNET_UP_BLOCKS];
  ConvVars head;       /* 3x3 conv from the last up block's filters to the classes */
  int head_cin;        /* = up[UNET_UP_BLOCKS - 1].f */
  /* planned buffers (unet_plan) */
  int planned_batch;
  size_t planned_bytes;
  float *arena;        /* every activation below points into it */
  const float *x;      /* [N,H,W,3] the caller's input, used in place during a step (not in the arena) */
  float *entry_conv_out; /* [N,H/2,W/2,32] BN input */
  float *entry_out;    /* [N,H/2,W/2,32] relu(BN(.)) = first prev */
  BNSave entry_save;
  float *logits, *dlogits; /* [N,H,W,C] */
  float *scratch;      /* largest intermediate that backward does not need */
  float *grad_a, *grad_b;       /* ping-pong gradients inside a block */
  float *grad_io_a, *grad_io_b; /* ping-pong gradients at block boundaries */
  size_t scratch_floats, grad_floats, grad_io_floats;
  float *workspace;    /* every layer's scratch (im2col, Winograd tiles, flipped kernels, BN sums,
                        * replicated depthwise kernels): the largest need of any one layer */
  size_t workspace_floats;
  double time[TIME_KINDS];
};

void unet_release_plan(UNet *m);

#endif
