/* model.h - the Xception-style U-Net of the Keras example (see
 * docs/model.md), built for any input size divisible by 16 and
 * any class count.
 *
 * Memory: every trainable variable lives in one contiguous arena `params`
 * (model order, so one buffer is reduced, saved and updated), with `grads`
 * of the same layout; the BatchNorm moving statistics live in `state`.
 * ModelVar gives each variable its Keras name, index and shape, so the
 * weights file and the optimiser address the same views. Activations are
 * planned once per batch size (unet_plan), not allocated per step.
 */
#ifndef UNET_MODEL_H
#define UNET_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "unet/layers.h"

#define UNET_NAME_LEN 48
/* The model halves the input 4 times: both sides must be multiples of this. */
#define UNET_SIZE_MULTIPLE 16
#define UNET_MAX_CLASSES 255 /* class ids are uint8 */

typedef enum {
  VAR_KERNEL, VAR_BIAS, VAR_DEPTHWISE, VAR_POINTWISE,
  VAR_GAMMA, VAR_BETA, VAR_MOVING_MEAN, VAR_MOVING_VARIANCE
} VarRole;

typedef struct {
  char layer[UNET_NAME_LEN]; /* Keras layer name, e.g. "separable_conv2d_1" */
  int index;                 /* i in /layers/<layer>/vars/<i> */
  VarRole role;
  int ndim;
  int shape[4];              /* Keras shape */
  size_t size;               /* elements */
  int trainable;             /* 1: in params/grads, 0: in state */
  size_t offset;             /* into params (trainable) or state (not) */
  int fan_in, fan_out;       /* for glorot init of kernels (0 otherwise) */
} ModelVar;

/* Every layer of the Keras functional model, in model order, including those
 * without variables (activation, add, ...) because the Keras weights file has
 * a group for each. */
typedef struct {
  char name[UNET_NAME_LEN];
  int first_var, num_vars; /* range in UNet.vars */
} ModelLayer;

typedef struct UNetImpl UNetImpl; /* private: layer wiring, planned buffers, timers */

typedef struct {
  int height, width, num_classes;
  int num_vars;
  ModelVar *vars;
  int num_layers;
  ModelLayer *layers;
  size_t num_params; /* trainable floats */
  size_t num_state;  /* non-trainable floats (BN moving mean/variance) */
  float *params;     /* [num_params] */
  float *grads;      /* [num_params] */
  float *state;      /* [num_state] */
  float bn_momentum, bn_epsilon;
  LossSpec loss; /* class weights / ignored label of the training loss (default: plain, as Keras) */
  UNetImpl *impl;
} UNet;

/* Returns 0, or -1 with a reason in err (size not divisible by 16, ...). */
int unet_create(UNet *m, int height, int width, int num_classes, char *err, size_t err_len);
void unet_destroy(UNet *m);

/* Keras initialisation: glorot-uniform kernels from seed, zero biases,
 * gamma 1, beta 0, moving mean 0, moving variance 1. */
void unet_init_keras(UNet *m, uint64_t seed);

const ModelVar *unet_find_var(const UNet *m, const char *layer, int index);
float *unet_var_data(UNet *m, const ModelVar *v);       /* view into params or state */
size_t unet_param_count_total(const UNet *m);           /* trainable + non-trainable */

/* OpenBLAS threads for this process's GEMMs (the only threaded part). Where
 * the convolutions' GEMMs run on the own AVX-512 kernels they use the calling
 * thread only: run one rank per core there. */
void unet_set_threads(int threads);

/* Which code runs the convolutions' GEMMs: "avx512" (own kernels, chosen
 * where the CPU has AVX-512F) or "openblas"; UNET_GEMM=openblas|avx512|auto
 * in the environment decides at program start. */
const char *unet_gemm_backend(void);

/* Plan activation memory for batches of up to max_batch images. */
void unet_plan(UNet *m, int max_batch);
size_t unet_activation_bytes(const UNet *m);

/* Called during backward when grads[offset .. num_params) are final (the
 * layers from there to the end of the model are done), so communication can
 * start while earlier layers are still computing. */
typedef void (*GradReadyFn)(size_t offset, void *ctx);

/* Training step, forward and backward for n images (n <= planned batch):
 *   x      [n, H, W, 3] float 0..255, read in place (not copied, not written):
 *          keep it unchanged until the call returns
 *   labels [n, H, W] class ids
 * loss_scale = 1 / (pixels in the global batch), so that gradients summed
 * over replicas give the gradient of the global mean loss (with m->loss:
 * 1 / the loss_weight_sum of the global batch).
 * Accumulates into m->grads (caller zeroes them), updates BN moving stats,
 * returns the SUM of the per-pixel losses of these n images (weighted as m->loss says).
 */
double unet_train_step(UNet *m, const float *x, const uint8_t *labels, int n, float loss_scale,
                       BatchNormReducer bn_reduce, GradReadyFn on_ready, void *ready_ctx);

/* Forward in training mode only (no loss, no backward): updates the BN moving
 * statistics with m->bn_momentum from this batch's statistics. */
void unet_update_batch_stats(UNet *m, const float *x, int n, BatchNormReducer bn_reduce);

/* --bn-recalibrate: batch k (k = 1, 2, ...) of a series. Afterwards the BN
 * moving statistics are the plain mean of the batch statistics of batches
 * 1..k (this one enters with momentum 1 - 1/k); m->bn_momentum is unchanged. */
void unet_average_batch_stats(UNet *m, const float *x, int n, int k, BatchNormReducer bn_reduce);

/* Inference with the moving BN statistics: probs [n, H, W, C] softmax. The
 * logits stay readable through unet_last_logits until the next call. */
void unet_predict(UNet *m, const float *x, int n, float *probs);
const float *unet_last_logits(const UNet *m); /* [n, H, W, C] */

/* Flip test-time augmentation (--tta flip, not Keras): the logits of x and of
 * its mirror image (left-right), the latter mirrored back, averaged:
 *   logits[b,y,x,:] = (f(x)[b,y,x,:] + f(mirror x)[b,y,W-1-x,:]) / 2,
 * and probs = softmax(logits). The network is not mirror-symmetric (its
 * kernels are not), so the two passes differ and their mean is a better
 * estimate. Buffers: x_mirror [n, H, W, 3], logits [n, H, W, C]. */
void unet_predict_flip_average(UNet *m, const float *x, int n, float *probs, float *x_mirror, float *logits);

/* Time spent per layer kind in the last unet_train_step (seconds), for the
 * benchmark's breakdown. */
typedef enum { TIME_CONV, TIME_CONVT, TIME_SEPARABLE, TIME_BN, TIME_POOL_UP, TIME_ELEMWISE, TIME_LOSS, TIME_KINDS } TimeKind;
extern const char *const unet_time_kind_names[TIME_KINDS];
void unet_time_breakdown(const UNet *m, double out[TIME_KINDS]);
void unet_time_reset(UNet *m);

#endif
