/* conv_transpose.c - Conv2DTranspose(3x3, stride 1, 'same') as a conv2d.
 *
 * Keras stores the kernel K as (3, 3, cout, cin). The layer is the input
 * gradient of a same-padded conv A whose kernel is K read as (kh, kw, in=cout,
 * out=cin). With stride 1 and pad 1 on every side, that gradient is itself a
 * same-padded 3x3 conv from cin to cout channels with the flipped,
 * channel-swapped kernel
 *   Kf[i][j][ci][co] = K[2-i][2-j][co][ci]      (Kf is (3, 3, cin, cout)).
 * Workspace layout: [Kf | gradient of Kf | conv2d workspace], 2*9*cin*cout
 * floats besides the conv2d's.
 */
#include <string.h>

#include "unet/layers.h"
#include "unet/util.h"

static ConvDims transpose_dims(int cin, int cout) {
  ConvDims d = {3, 1, cin, cout};
  return d;
}

size_t conv_transpose3x3_workspace_floats(int cin, int cout, int n, int h, int w) {
  return (size_t)18 * cin * cout + conv2d_workspace_floats(transpose_dims(cin, cout), n, h, w);
}

static void check_workspace(int cin, int cout, size_t ws_floats, const char *who) {
  if (cin < 1 || cout < 1) unet_fatal("%s: invalid channels cin=%d cout=%d", who, cin, cout);
  if (ws_floats < (size_t)18 * cin * cout)
    unet_fatal("%s: workspace of %zu floats cannot hold the %dx%d flipped kernel and its gradient (%zu floats)", who,
               ws_floats, cin, cout, (size_t)18 * cin * cout);
}

/* kf (3,3,cin,cout) = flip of k (3,3,cout,cin) */
static void flip_kernel(float *restrict kf, const float *restrict k, int cin, int cout) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      const float *src = k + (size_t)((2 - i) * 3 + (2 - j)) * cout * cin; /* [co][ci] */
      float *dst = kf + (size_t)(i * 3 + j) * cin * cout;                   /* [ci][co] */
      for (int ci = 0; ci < cin; ci++)
        for (int co = 0; co < cout; co++) dst[(size_t)ci * cout + co] = src[(size_t)co * cin + ci];
    }
}

/* dk (3,3,cout,cin) += un-flip of dkf (3,3,cin,cout) */
static void unflip_add(float *restrict dk, const float *restrict dkf, int cin, int cout) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      const float *src = dkf + (size_t)(i * 3 + j) * cin * cout;       /* [ci][co] */
      float *dst = dk + (size_t)((2 - i) * 3 + (2 - j)) * cout * cin; /* [co][ci] */
      for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) dst[(size_t)co * cin + ci] += src[(size_t)ci * cout + co];
    }
}

void conv_transpose3x3_forward(float *out, const float *in, const float *kernel, const float *bias, int n, int h, int w,
                               int cin, int cout, float *ws, size_t ws_floats) {
  check_workspace(cin, cout, ws_floats, "conv_transpose3x3_forward");
  const size_t kf_floats = (size_t)9 * cin * cout;
  flip_kernel(ws, kernel, cin, cout);
  conv2d_forward(out, in, ws, bias, n, h, w, transpose_dims(cin, cout), 0, ws + 2 * kf_floats,
                 ws_floats - 2 * kf_floats);
}

void conv_transpose3x3_backward(float *din, float *dkernel, float *dbias, const float *dout, const float *in,
                                const float *kernel, int n, int h, int w, int cin, int cout, float *ws,
                                size_t ws_floats) {
  check_workspace(cin, cout, ws_floats, "conv_transpose3x3_backward");
  const size_t kf_floats = (size_t)9 * cin * cout;
  float *kf = ws, *dkf = ws + kf_floats;
  flip_kernel(kf, kernel, cin, cout);
  if (dkernel) memset(dkf, 0, kf_floats * sizeof(float));
  conv2d_backward(din, dkernel ? dkf : NULL, dbias, dout, in, kf, n, h, w, transpose_dims(cin, cout), 1,
                  ws + 2 * kf_floats, ws_floats - 2 * kf_floats);
  if (dkernel) unflip_add(dkernel, dkf, cin, cout);
}
