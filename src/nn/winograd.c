/* winograd.c - 3x3 stride-1 'same' Conv2D with Winograd F(2x2,3x3).
 *
 * The output is cut into 2x2 tiles (TH = ceil(H/2) by TW = ceil(W/2) per
 * image; tiles on an odd edge are partial and their missing pixels are
 * dropped). Output tile (ty,tx) needs the 4x4 input patch d starting at
 * (2ty-1, 2tx-1); pixels outside the image are the 'same' zero padding.
 * With g a 3x3 slice of the kernel,
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A,
 * so over channels the 16 transformed positions xi = (a,b) are 16 GEMMs
 *   M[xi] [tiles, cout] = V[xi] [tiles, cin] x U[xi] [cin, cout]
 * with V = B^T d B (input transform), U = G g G^T (kernel transform) and
 * Y = A^T M A (output transform): 16 instead of 36 multiplies per 2x2 tile.
 *
 * The backward pass is the exact adjoint of those steps: dM = A dY A^T
 * (dY [tiles, cout] read from dout, zero where a partial tile has no pixel),
 * then
 *   dU[xi] [cin, cout] += V[xi]^T x dM[xi]    -> dkernel += G^T dU G
 *   dV[xi] [tiles, cin] = dM[xi] x U[xi]^T     -> din patch += B dV B^T
 * so one transform of dout serves both gradients. Patches overlap (stride 2,
 * size 4): din pixels receive up to four tiles' contributions.
 *
 * Tiles of all images are numbered t = (img*TH + ty)*TW + tx and processed
 * in chunks of up to `cap` tiles whose V and M fit the workspace, so the
 * 16 GEMMs stay tall for small maps and memory stays bounded for large ones.
 * Workspace: [U 16*cin*cout | dU 16*cin*cout | zeros max(cin,cout) |
 *             V 16*cap*cin | M 16*cap*cout], V[xi] = V + xi*cap*cin.
 */
#include "winograd.h"

#include <cblas.h>
#include <string.h>

#include "unet/util.h"

/* V + M floats of a chunk. 2M floats (8 MiB) like conv2d.c's im2col budget;
 * measured with bench-layers (batch 16, one thread). */
#define WINOGRAD_CHUNK_BUDGET_FLOATS ((size_t)2 << 20)
/* Channels transformed at a time: a 16 x CHANNEL_BLOCK scratch stays in L1. */
#define CHANNEL_BLOCK 64

typedef struct {
  int n, h, w, cin, cout;
  int th, tw;          /* tiles per column / row of an image */
  size_t tiles;        /* n * th * tw */
  size_t per_tile;     /* V + M floats of one tile */
  size_t fixed;        /* U, dU and the zero vector */
  size_t cap;          /* tiles per chunk */
  float *u, *du, *zero, *v, *m;
} Plan;

static Plan plan_layout(int cin, int cout, int n, int h, int w) {
  Plan p;
  memset(&p, 0, sizeof p);
  p.n = n, p.h = h, p.w = w, p.cin = cin, p.cout = cout;
  p.th = (h + 1) / 2, p.tw = (w + 1) / 2;
  p.tiles = (size_t)n * p.th * p.tw;
  p.per_tile = (size_t)16 * (cin + cout);
  p.fixed = (size_t)32 * cin * cout + (size_t)(cin > cout ? cin : cout);
  return p;
}

/* Tiles per chunk for the planned workspace: the budget's worth, at least
 * one, at most the batch. */
static size_t planned_cap(const Plan *p) {
  size_t cap = WINOGRAD_CHUNK_BUDGET_FLOATS / p->per_tile;
  if (cap < 1) cap = 1;
  if (cap > p->tiles) cap = p->tiles;
  return cap;
}

size_t winograd_workspace_floats(int cin, int cout, int n, int h, int w) {
  if (n <= 0 || h <= 0 || w <= 0 || cin <= 0 || cout <= 0) return 0;
  Plan p = plan_layout(cin, cout, n, h, w);
  return p.fixed + planned_cap(&p) * p.per_tile;
}

/* Splits the caller's workspace; chunks never exceed the planned size (a
 * larger workspace planned for another layer would only thrash the cache). */
