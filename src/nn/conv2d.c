/* conv2d.c - k x k Conv2D with TensorFlow 'same' padding as im2col + sgemm.
 *
 * Layout: in [N,H,W,cin], out [N,OH,OW,cout], kernel (k,k,cin,cout) which,
 * flattened, is a row-major [K = k*k*cin, cout] matrix. An im2col row for
 * output pixel (n,oy,ox) holds the k*k*cin inputs it sees in the same
 * (ki,kj,ci) order, so a chunk of images is one GEMM:
 *   col [rows = nc*OH*OW, K] x kernel [K, cout] -> out [rows, cout].
 * The batch is processed in chunks of nc images whose im2col fits the
 * workspace, so small spatial sizes still get a tall GEMM while large ones
 * stay within a bounded buffer. A 1x1 stride-1 conv needs no im2col at all:
 * the input already is the [N*H*W, cin] matrix.
 */
#include <string.h>

#include "unet/layers.h"
#include "unet/util.h"
#include "conv3x3_thin.h"
#include "gemm.h"
#include "winograd.h"

/* im2col budget in floats (8 MiB): 10x10 and 20x20 maps still batch many
 * images per GEMM, and a chunk stays in the L3 between im2col and GEMM.
 * Measured (bench-layers, one thread): 1-2M floats beat 4M and 16M by ~15%
 * on the transposed convs. */
#define CONV_COL_BUDGET_FLOATS ((size_t)2 << 20)

/* 3x3 stride-1 convs with at least this many input and output channels run
 * as Winograd F(2x2,3x3) or F(4x4,3x3) (winograd.c); thinner ones keep
 * the im2col paths, whose GEMMs the Winograd transforms would not pay for.
 * Measured (batch 16, one thread, forward + backward): 16->16 at 10x10 to
 * 160x160 1.2-1.9x faster, the U-Net's transposed convs 1.4-2.4x. */
#define WINOGRAD_MIN_CHANNELS 16

/* Winograd computes whole m x m tiles, (m+2)^2 multiplies each, where the
 * direct conv needs 9 per output pixel; tiny or one-pixel-thin maps waste
 * most of a tile (1x1: 16 vs 9, measured 1.7x slower forward), so Winograd
 * is used only when it saves at least 20% of the multiplies (3x3: 64 vs 81
 * still ran faster). F(4x4) (36 multiplies per 16 pixels) is taken where it
 * needs at most 70% of F(2x2)'s multiplies and an image has at least
 * WINOGRAD4_MIN_TILES tiles: its GEMMs have one row per tile and run per
 * image, and shorter ones lose more than the multiplies save. Measured
 * (bench-layers, batch 16, one thread, forward + backward) on the U-Net's
 * transposed convs: 40x40 and 80x80 25-35% faster than F(2x2), 20x20 (25
 * tiles) 5-10%, 10x10 (9 tiles) 1.6x slower. Returns the tile side, or 0. */
#define WINOGRAD4_MIN_TILES 25
static int winograd_tile(ConvDims d, int h, int w) {
  if (d.k != 3 || d.stride != 1 || d.cin < WINOGRAD_MIN_CHANNELS || d.cout < WINOGRAD_MIN_CHANNELS) return 0;
  double tiles2 = (double)((h + 1) / 2) * ((w + 1) / 2), tiles4 = (double)((h + 3) / 4) * ((w + 3) / 4);
  if (tiles4 >= WINOGRAD4_MIN_TILES && 36.0 * tiles4 <= 0.7 * 16.0 * tiles2) return 4;
  return 16.0 * tiles2 <= 0.8 * 9.0 * h * w ? 2 : 0;
}

/* Five ways to run a convolution:
 *  WINOGRAD   3x3 stride 1 where winograd_tile() picks F(2x2) or F(4x4):
 *             forward and both gradients in winograd.c (2.25x or 4x fewer
 *             multiplies).
 *  THIN       3x3 stride 1 to at most THIN_MAX_OUT channels (the head):
 *             direct loops in conv3x3_thin.c, no GEMM three columns wide.
 *  POINTWISE  1x1 stride 1: the NHWC tensors already are the GEMM operands;
 *             its backward multiplies by the kernel's transpose, made in
 *             the kernel scratch (the workspace is that scratch only).
 *  STRIDE1    odd k, stride 1 (symmetric padding (k-1)/2): the input gradient
 *             is the same-padded conv of dout with the flipped kernel, so
 *             backward builds one im2col of dout, G [rows, k*k*cout], and
 *             uses it for both din += G x K' and dkernel <- in^T x G: a deep
 *             GEMM (inner k*k*cout) instead of dout x kernel^T (inner cout)
 *             followed by a col2im. When cout <= cin/2 (as in the
 *             transposed convs that halve the channels) the forward
 *             also works on the output side: Y = in x K'' [rows, k*k*cout],
 *             then out = shifted sum of Y; its GEMM has N = k*k*cout
 *             instead of a thin N = cout (measured 30% faster at 80x80
 *             64->32; slower when cout = cin).
 *  GENERAL    stride 2: im2col of the input; backward scatters dcol,
 *             computed against the kernel's transpose in the kernel scratch.
 * The GEMMs are gemm.h's (own AVX-512 kernels where the CPU has them).
 * Workspace: [kernel scratch | nc images' worth of im2col / G / Y]. */
