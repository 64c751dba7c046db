/* winograd.h - private to src/nn: 3x3 stride-1 'same' Conv2D (pad 1 on every
 * side) with Winograd F(2x2,3x3) or F(4x4,3x3) (tile = 2 or 4 output pixels
 * a side), used by conv2d.c where it is faster than im2col + GEMM. Same
 * tensor layouts and +=/overwrite rules as conv2d_* in include/unet/layers.h:
 * in [N,H,W,cin], out [N,H,W,cout], kernel (3,3,cin,cout). */
#ifndef UNET_NN_WINOGRAD_H
#define UNET_NN_WINOGRAD_H
#include <stddef.h>

/* Floats of workspace for a batch of n images of h x w; the minimum that
 * works (one tile per chunk) is winograd_workspace_floats(tile, cin, cout, 1, 1, 1). */
size_t winograd_workspace_floats(int tile, int cin, int cout, int n, int h, int w);

/* out = (accumulate ? out : 0) + bias + conv(in, kernel); bias may be NULL. */
void winograd_conv3x3_forward(int tile, float *out, const float *in, const float *kernel, const float *bias, int n,
                              int h, int w, int cin, int cout, int accumulate, float *ws, size_t ws_floats);

/* din += dL/din, dkernel += dL/dkernel from dout [N,H,W,cout]; either may be
 * NULL. (The bias gradient is a column sum, left to the caller.) */
void winograd_conv3x3_backward(int tile, float *din, float *dkernel, const float *dout, const float *in,
                               const float *kernel, int n, int h, int w, int cin, int cout, float *ws,
                               size_t ws_floats);

#endif