static Plan plan_workspace(int cin, int cout, int n, int h, int w, float *ws, size_t ws_floats, const char *who) {
  Plan p = plan_layout(cin, cout, n, h, w);
  size_t cap = ws_floats > p.fixed ? (ws_floats - p.fixed) / p.per_tile : 0;
  if (cap < 1)
    unet_fatal("%s: workspace of %zu floats is too small for a Winograd 3x3 conv %d->%d on %dx%d input (needs %zu)",
               who, ws_floats, cin, cout, h, w, p.fixed + p.per_tile);
  size_t want = planned_cap(&p);
  p.cap = cap < want ? cap : want;
  p.u = ws;
  p.du = p.u + (size_t)16 * cin * cout;
  p.zero = p.du + (size_t)16 * cin * cout;
  p.v = p.zero + (cin > cout ? cin : cout);
  p.m = p.v + (size_t)16 * p.cap * cin;
  memset(p.zero, 0, (size_t)(cin > cout ? cin : cout) * sizeof(float));
  return p;
}

/* The transforms are short vector loops over channels; the build targets
 * baseline x86-64 (SSE2), so on x86-64 GCC also compiles an AVX2 copy of each
 * and picks one at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif

/* ---- 1-D transforms on channel vectors (all pointers distinct) ---------- */
/* B^T: [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
static inline void bt_1d(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                         const float *restrict i0, const float *restrict i1, const float *restrict i2,
                         const float *restrict i3, int len) {
  for (int c = 0; c < len; c++) {
    o0[c] = i0[c] - i2[c];
    o1[c] = i1[c] + i2[c];
    o2[c] = i2[c] - i1[c];
    o3[c] = i1[c] - i3[c];
  }
}
/* B (the adjoint of bt_1d) */
static inline void b_1d(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                        const float *restrict i0, const float *restrict i1, const float *restrict i2,
                        const float *restrict i3, int len) {
  for (int c = 0; c < len; c++) {
    o0[c] = i0[c];
    o1[c] = i1[c] - i2[c] + i3[c];
    o2[c] = i1[c] + i2[c] - i0[c];
    o3[c] = -i3[c];
  }
}
/* A^T: [1 1 1 0; 0 1 -1 -1] */
static inline void at_1d(float *restrict o0, float *restrict o1, const float *restrict i0, const float *restrict i1,
                         const float *restrict i2, const float *restrict i3, int len) {
  for (int c = 0; c < len; c++) {
    o0[c] = i0[c] + i1[c] + i2[c];
    o1[c] = i1[c] - i2[c] - i3[c];
  }
}
/* A (the adjoint of at_1d) */
static inline void a_1d(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                        const float *restrict i0, const float *restrict i1, int len) {
  for (int c = 0; c < len; c++) {
    o0[c] = i0[c];
    o1[c] = i0[c] + i1[c];
    o2[c] = i0[c] - i1[c];
    o3[c] = -i1[c];
  }
}
/* G: [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
static inline void g_1d(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                        const float *restrict i0, const float *restrict i1, const float *restrict i2, int len) {
  for (int c = 0; c < len; c++) {
    float even = 0.5f * (i0[c] + i2[c]), odd = 0.5f * i1[c];
    o0[c] = i0[c];
    o1[c] = even + odd;
    o2[c] = even - odd;
    o3[c] = i2[c];
  }
}
/* G^T (the adjoint of g_1d) */
static inline void gt_1d(float *restrict o0, float *restrict o1, float *restrict o2, const float *restrict i0,
                         const float *restrict i1, const float *restrict i2, const float *restrict i3, int len) {
  for (int c = 0; c < len; c++) {
    float sum = 0.5f * (i1[c] + i2[c]);
    o0[c] = i0[c] + sum;
    o1[c] = 0.5f * (i1[c] - i2[c]);
    o2[c] = sum + i3[c];
  }
}