typedef enum { CONV_POINTWISE, CONV_WINOGRAD, CONV_THIN, CONV_STRIDE1, CONV_GENERAL } ConvPath;

typedef struct {
  ConvPath path;
  int tile;           /* WINOGRAD: output tile side */
  int small_out;      /* STRIDE1: forward through Y (cout <= cin/2) */
  size_t scratch;     /* kernel-sized scratch floats */
  size_t per_image;   /* im2col/G/Y floats per image */
} ConvPlan;

static ConvPlan conv_plan(ConvDims d, int h, int w) {
  ConvPlan p = {CONV_GENERAL, 0, 0, 0, 0};
  size_t taps = (size_t)d.k * d.k, kernel = taps * d.cin * d.cout;
  size_t oh = (size_t)same_out_size(h, d.stride), ow = (size_t)same_out_size(w, d.stride);
  if (d.k == 1 && d.stride == 1) {
    p.path = CONV_POINTWISE;
    p.scratch = kernel; /* backward: kernel^T */
  } else if ((p.tile = winograd_tile(d, h, w)) != 0) {
    p.path = CONV_WINOGRAD;
  } else if (d.k == 3 && d.stride == 1 && d.cout <= THIN_MAX_OUT) {
    p.path = CONV_THIN;
  } else if (d.stride == 1 && d.k % 2 == 1) {
    p.path = CONV_STRIDE1;
    p.small_out = 2 * d.cout <= d.cin;
    p.scratch = 2 * kernel;
    size_t in_side = oh * ow * taps * d.cin, out_side = (size_t)h * w * taps * d.cout;
    p.per_image = p.small_out ? out_side : (in_side > out_side ? in_side : out_side);
  } else {
    p.scratch = kernel; /* backward: kernel^T */
    p.per_image = oh * ow * taps * d.cin;
  }
  return p;
}

size_t conv2d_workspace_floats(ConvDims d, int n, int h, int w) {
  ConvPlan p = conv_plan(d, h, w);
  if (n <= 0) return 0;
  if (p.path == CONV_POINTWISE) return p.scratch;
  if (p.path == CONV_WINOGRAD) return winograd_workspace_floats(p.tile, d.cin, d.cout, n, h, w);
  if (p.path == CONV_THIN) return conv3x3_thin_workspace_floats(d.cin, d.cout);
  size_t images = p.per_image ? CONV_COL_BUDGET_FLOATS / p.per_image : 1;
  if (images < 1) images = 1;
  if (images > (size_t)n) images = (size_t)n;
  return p.scratch + images * p.per_image;
}

/* Images per chunk that the caller's workspace allows (at least one). */
static int chunk_images(ConvPlan p, ConvDims d, int n, int h, int w, size_t ws_floats, const char *who) {
  size_t images = ws_floats > p.scratch && p.per_image ? (ws_floats - p.scratch) / p.per_image : 0;
  if (images < 1)
    unet_fatal("%s: workspace of %zu floats is too small for a %dx%d conv on %dx%dx%d input (needs %zu)", who,
               ws_floats, d.k, d.k, h, w, d.cin, p.scratch + p.per_image);
  if (images > (size_t)n) images = (size_t)n;
  return (int)images;
}

static void check_dims(ConvDims d, int n, int h, int w, const char *who) {
  if (d.k < 1 || d.stride < 1 || d.cin < 1 || d.cout < 1 || n < 0 || h < 1 || w < 1)
    unet_fatal("%s: invalid shape k=%d stride=%d cin=%d cout=%d on input %dx%dx%dx%d", who, d.k, d.stride, d.cin,
               d.cout, n, h, w, d.cin);
}

