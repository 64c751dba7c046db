/* layers.h - the U-Net's layers as plain forward/backward function pairs.
 *
 * Conventions (all layers):
 *  - Tensors are NHWC float32, contiguous. Shapes are given in comments as
 *    [N,H,W,C]. Kernels use Keras's layout (kh, kw, cin, cout).
 *  - Forward functions overwrite their output.
 *  - Backward functions ACCUMULATE (+=) into every gradient they produce, both
 *    input gradients (a tensor read by two layers sums both contributions) and
 *    parameter gradients (zeroed once per step by the caller). A gradient
 *    pointer may be NULL when it is not needed.
 *  - 'same' padding is TensorFlow's: pad_total = max((ceil(n/s)-1)*s + k - n, 0),
 *    pad_before = pad_total / 2, the rest after.
 *  - Layers know nothing of MPI, files or the model: a synchronized BatchNorm
 *    gets its cross-replica reduction as a function.
 *  - Layers never allocate: scratch memory is passed in by the caller
 *    (ws, ws_floats; 64-byte aligned from xmalloc or the model's planned
 *    arena, 8 bytes at least), and *_workspace_floats() say how much. The
 *    model plans one workspace for the largest need of any layer, since its
 *    layers run one after another.
 */
#ifndef UNET_LAYERS_H
#define UNET_LAYERS_H
#include <stddef.h>
#include <stdint.h>

/* ---- padding arithmetic ---------------------------------------------------*/
static inline int same_out_size(int in, int stride) { return (in + stride - 1) / stride; }
static inline int same_pad_before(int in, int k, int stride) {
  int out = same_out_size(in, stride);
  int total = (out - 1) * stride + k - in;
  if (total < 0) total = 0;
  return total / 2;
}

/* ---- Conv2D: k x k, stride s, same padding, on cblas_sgemm ---------------- */
typedef struct {
  int k, stride, cin, cout;
} ConvDims;

/* Floats of scratch conv2d_forward/backward need for an input of h x w: one
 * im2col block for as many images as fit in a bounded budget (at least one). */
size_t conv2d_workspace_floats(ConvDims d, int n, int h, int w);
/* out [N,OH,OW,cout] = conv(in [N,H,W,cin], kernel (k,k,cin,cout)) + bias[cout]
 * (bias may be NULL). If accumulate is nonzero, out += result instead. */
void conv2d_forward(float *out, const float *in, const float *kernel, const float *bias, int n, int h, int w, ConvDims d,
                    int accumulate, float *ws, size_t ws_floats);
/* din [N,H,W,cin] += ... (accumulate nonzero) or = ... (0: din's old values
 * are never read), dkernel += ..., dbias += ... from dout [N,OH,OW,cout]. */
void conv2d_backward(float *din, float *dkernel, float *dbias, const float *dout, const float *in, const float *kernel,
                     int n, int h, int w, ConvDims d, int accumulate, float *ws, size_t ws_floats);

/* ---- Conv2DTranspose(3x3, stride 1, same) -------------------------------- */
/* Keras kernel layout (3, 3, cout, cin): the transpose of a same-padded conv
 * whose kernel is this one read as (kh, kw, out, in). Implemented as a conv2d
 * with the spatially flipped, channel-swapped kernel, so it needs 18*cin*cout
 * extra scratch floats (that kernel and its gradient) besides the conv2d
 * workspace; conv_transpose3x3_workspace_floats counts both. */
size_t conv_transpose3x3_workspace_floats(int cin, int cout, int n, int h, int w);
void conv_transpose3x3_forward(float *out, const float *in, const float *kernel, const float *bias, int n, int h, int w,
                               int cin, int cout, float *ws, size_t ws_floats);
void conv_transpose3x3_backward(float *din, float *dkernel, float *dbias, const float *dout, const float *in,
                                const float *kernel, int n, int h, int w, int cin, int cout, float *ws, size_t ws_floats);

/* ---- Depthwise 3x3, stride 1, same, depth multiplier 1, no bias ----------- */
/* kernel (3,3,C,1); scratch for images of width w with c channels. */
size_t depthwise3x3_workspace_floats(int w, int c);
void depthwise3x3_forward(float *out, const float *in, const float *kernel, int n, int h, int w, int c, float *ws,
                          size_t ws_floats);
void depthwise3x3_backward(float *din, float *dkernel, const float *dout, const float *in, const float *kernel, int n,
                           int h, int w, int c, float *ws, size_t ws_floats);

/* ---- BatchNormalization over N,H,W per channel ---------------------------- */
/* Sums `count` doubles element-wise over all replicas, in place. Called with
 * the same count on every replica. NULL reducer: statistics of this replica
 * only. */
typedef struct {
  void (*sum)(double *values, int count, void *ctx);
  void *ctx;
} BatchNormReducer;

/* Scratch of every BatchNorm function for c channels. */
size_t batchnorm_workspace_floats(int c);
/* Training: statistics of the (possibly global) batch, biased variance.
 * in/out [M = N*H*W, C] (out may equal in). Saves mean[C] and invstd[C] =
 * 1/sqrt(var + eps) for backward, and updates the moving statistics:
 * moving = momentum * moving + (1 - momentum) * batch. */