/* ---- kernel transforms ---------------------------------------------------*/
/* u[xi] [cin, cout] = (G g G^T)[a][b] for every (ci,co), g = kernel (3,3,cin,cout). */
VECTOR_CLONES static void kernel_transform(float *restrict u, const float *restrict kernel, int cin, int cout) {
  const size_t plane = (size_t)cin * cout;
  float t[12][CHANNEL_BLOCK]; /* t[i*4+b]: rows i of g, transformed along j */
  for (size_t e0 = 0; e0 < plane; e0 += CHANNEL_BLOCK) {
    int len = plane - e0 < CHANNEL_BLOCK ? (int)(plane - e0) : CHANNEL_BLOCK;
    const float *g = kernel + e0;
    for (int i = 0; i < 3; i++)
      g_1d(t[i * 4], t[i * 4 + 1], t[i * 4 + 2], t[i * 4 + 3], g + (i * 3) * plane, g + (i * 3 + 1) * plane,
           g + (i * 3 + 2) * plane, len);
    float *o = u + e0;
    for (int b = 0; b < 4; b++)
      g_1d(o + b * plane, o + (4 + b) * plane, o + (8 + b) * plane, o + (12 + b) * plane, t[b], t[4 + b], t[8 + b],
           len);
  }
}

/* dkernel (3,3,cin,cout) += G^T du G */
VECTOR_CLONES static void kernel_gradient_add(float *restrict dkernel, const float *restrict du, int cin, int cout) {
  const size_t plane = (size_t)cin * cout;
  float t[12][CHANNEL_BLOCK], r[3][CHANNEL_BLOCK]; /* t[a*3+j] */
  for (size_t e0 = 0; e0 < plane; e0 += CHANNEL_BLOCK) {
    int len = plane - e0 < CHANNEL_BLOCK ? (int)(plane - e0) : CHANNEL_BLOCK;
    const float *d = du + e0;
    for (int a = 0; a < 4; a++)
      gt_1d(t[a * 3], t[a * 3 + 1], t[a * 3 + 2], d + (a * 4) * plane, d + (a * 4 + 1) * plane,
            d + (a * 4 + 2) * plane, d + (a * 4 + 3) * plane, len);
    for (int j = 0; j < 3; j++) {
      gt_1d(r[0], r[1], r[2], t[j], t[3 + j], t[6 + j], t[9 + j], len);
      for (int i = 0; i < 3; i++) {
        float *dst = dkernel + (size_t)(i * 3 + j) * plane + e0;
        for (int c = 0; c < len; c++) dst[c] += r[i][c];
      }
    }
  }
}

/* ---- tile transforms -----------------------------------------------------*/
typedef struct {
  int img, ty, tx;
} Tile;

static Tile tile_at(const Plan *p, size_t t) {
  size_t per_image = (size_t)p->th * p->tw, r = t % per_image;
  Tile tile = {(int)(t / per_image), (int)(r / p->tw), (int)(r % p->tw)};
  return tile;
}

/* Index of pixel (y,x) of image img in an [N,H,W,*] tensor, or -1 when it
 * lies outside the image (padding, or the missing half of a partial tile). */
static inline long pixel_index(const Plan *p, int img, int y, int x) {
  if (y < 0 || y >= p->h || x < 0 || x >= p->w) return -1;
  return ((long)img * p->h + y) * p->w + x;
}

/* v[xi] row `row` = B^T d B for the 4x4 input patch of tile t. */
VECTOR_CLONES static void input_transform(const Plan *p, const float *in, size_t t, size_t row) {
  const int cin = p->cin;
  const size_t vs = p->cap * cin;
  Tile tl = tile_at(p, t);
  const float *src[16];
  for (int k = 0; k < 16; k++) {
    long at = pixel_index(p, tl.img, 2 * tl.ty - 1 + k / 4, 2 * tl.tx - 1 + k % 4);
    src[k] = at < 0 ? p->zero : in + (size_t)at * cin;
  }
  float tmp[16][CHANNEL_BLOCK]; /* tmp[pr*4+b]: patch row pr, transformed along columns */
  float *v = p->v + row * cin;
  for (int c0 = 0; c0 < cin; c0 += CHANNEL_BLOCK) {
    int len = cin - c0 < CHANNEL_BLOCK ? cin - c0 : CHANNEL_BLOCK;
    for (int pr = 0; pr < 4; pr++)
      bt_1d(tmp[pr * 4], tmp[pr * 4 + 1], tmp[pr * 4 + 2], tmp[pr * 4 + 3], src[pr * 4] + c0, src[pr * 4 + 1] + c0,
            src[pr * 4 + 2] + c0, src[pr * 4 + 3] + c0, len);
    float *o = v + c0;
    for (int b = 0; b < 4; b++)
      bt_1d(o + b * vs, o + (4 + b) * vs, o + (8 + b) * vs, o + (12 + b) * vs, tmp[b], tmp[4 + b], tmp[8 + b],
            tmp[12 + b], len);
  }
}