/* Range [*lo, *hi) of kernel taps t in 0..k-1 whose input coordinate
 * base + t lies inside 0..size-1. */
static void valid_taps(int base, int k, int size, int *lo, int *hi) {
  int a = base < 0 ? -base : 0;
  int b = size - base;
  if (b > k) b = k;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* col [nc*OH*OW, k*k*cin] from in [nc,H,W,cin]. Along a kernel row the taps
 * read consecutive input pixels, so each kernel row is one contiguous copy of
 * up to k*cin floats, with zeros for the padded taps. */
static void im2col(float *restrict col, const float *restrict in, int nc, int h, int w, ConvDims d) {
  const int k = d.k, s = d.stride, cin = d.cin;
  const int oh = same_out_size(h, s), ow = same_out_size(w, s);
  const int pt = same_pad_before(h, k, s), pl = same_pad_before(w, k, s);
  const size_t row_len = (size_t)k * cin;
  for (int img = 0; img < nc; img++) {
    const float *image = in + (size_t)img * h * w * cin;
    for (int oy = 0; oy < oh; oy++) {
      int y0 = oy * s - pt;
      for (int ox = 0; ox < ow; ox++) {
        int x0 = ox * s - pl, kx_lo, kx_hi;
        valid_taps(x0, k, w, &kx_lo, &kx_hi);
        for (int ky = 0; ky < k; ky++, col += row_len) {
          int y = y0 + ky;
          if (y < 0 || y >= h || kx_lo >= kx_hi) {
            memset(col, 0, row_len * sizeof(float));
            continue;
          }
          if (kx_lo > 0) memset(col, 0, (size_t)kx_lo * cin * sizeof(float));
          memcpy(col + (size_t)kx_lo * cin, image + ((size_t)y * w + x0 + kx_lo) * cin,
                 (size_t)(kx_hi - kx_lo) * cin * sizeof(float));
          if (kx_hi < k) memset(col + (size_t)kx_hi * cin, 0, (size_t)(k - kx_hi) * cin * sizeof(float));
        }
      }
    }
  }
}

/* din [nc,H,W,cin] += col2im(dcol [nc*OH*OW, k*k*cin]); padded taps drop. */
static void col2im_add(float *restrict din, const float *restrict dcol, int nc, int h, int w, ConvDims d) {
  const int k = d.k, s = d.stride, cin = d.cin;
  const int oh = same_out_size(h, s), ow = same_out_size(w, s);
  const int pt = same_pad_before(h, k, s), pl = same_pad_before(w, k, s);
  const size_t row_len = (size_t)k * cin;
  for (int img = 0; img < nc; img++) {
    float *image = din + (size_t)img * h * w * cin;
    for (int oy = 0; oy < oh; oy++) {
      int y0 = oy * s - pt;
      for (int ox = 0; ox < ow; ox++) {
        int x0 = ox * s - pl, kx_lo, kx_hi;
        valid_taps(x0, k, w, &kx_lo, &kx_hi);
        for (int ky = 0; ky < k; ky++, dcol += row_len) {
          int y = y0 + ky;
          if (y < 0 || y >= h || kx_lo >= kx_hi) continue;
          float *dst = image + ((size_t)y * w + x0 + kx_lo) * cin;
          const float *src = dcol + (size_t)kx_lo * cin;
          size_t len = (size_t)(kx_hi - kx_lo) * cin;
          for (size_t i = 0; i < len; i++) dst[i] += src[i];
        }
      }
    }
  }
}

/* out [rows, c] = bias (or += bias when accumulating). */
static void apply_bias(float *restrict out, const float *restrict bias, long rows, int c, int accumulate) {
  for (long r = 0; r < rows; r++, out += c) {
    if (accumulate)
      for (int j = 0; j < c; j++) out[j] += bias[j];
    else
      memcpy(out, bias, (size_t)c * sizeof(float));
  }
}

/* dbias[c] += column sums of dout [rows, c]: float partial sums over short
 * blocks of rows, gathered in double so a long batch does not lose bits.
 * Channels are independent, so they go in groups that fit on the stack. */
static void add_column_sums(float *restrict dbias, const float *restrict dout, long rows, int c) {
  enum { BLOCK = 64, GROUP = 256 };
  double total[GROUP];
  float partial[GROUP];
  for (int j0 = 0; j0 < c; j0 += GROUP) {
    const int g = c - j0 < GROUP ? c - j0 : GROUP;
    memset(total, 0, (size_t)g * sizeof(double));
    for (long r0 = 0; r0 < rows; r0 += BLOCK) {
      long r1 = r0 + BLOCK < rows ? r0 + BLOCK : rows;
      memcpy(partial, dout + (size_t)r0 * c + j0, (size_t)g * sizeof(float));
      for (long r = r0 + 1; r < r1; r++) {
        const float *row = dout + (size_t)r * c + j0;
        for (int j = 0; j < g; j++) partial[j] += row[j];
      }
      for (int j = 0; j < g; j++) total[j] += partial[j];
    }
    for (int j = 0; j < g; j++) dbias[j0 + j] += (float)total[j];
  }
}

/* kt [cols, rows] = k^T for k [rows, cols]: the input-gradient GEMMs
 * multiply by the kernel's transpose, and gemm.h has NN and TN only. */
static void transpose(float *restrict kt, const float *restrict k, int rows, int cols) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) kt[(size_t)c * rows + r] = k[(size_t)r * cols + c];
}