void batchnorm_forward_train(float *out, float *save_mean, float *save_invstd, float *moving_mean, float *moving_var,
                             const float *in, const float *gamma, const float *beta, long m, int c, float momentum,
                             float eps, BatchNormReducer red, float *ws, size_t ws_floats);
/* Inference with the moving statistics. out may equal in. */
void batchnorm_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                             const float *moving_mean, const float *moving_var, long m, int c, float eps, float *ws,
                             size_t ws_floats);
/* din += ... (accumulate nonzero) or din = ... (0: bit for bit the += onto
 * zeros, without reading din), dgamma/dbeta += this replica's own sums (the
 * gradient allreduce adds the rest); the sums that din needs are reduced
 * with red. */
void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *save_mean, const float *save_invstd, const float *gamma, long m, int c,
                        BatchNormReducer red, int accumulate, float *ws, size_t ws_floats);
/* BatchNorm followed by ReLU in one pass over the data, bit for bit the
 * unfused pair: out = relu_forward(batchnorm_forward_*(in)), and din += the
 * BatchNorm backward of relu_backward(dout, relu_out) into a zeroed buffer
 * (relu_out = the fused forward's out; dout [M, C] is the ReLU's gradient). */
void batchnorm_relu_forward_train(float *out, float *save_mean, float *save_invstd, float *moving_mean,
                                  float *moving_var, const float *in, const float *gamma, const float *beta, long m,
                                  int c, float momentum, float eps, BatchNormReducer red, float *ws, size_t ws_floats);
void batchnorm_relu_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                                  const float *moving_mean, const float *moving_var, long m, int c, float eps,
                                  float *ws, size_t ws_floats);
void batchnorm_relu_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *relu_out,
                             const float *in, const float *save_mean, const float *save_invstd, const float *gamma,
                             long m, int c, BatchNormReducer red, int accumulate, float *ws, size_t ws_floats);

/* ---- ReLU ------------------------------------------------------------------*/
void relu_forward(float *out, const float *in, long count); /* out may equal in */
/* din += dout where out > 0 (uses the output, so in-place forward is fine). */
void relu_backward(float *din, const float *dout, const float *out, long count);

/* ---- MaxPooling2D(3, stride 2, same); padding never wins ------------------ */
/* out [N,OH,OW,C], argmax [N,OH,OW,C] = flat index into in's image plane
 * (y*W + x) of the winner, saved for backward. */
void maxpool3s2_forward(float *out, int32_t *argmax, const float *in, int n, int h, int w, int c);
void maxpool3s2_backward(float *din, const float *dout, const int32_t *argmax, int n, int h, int w, int c);

/* ---- UpSampling2D(2), nearest --------------------------------------------- */
/* in [N,H,W,C] -> out [N,2H,2W,C] */
void upsample2x_forward(float *out, const float *in, int n, int h, int w, int c);
/* din [N,H,W,C] += (accumulate nonzero) or = (0: bit for bit the += onto
 * zeros) the sum over each 2x2 block of dout [N,2H,2W,C] */
void upsample2x_backward(float *din, const float *dout, int n, int h, int w, int c, int accumulate);

/* ---- Add ---------------------------------------------------------------- */
void add_forward(float *out, const float *a, const float *b, long count); /* out may alias a or b */

/* ---- Softmax + sparse categorical crossentropy from logits --------------- */
#define SOFTMAX_MAX_CLASSES 256 /* one pixel's exponentials live on the stack */
/* logits [M, C], labels [M] in 0..C-1. Returns the SUM of -log softmax over
 * the M pixels (in double). If dlogits is not NULL, writes (overwrites)
 * dlogits = (softmax - onehot) * grad_scale, where grad_scale is 1 / (pixels
 * in the global batch) for a mean loss. If probs is not NULL, writes softmax. */
double softmax_xent_forward_backward(float *dlogits, float *probs, const float *logits, const uint8_t *labels, long m,
                                     int c, float grad_scale);

/* What the loss counts, for users' own data: per-class weights (NULL: all 1)
 * and an ignored label (-1: none): a pixel with it adds nothing to the loss
 * nor to its gradient (its dlogits are 0), a pixel of class k counts w[k]. */
typedef struct {
  const float *class_weights; /* [C] or NULL */
  int ignore_label;           /* e.g. 255; -1: every label must be < C */
} LossSpec;
#define LOSS_SPEC_PLAIN ((LossSpec){NULL, -1})
/* softmax_xent_forward_backward under spec: returns the sum over the counted
 * pixels of w[label] * -log softmax[label]; dlogits = w[label] * (softmax -
 * onehot) * grad_scale (0 for ignored pixels). With LOSS_SPEC_PLAIN the very
 * same numbers as softmax_xent_forward_backward. */
double softmax_xent_weighted(float *dlogits, float *probs, const float *logits, const uint8_t *labels, long m, int c,
                             float grad_scale, const LossSpec *spec);
/* The weight the loss gives these m labels: sum of w[label] over the pixels
 * that are not ignored (the pixel count when weights are NULL). The mean loss
 * of a global batch is its weighted loss sum over this sum of all its ranks. */
double loss_weight_sum(const uint8_t *labels, long m, const LossSpec *spec);
/* Softmax only (inference). */
void softmax_forward(float *probs, const float *logits, long m, int c);

#endif