/* out pixels of tile t (= or += per accumulate) = A^T M A (+ bias). */
VECTOR_CLONES static void output_transform(const Plan *p, float *out, const float *bias, int accumulate, size_t t, size_t row) {
  const int cout = p->cout;
  const size_t ms = p->cap * cout;
  Tile tl = tile_at(p, t);
  float *dst[4];
  for (int k = 0; k < 4; k++) {
    long at = pixel_index(p, tl.img, 2 * tl.ty + k / 2, 2 * tl.tx + k % 2);
    dst[k] = at < 0 ? NULL : out + (size_t)at * cout;
  }
  float s[8][CHANNEL_BLOCK], y[4][CHANNEL_BLOCK]; /* s[r*4+b] */
  const float *m = p->m + row * cout;
  for (int c0 = 0; c0 < cout; c0 += CHANNEL_BLOCK) {
    int len = cout - c0 < CHANNEL_BLOCK ? cout - c0 : CHANNEL_BLOCK;
    const float *mi = m + c0;
    for (int b = 0; b < 4; b++)
      at_1d(s[b], s[4 + b], mi + b * ms, mi + (4 + b) * ms, mi + (8 + b) * ms, mi + (12 + b) * ms, len);
    for (int r = 0; r < 2; r++) at_1d(y[r * 2], y[r * 2 + 1], s[r * 4], s[r * 4 + 1], s[r * 4 + 2], s[r * 4 + 3], len);
    for (int k = 0; k < 4; k++) {
      if (!dst[k]) continue;
      float *o = dst[k] + c0;
      if (bias)
        for (int c = 0; c < len; c++) y[k][c] += bias[c0 + c];
      if (accumulate)
        for (int c = 0; c < len; c++) o[c] += y[k][c];
      else
        memcpy(o, y[k], (size_t)len * sizeof(float));
    }
  }
}

/* m[xi] row `row` = A dY A^T, dY = the 2x2 dout pixels of tile t (0 where the
 * tile is partial). */
VECTOR_CLONES static void dout_transform(const Plan *p, const float *dout, size_t t, size_t row) {
  const int cout = p->cout;
  const size_t ms = p->cap * cout;
  Tile tl = tile_at(p, t);
  const float *src[4];
  for (int k = 0; k < 4; k++) {
    long at = pixel_index(p, tl.img, 2 * tl.ty + k / 2, 2 * tl.tx + k % 2);
    src[k] = at < 0 ? p->zero : dout + (size_t)at * cout;
  }
  float e[8][CHANNEL_BLOCK]; /* e[a*2+s]: dY columns s transformed along rows */
  float *m = p->m + row * cout;
  for (int c0 = 0; c0 < cout; c0 += CHANNEL_BLOCK) {
    int len = cout - c0 < CHANNEL_BLOCK ? cout - c0 : CHANNEL_BLOCK;
    for (int s = 0; s < 2; s++) a_1d(e[s], e[2 + s], e[4 + s], e[6 + s], src[s] + c0, src[2 + s] + c0, len);
    float *o = m + c0;
    for (int a = 0; a < 4; a++)
      a_1d(o + (a * 4) * ms, o + (a * 4 + 1) * ms, o + (a * 4 + 2) * ms, o + (a * 4 + 3) * ms, e[a * 2],
           e[a * 2 + 1], len);
  }
}

/* din patch of tile t += B dV B^T, dV = v[xi] row `row`; padding drops. */
VECTOR_CLONES static void din_transform_add(const Plan *p, float *din, size_t t, size_t row) {
  const int cin = p->cin;
  const size_t vs = p->cap * cin;
  Tile tl = tile_at(p, t);
  float *dst[16];
  for (int k = 0; k < 16; k++) {
    long at = pixel_index(p, tl.img, 2 * tl.ty - 1 + k / 4, 2 * tl.tx - 1 + k % 4);
    dst[k] = at < 0 ? NULL : din + (size_t)at * cin;
  }
  float tmp[16][CHANNEL_BLOCK], d[16][CHANNEL_BLOCK]; /* tmp[a*4+q], d[pr*4+q] */
  const float *v = p->v + row * cin;
  for (int c0 = 0; c0 < cin; c0 += CHANNEL_BLOCK) {
    int len = cin - c0 < CHANNEL_BLOCK ? cin - c0 : CHANNEL_BLOCK;
    const float *vi = v + c0;
    for (int a = 0; a < 4; a++)
      b_1d(tmp[a * 4], tmp[a * 4 + 1], tmp[a * 4 + 2], tmp[a * 4 + 3], vi + (a * 4) * vs, vi + (a * 4 + 1) * vs,
           vi + (a * 4 + 2) * vs, vi + (a * 4 + 3) * vs, len);
    for (int q = 0; q < 4; q++)
      b_1d(d[q], d[4 + q], d[8 + q], d[12 + q], tmp[q], tmp[4 + q], tmp[8 + q], tmp[12 + q], len);
    for (int k = 0; k < 16; k++) {
      if (!dst[k]) continue;
      float *o = dst[k] + c0;
      for (int c = 0; c < len; c++) o[c] += d[k][c];
    }
  }
}