/* Kernel (k,k,cin,cout) rearranged for the STRIDE1 path, t = tap, t' = the
 * flipped tap k*k-1-t:
 *   by_output [cin, k*k*cout]:     [ci][t*cout + co]  = K[t][ci][co]
 *   flipped   [k*k*cout, cin]:     [t'*cout + co][ci] = K[t][ci][co]  */
static void kernel_by_output(float *restrict dst, const float *restrict kernel, ConvDims d) {
  const int taps = d.k * d.k;
  for (int t = 0; t < taps; t++)
    for (int ci = 0; ci < d.cin; ci++)
      memcpy(dst + (size_t)ci * taps * d.cout + (size_t)t * d.cout, kernel + ((size_t)t * d.cin + ci) * d.cout,
             (size_t)d.cout * sizeof(float));
}
static void kernel_flipped(float *restrict dst, const float *restrict kernel, ConvDims d) {
  const int taps = d.k * d.k;
  for (int t = 0; t < taps; t++) /* [ci][co] plane of tap t -> [co][ci] plane of tap t' */
    transpose(dst + (size_t)(taps - 1 - t) * d.cout * d.cin, kernel + (size_t)t * d.cin * d.cout, d.cin, d.cout);
}
/* dkernel[t][ci][co] += m[ci][t'*cout + co], m = in^T x G [cin, k*k*cout] */
static void add_flipped_kernel_grad(float *restrict dkernel, const float *restrict m, ConvDims d) {
  const int taps = d.k * d.k;
  for (int t = 0; t < taps; t++)
    for (int ci = 0; ci < d.cin; ci++) {
      const float *src = m + (size_t)ci * taps * d.cout + (size_t)(taps - 1 - t) * d.cout;
      float *dst = dkernel + ((size_t)t * d.cin + ci) * d.cout;
      for (int co = 0; co < d.cout; co++) dst[co] += src[co];
    }
}

/* out [nc,H,W,cout] += sum over taps of y [nc,H,W,k*k*cout] read at the
 * tap's shifted pixel (STRIDE1 forward through the output side). */
static void shifted_tap_sum(float *restrict out, const float *restrict y, int nc, int h, int w, ConvDims d) {
  const int k = d.k, pad = (k - 1) / 2, cout = d.cout;
  const size_t ystride = (size_t)k * k * cout;
  for (int img = 0; img < nc; img++) {
    const float *yimg = y + (size_t)img * h * w * ystride;
    float *oimg = out + (size_t)img * h * w * cout;
    for (int oy = 0; oy < h; oy++)
      for (int ky = 0; ky < k; ky++) {
        int sy = oy + ky - pad;
        if (sy < 0 || sy >= h) continue;
        for (int kx = 0; kx < k; kx++) {
          int x_lo = pad - kx > 0 ? pad - kx : 0, x_hi = w + pad - kx < w ? w + pad - kx : w;
          const float *src = yimg + ((size_t)sy * w + (x_lo + kx - pad)) * ystride + (size_t)(ky * k + kx) * cout;
          float *dst = oimg + ((size_t)oy * w + x_lo) * cout;
          for (int x = x_lo; x < x_hi; x++, src += ystride, dst += cout)
            for (int co = 0; co < cout; co++) dst[co] += src[co];
        }
      }
  }
}

/* C [n*rows, N] = A [n*rows, K] x B [K, N] (+ C), each image computed as
 * if alone: OpenBLAS's last bits depend on a GEMM's height and row offset,
 * and a batched GEMM would make an image's result depend on its place in
 * the local batch, and so the training on the rank count; there it is one
 * GEMM per image. gemm.c's own kernels have no such dependence
 * (gemm_rows_independent), so there the batch is one GEMM. Every forward
 * and input-gradient GEMM goes through here; the kernel-gradient GEMMs sum
 * over the batch anyway. */
