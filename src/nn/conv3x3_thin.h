/* conv3x3_thin.h - private to src/nn: 3x3 stride-1 'same' Conv2D to at most
 * THIN_MAX_OUT output channels (the U-Net's 32 -> classes head), computed
 * directly, used by conv2d.c. Same layouts and +=/overwrite rules as
 * conv2d_* in include/unet/layers.h: in [N,H,W,cin], out [N,H,W,cout],
 * kernel (3,3,cin,cout). */
#ifndef UNET_NN_CONV3X3_THIN_H
#define UNET_NN_CONV3X3_THIN_H
#include <stddef.h>

#define THIN_MAX_OUT 4

/* Floats of workspace (the kernel in two layouts and the kernel-gradient
 * accumulator); independent of the batch. */
size_t conv3x3_thin_workspace_floats(int cin, int cout);

/* out = (accumulate ? out : 0) + bias + conv(in, kernel); bias may be NULL. */
void conv3x3_thin_forward(float *out, const float *in, const float *kernel, const float *bias, int n, int h, int w,
                          int cin, int cout, int accumulate, float *ws, size_t ws_floats);

/* din += dL/din (accumulate nonzero) or = (0: bit for bit the += onto
 * zeros), dkernel += dL/dkernel from dout [N,H,W,cout]; either may be NULL.
 * (The bias gradient is a column sum, left to the caller.) */
void conv3x3_thin_backward(float *din, float *dkernel, const float *dout, const float *in, const float *kernel, int n,
                           int h, int w, int cin, int cout, int accumulate, float *ws, size_t ws_floats);

#endif