static void check_args(int n, int h, int w, int cin, int cout, const char *who) {
  if (n < 0 || h < 1 || w < 1 || cin < 1 || cout < 1)
    unet_fatal("%s: invalid shape %dx%dx%dx%d -> %d channels", who, n, h, w, cin, cout);
}

void winograd_conv3x3_forward(float *out, const float *in, const float *kernel, const float *bias, int n, int h,
                              int w, int cin, int cout, int accumulate, float *ws, size_t ws_floats) {
  check_args(n, h, w, cin, cout, "winograd_conv3x3_forward");
  if (n == 0) return;
  Plan p = plan_workspace(cin, cout, n, h, w, ws, ws_floats, "winograd_conv3x3_forward");
  kernel_transform(p.u, kernel, cin, cout);
  for (size_t t0 = 0; t0 < p.tiles; t0 += p.cap) {
    size_t rows = p.tiles - t0 < p.cap ? p.tiles - t0 : p.cap;
    for (size_t r = 0; r < rows; r++) input_transform(&p, in, t0 + r, r);
    /* M[xi] [rows, cout] = V[xi] [rows, cin] x U[xi] [cin, cout] */
    for (int xi = 0; xi < 16; xi++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, cout, cin, 1.0f, p.v + xi * p.cap * cin, cin,
                  p.u + (size_t)xi * cin * cout, cout, 0.0f, p.m + xi * p.cap * cout, cout);
    for (size_t r = 0; r < rows; r++) output_transform(&p, out, bias, accumulate, t0 + r, r);
  }
}

void winograd_conv3x3_backward(float *din, float *dkernel, const float *dout, const float *in, const float *kernel,
                               int n, int h, int w, int cin, int cout, float *ws, size_t ws_floats) {
  check_args(n, h, w, cin, cout, "winograd_conv3x3_backward");
  if (n == 0 || (!din && !dkernel)) return;
  Plan p = plan_workspace(cin, cout, n, h, w, ws, ws_floats, "winograd_conv3x3_backward");
  if (din) kernel_transform(p.u, kernel, cin, cout);
  for (size_t t0 = 0; t0 < p.tiles; t0 += p.cap) {
    size_t rows = p.tiles - t0 < p.cap ? p.tiles - t0 : p.cap;
    for (size_t r = 0; r < rows; r++) dout_transform(&p, dout, t0 + r, r);
    if (dkernel) {
      for (size_t r = 0; r < rows; r++) input_transform(&p, in, t0 + r, r);
      /* dU[xi] [cin, cout] (+)= V[xi]^T [cin, rows] x dM[xi] [rows, cout] */
      for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cin, cout, (int)rows, 1.0f, p.v + xi * p.cap * cin, cin,
                    p.m + xi * p.cap * cout, cout, t0 ? 1.0f : 0.0f, p.du + (size_t)xi * cin * cout, cout);
    }
    if (din) {
      /* dV[xi] [rows, cin] = dM[xi] [rows, cout] x U[xi]^T [cout, cin], over V */
      for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, cin, cout, 1.0f, p.m + xi * p.cap * cout, cout,
                    p.u + (size_t)xi * cin * cout, cout, 0.0f, p.v + xi * p.cap * cin, cin);
      for (size_t r = 0; r < rows; r++) din_transform_add(&p, din, t0 + r, r);
    }
  }
  if (dkernel) kernel_gradient_add(dkernel, p.du, cin, cout);
}