static void gemm_each_image(int n, int rows, int N, int K, const float *A, int lda, const float *B, int ldb,
                            int accumulate, float *C, int ldc) {
  if (gemm_rows_independent()) { /* the same bits as one GEMM per image */
    gemm_nn(n * rows, N, K, A, lda, B, ldb, accumulate, C, ldc);
    return;
  }
  for (int i = 0; i < n; i++)
    gemm_nn(rows, N, K, A + (size_t)i * rows * lda, lda, B, ldb, accumulate, C + (size_t)i * rows * ldc, ldc);
}

void conv2d_forward(float *out, const float *in, const float *kernel, const float *bias, int n, int h, int w, ConvDims d,
                    int accumulate, float *ws, size_t ws_floats) {
  check_dims(d, n, h, w, "conv2d_forward");
  if (n == 0) return;
  const ConvPlan p = conv_plan(d, h, w);
  const int oh = same_out_size(h, d.stride), ow = same_out_size(w, d.stride);
  const int kdim = d.k * d.k * d.cin;
  const size_t out_image = (size_t)oh * ow * d.cout, in_image = (size_t)h * w * d.cin;
  if (p.path == CONV_WINOGRAD) {
    winograd_conv3x3_forward(p.tile, out, in, kernel, bias, n, h, w, d.cin, d.cout, accumulate, ws, ws_floats);
    return;
  }
  if (p.path == CONV_THIN) {
    conv3x3_thin_forward(out, in, kernel, bias, n, h, w, d.cin, d.cout, accumulate, ws, ws_floats);
    return;
  }
  /* Bias first, so the GEMM always adds (beta = 1) or overwrites (beta = 0). */
  if (bias) apply_bias(out, bias, (long)n * oh * ow, d.cout, accumulate);
  const int add = bias || accumulate;

  if (p.path == CONV_POINTWISE) {
    gemm_each_image(n, h * w, d.cout, d.cin, in, d.cin, kernel, d.cout, add, out, d.cout);
    return;
  }
  const int nc = chunk_images(p, d, n, h, w, ws_floats, "conv2d_forward");
  float *kscratch = ws, *buf = ws + p.scratch;
  if (p.small_out) {
    const int ydim = d.k * d.k * d.cout;
    if (!add) memset(out, 0, (size_t)n * out_image * sizeof(float));
    kernel_by_output(kscratch, kernel, d);
    for (int i0 = 0; i0 < n; i0 += nc) {
      int cnt = n - i0 < nc ? n - i0 : nc;
      /* Y [rows, k*k*cout] = in [rows, cin] x by_output [cin, k*k*cout] */
      gemm_each_image(cnt, h * w, ydim, d.cin, in + (size_t)i0 * in_image, d.cin, kscratch, ydim, 0, buf, ydim);
      shifted_tap_sum(out + (size_t)i0 * out_image, buf, cnt, h, w, d);
    }
    return;
  }
  for (int i0 = 0; i0 < n; i0 += nc) {
    int cnt = n - i0 < nc ? n - i0 : nc;
    im2col(buf, in + (size_t)i0 * in_image, cnt, h, w, d);
    gemm_each_image(cnt, oh * ow, d.cout, kdim, buf, kdim, kernel, d.cout, add, out + (size_t)i0 * out_image, d.cout);
  }
}

/* STRIDE1 backward: G = im2col(dout) per chunk feeds both gradients. */
static void conv2d_backward_stride1(float *din, float *dkernel, const float *dout, const float *in,
                                    const float *kernel, int n, int h, int w, ConvDims d, ConvPlan p, int nc,
                                    float *ws) {
  const int gdim = d.k * d.k * d.cout;
  const size_t image = (size_t)h * w;
  const ConvDims over_dout = {d.k, 1, d.cout, d.cin}; /* im2col of dout: cout channels */
  float *flipped = ws, *kgrad = ws + p.scratch / 2, *g = ws + p.scratch;
  if (din) kernel_flipped(flipped, kernel, d);
  for (int i0 = 0; i0 < n; i0 += nc) {
    int cnt = n - i0 < nc ? n - i0 : nc, rows = cnt * h * w;
    im2col(g, dout + (size_t)i0 * image * d.cout, cnt, h, w, over_dout);
    /* din [rows, cin] += G [rows, k*k*cout] x flipped [k*k*cout, cin] */
    if (din)
      gemm_each_image(cnt, (int)image, d.cin, gdim, g, gdim, flipped, d.cin, 1, din + (size_t)i0 * image * d.cin,
                      d.cin);
    /* kgrad [cin, k*k*cout] (+)= in^T [cin, rows] x G [rows, k*k*cout] */
    if (dkernel)
      gemm_tn(d.cin, gdim, rows, in + (size_t)i0 * image * d.cin, d.cin, g, gdim, i0 > 0, kgrad, gdim);
  }
  if (dkernel) add_flipped_kernel_grad(dkernel, kgrad, d);
}

void conv2d_backward(float *din, float *dkernel, float *dbias, const float *dout, const float *in, const float *kernel,
                     int n, int h, int w, ConvDims d, int accumulate, float *ws, size_t ws_floats) {
  check_dims(d, n, h, w, "conv2d_backward");
  if (n == 0) return;
  const ConvPlan p = conv_plan(d, h, w);
  const int oh = same_out_size(h, d.stride), ow = same_out_size(w, d.stride);
  const int kdim = d.k * d.k * d.cin;
  const size_t out_image = (size_t)oh * ow * d.cout, in_image = (size_t)h * w * d.cin;
  if (dbias) add_column_sums(dbias, dout, (long)n * oh * ow, d.cout);
  /* The pointwise GEMM and the thin path write din directly; the others
   * scatter into it, so din = ... starts from zeros. */
  if (din && !accumulate && p.path != CONV_POINTWISE && p.path != CONV_THIN)
    memset(din, 0, (size_t)n * in_image * sizeof(float));
  if (p.path == CONV_WINOGRAD) {
    winograd_conv3x3_backward(p.tile, din, dkernel, dout, in, kernel, n, h, w, d.cin, d.cout, ws, ws_floats);
    return;
  }
  if (p.path == CONV_THIN) {
    conv3x3_thin_backward(din, dkernel, dout, in, kernel, n, h, w, d.cin, d.cout, accumulate, ws, ws_floats);
    return;
  }

  if (p.path == CONV_POINTWISE) {
    const int rows = n * h * w;
    /* dkernel [cin, cout] += in^T [cin, rows] x dout [rows, cout] */
    if (dkernel) gemm_tn(d.cin, d.cout, rows, in, d.cin, dout, d.cout, 1, dkernel, d.cout);
    /* din [rows, cin] (+)= dout [rows, cout] x kernel^T [cout, cin] */
    if (din) {
      if (ws_floats < p.scratch)
        unet_fatal("conv2d_backward: workspace of %zu floats cannot hold the %dx%d transposed 1x1 kernel", ws_floats,
                   d.cout, d.cin);
      transpose(ws, kernel, d.cin, d.cout);
      gemm_each_image(n, h * w, d.cin, d.cout, dout, d.cout, ws, d.cin, accumulate, din, d.cin);
    }
    return;
  }
  if (!din && !dkernel) return;
  const int nc = chunk_images(p, d, n, h, w, ws_floats, "conv2d_backward");
  if (p.path == CONV_STRIDE1) {
    conv2d_backward_stride1(din, dkernel, dout, in, kernel, n, h, w, d, p, nc, ws);
    return;
  }
  if (din) transpose(ws, kernel, kdim, d.cout); /* [cout, K] in the kernel scratch */
  for (int i0 = 0; i0 < n; i0 += nc) {
    int cnt = n - i0 < nc ? n - i0 : nc, rows = cnt * oh * ow;
    const float *dout_chunk = dout + (size_t)i0 * out_image;
    if (dkernel) {
      /* dkernel [K, cout] += col^T [K, rows] x dout [rows, cout] */
      im2col(ws + p.scratch, in + (size_t)i0 * in_image, cnt, h, w, d);
      gemm_tn(kdim, d.cout, rows, ws + p.scratch, kdim, dout_chunk, d.cout, 1, dkernel, d.cout);
    }
    if (din) {
      /* dcol [rows, K] = dout [rows, cout] x kernel^T [cout, K], reusing the
       * im2col buffer, then scattered back onto the input pixels. */
      gemm_each_image(cnt, oh * ow, kdim, d.cout, dout_chunk, d.cout, ws, kdim, 0, ws + p.scratch, kdim);
      col2im_add(din + (size_t)i0 * in_image, ws + p.scratch, cnt, h, w, d);
    }
  }
}
