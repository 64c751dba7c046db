/* winograd.c - 3x3 stride-1 'same' Conv2D with Winograd F(m x m, 3x3),
 * m = 2 or 4 output pixels a tile side (alpha = m + 2 input pixels).
 *
 * The output is cut into m x m tiles (TH = ceil(H/m) by TW = ceil(W/m) per
 * image; tiles on a ragged edge are partial and their missing pixels are
 * dropped). Output tile (ty,tx) needs the alpha x alpha input patch d
 * starting at (m*ty-1, m*tx-1); pixels outside the image are the 'same' zero
 * padding. With g a 3x3 slice of the kernel,
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A,
 * so over channels the alpha^2 transformed positions xi = (a,b) are GEMMs
 *   M[xi] [tiles, cout] = V[xi] [tiles, cin] x U[xi] [cin, cout]
 * with V = B^T d B (input transform), U = G g G^T (kernel transform) and
 * Y = A^T M A (output transform): per output pixel 4 multiplies with
 * F(2x2,3x3) and 2.25 with F(4x4,3x3), where the direct conv needs 9.
 * F(4x4) uses Lavin & Gray's points 0, +-1, +-2 (arXiv:1509.09308); its
 * transforms have larger coefficients, so its float error is a few times
 * F(2x2)'s (test_layers_conv prints both against the double reference).
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
 * Every tile takes the same branch-free path: pixels outside the image read
 * a zero vector and write a trash vector.
 * Workspace (X = alpha^2): [U X*cin*cout | dU X*cin*cout | zeros, trash
 *   max(cin,cout) each | V X*cap*cin | M X*cap*cout], V[xi] = V + xi*cap*cin.
 */
#include "winograd.h"

#include <string.h>

#include "gemm.h"
#include "unet/util.h"
#include "vector_clones.h"

/* V + M floats of a chunk: 512K floats (2 MiB). Measured on the U-Net's
 * transposed convs (batch 16, one thread, Zen L2 512 KiB, L3 32 MiB):
 * 512K-1M beat 256K by 10% and 2M by 15-35% on the 40x40 and 80x80 maps. */
#define WINOGRAD_CHUNK_BUDGET_FLOATS ((size_t)1 << 19)
/* ... but at least this many tiles (GEMM rows) when the batch has them: with
 * 512 channels each way 32-tile GEMMs made Winograd slower than im2col. */
#define WINOGRAD_MIN_CHUNK_TILES 128
/* F(4x4) chunks: 128K floats, at least 32 tiles. Its tiles hold 2.25x the
 * floats of F(2x2)'s; on the 20x20 256->128 conv a 128K budget ran 15-25%
 * faster than 512K (bench-layers convT, one thread), elsewhere within the
 * noise, and the workspace stays under F(2x2)'s. */
#define WINOGRAD4_CHUNK_BUDGET_FLOATS ((size_t)1 << 17)
#define WINOGRAD4_MIN_CHUNK_TILES 32
/* Kernel elements transformed at a time: the 12 x CHANNEL_BLOCK scratch of
 * the kernel transforms stays in L1. */
#define CHANNEL_BLOCK 64

typedef struct {
  int n, h, w, cin, cout;
  int side, xis;       /* output tile side m (2 or 4); (m+2)^2 transformed positions */
  int th, tw;          /* tiles per column / row of an image */
  size_t tiles;        /* n * th * tw */
  size_t per_tile;     /* V + M floats of one tile */
  size_t fixed;        /* U, dU, the zero and the trash vectors */
  size_t cap;          /* tiles per chunk */
  float *u, *du, *zero, *trash, *v, *m;
} Plan;

static Plan plan_layout(int tile, int cin, int cout, int n, int h, int w) {
  Plan p;
  memset(&p, 0, sizeof p);
  p.n = n, p.h = h, p.w = w, p.cin = cin, p.cout = cout;
  p.side = tile;
  p.xis = (tile + 2) * (tile + 2);
  p.th = (h + tile - 1) / tile, p.tw = (w + tile - 1) / tile;
  p.tiles = (size_t)n * p.th * p.tw;
  p.per_tile = (size_t)p.xis * (cin + cout);
  p.fixed = (size_t)2 * p.xis * cin * cout + (size_t)2 * (cin > cout ? cin : cout);
  return p;
}

/* Tiles per chunk for the planned workspace: the budget's worth, at least
 * the minimum, at most the batch. */
static size_t planned_cap(const Plan *p) {
  size_t budget = p->side == 4 ? WINOGRAD4_CHUNK_BUDGET_FLOATS : WINOGRAD_CHUNK_BUDGET_FLOATS;
  size_t least = p->side == 4 ? WINOGRAD4_MIN_CHUNK_TILES : WINOGRAD_MIN_CHUNK_TILES;
  size_t cap = budget / p->per_tile;
  if (cap < least) cap = least;
  if (cap > p->tiles) cap = p->tiles;
  return cap;
}

static void check_tile(int tile, const char *who) {
  if (tile != 2 && tile != 4) unet_fatal("%s: Winograd output tile %d is not 2 or 4", who, tile);
}

size_t winograd_workspace_floats(int tile, int cin, int cout, int n, int h, int w) {
  check_tile(tile, "winograd_workspace_floats");
  if (n <= 0 || h <= 0 || w <= 0 || cin <= 0 || cout <= 0) return 0;
  Plan p = plan_layout(tile, cin, cout, n, h, w);
  return p.fixed + planned_cap(&p) * p.per_tile;
}

/* Splits the caller's workspace; chunks never exceed the planned size (a
 * larger workspace planned for another layer would only thrash the cache). */
static Plan plan_workspace(int tile, int cin, int cout, int n, int h, int w, float *ws, size_t ws_floats,
                           const char *who) {
  check_tile(tile, who);
  Plan p = plan_layout(tile, cin, cout, n, h, w);
  size_t cap = ws_floats > p.fixed ? (ws_floats - p.fixed) / p.per_tile : 0;
  if (cap < 1)
    unet_fatal("%s: workspace of %zu floats is too small for a Winograd F(%dx%d,3x3) conv %d->%d on %dx%d input "
               "(needs %zu)",
               who, ws_floats, tile, tile, cin, cout, h, w, p.fixed + p.per_tile);
  size_t want = planned_cap(&p);
  p.cap = cap < want ? cap : want;
  p.u = ws;
  p.du = p.u + (size_t)p.xis * cin * cout;
  p.zero = p.du + (size_t)p.xis * cin * cout;
  p.trash = p.zero + (cin > cout ? cin : cout);
  p.v = p.trash + (cin > cout ? cin : cout);
  p.m = p.v + (size_t)p.xis * p.cap * cin;
  memset(p.zero, 0, (size_t)(cin > cout ? cin : cout) * sizeof(float));
  return p;
}

/* The transforms are short vector loops over channels: VECTOR_CLONES
 * (vector_clones.h) gives each an AVX2 copy. */
/* The tile transforms read and write 16 channel vectors at run-time offsets
 * that never overlap within one channel step c; GCC cannot prove it (too
 * many pairs to check at run time) and would not vectorize without this. */
#if defined(__GNUC__) && !defined(__clang__)
#define CHANNELS_INDEPENDENT _Pragma("GCC ivdep")
#else
#define CHANNELS_INDEPENDENT
#endif

/* ---- 1-D kernel transforms on channel vectors (all pointers distinct) --- */
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

/* ---- F(2x2,3x3) kernel transforms ------------------------------------------*/
/* u[xi] [cin, cout] = (G g G^T)[a][b] for every (ci,co), g = kernel (3,3,cin,cout). */
VECTOR_CLONES static void kernel_transform_f2(float *restrict u, const float *restrict kernel, int cin, int cout) {
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
VECTOR_CLONES static void kernel_gradient_add_f2(float *restrict dkernel, const float *restrict du, int cin, int cout) {
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

/* ---- F(2x2,3x3) tile transforms --------------------------------------------*/
/* Each works on one tile, one channel c at a time with all 16 values in
 * registers; the loop over c is what vectorizes. */
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

/* Pixel indices (pixel_index) of the side x side pixels of tile t, row-major,
 * starting at offset `start` from (m*ty, m*tx): -1 for the (m+2)^2 input
 * patch, 0 for the m x m output tile. */
static void tile_pixels(const Plan *p, size_t t, int side, int start, long *at) {
  Tile tl = tile_at(p, t);
  const int m = p->side;
  for (int k = 0; k < side * side; k++)
    at[k] = pixel_index(p, tl.img, m * tl.ty + start + k / side, m * tl.tx + start + k % side);
}

/* v[xi] row `row` = B^T d B for the 4x4 input patch d of tile t, where
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. */
VECTOR_CLONES static void input_transform_f2(const Plan *p, const float *in, size_t t, size_t row) {
  const int cin = p->cin;
  const size_t vs = p->cap * cin;
  long at[16];
  const float *d[16];
  tile_pixels(p, t, 4, -1, at);
  for (int k = 0; k < 16; k++) d[k] = at[k] < 0 ? p->zero : in + (size_t)at[k] * cin;
  const float *d00 = d[0], *d01 = d[1], *d02 = d[2], *d03 = d[3], *d10 = d[4], *d11 = d[5], *d12 = d[6],
              *d13 = d[7], *d20 = d[8], *d21 = d[9], *d22 = d[10], *d23 = d[11], *d30 = d[12], *d31 = d[13],
              *d32 = d[14], *d33 = d[15];
  float *v = p->v + row * cin;
  CHANNELS_INDEPENDENT
  for (int c = 0; c < cin; c++) {
    /* r{i}{b} = (d B)[i][b]: each patch row transformed */
    float r00 = d00[c] - d02[c], r01 = d01[c] + d02[c], r02 = d02[c] - d01[c], r03 = d01[c] - d03[c];
    float r10 = d10[c] - d12[c], r11 = d11[c] + d12[c], r12 = d12[c] - d11[c], r13 = d11[c] - d13[c];
    float r20 = d20[c] - d22[c], r21 = d21[c] + d22[c], r22 = d22[c] - d21[c], r23 = d21[c] - d23[c];
    float r30 = d30[c] - d32[c], r31 = d31[c] + d32[c], r32 = d32[c] - d31[c], r33 = d31[c] - d33[c];
    v[0 * vs + c] = r00 - r20, v[1 * vs + c] = r01 - r21, v[2 * vs + c] = r02 - r22, v[3 * vs + c] = r03 - r23;
    v[4 * vs + c] = r10 + r20, v[5 * vs + c] = r11 + r21, v[6 * vs + c] = r12 + r22, v[7 * vs + c] = r13 + r23;
    v[8 * vs + c] = r20 - r10, v[9 * vs + c] = r21 - r11, v[10 * vs + c] = r22 - r12, v[11 * vs + c] = r23 - r13;
    v[12 * vs + c] = r10 - r30, v[13 * vs + c] = r11 - r31, v[14 * vs + c] = r12 - r32, v[15 * vs + c] = r13 - r33;
  }
}

/* Output tile t = A^T M A + bias (= or += per accumulate), M = m[xi] row
 * `row`, A^T = [1 1 1 0; 0 1 -1 -1]. */
VECTOR_CLONES static void output_transform_f2(const Plan *p, float *out, const float *bias, int accumulate, size_t t,
                                           size_t row) {
  const int cout = p->cout;
  const size_t ms = p->cap * cout;
  long at[4];
  float *o[4];
  tile_pixels(p, t, 2, 0, at);
  for (int k = 0; k < 4; k++) o[k] = at[k] < 0 ? p->trash : out + (size_t)at[k] * cout;
  float *o00 = o[0], *o01 = o[1], *o10 = o[2], *o11 = o[3];
  const float *m = p->m + row * cout, *b = bias ? bias : p->zero;
  /* One loop per store kind (ASSIGN is = or +=): a branch inside the loop
   * would keep it from vectorizing. */
#define OUTPUT_TRANSFORM_LOOP(ASSIGN)                                                                     \
  CHANNELS_INDEPENDENT                                                                                    \
  for (int c = 0; c < cout; c++) {                                                                        \
    /* s{r}{b} = (A^T M)[r][b] */                                                                         \
    float m0 = m[0 * ms + c], m1 = m[1 * ms + c], m2 = m[2 * ms + c], m3 = m[3 * ms + c];                 \
    float m4 = m[4 * ms + c], m5 = m[5 * ms + c], m6 = m[6 * ms + c], m7 = m[7 * ms + c];                 \
    float m8 = m[8 * ms + c], m9 = m[9 * ms + c], m10 = m[10 * ms + c], m11 = m[11 * ms + c];             \
    float m12 = m[12 * ms + c], m13 = m[13 * ms + c], m14 = m[14 * ms + c], m15 = m[15 * ms + c];         \
    float s00 = m0 + m4 + m8, s01 = m1 + m5 + m9, s02 = m2 + m6 + m10, s03 = m3 + m7 + m11;               \
    float s10 = m4 - m8 - m12, s11 = m5 - m9 - m13, s12 = m6 - m10 - m14, s13 = m7 - m11 - m15;           \
    o00[c] ASSIGN s00 + s01 + s02 + b[c], o01[c] ASSIGN s01 - s02 - s03 + b[c];                           \
    o10[c] ASSIGN s10 + s11 + s12 + b[c], o11[c] ASSIGN s11 - s12 - s13 + b[c];                           \
  }
  if (accumulate) {
    OUTPUT_TRANSFORM_LOOP(+=)
  } else {
    OUTPUT_TRANSFORM_LOOP(=)
  }
#undef OUTPUT_TRANSFORM_LOOP
}

/* m[xi] row `row` = A dY A^T, dY = the 2x2 dout pixels of tile t (0 where the
 * tile is partial), A = [1 0; 1 1; 1 -1; 0 -1]. */
VECTOR_CLONES static void dout_transform_f2(const Plan *p, const float *dout, size_t t, size_t row) {
  const int cout = p->cout;
  const size_t ms = p->cap * cout;
  long at[4];
  const float *y[4];
  tile_pixels(p, t, 2, 0, at);
  for (int k = 0; k < 4; k++) y[k] = at[k] < 0 ? p->zero : dout + (size_t)at[k] * cout;
  const float *y00 = y[0], *y01 = y[1], *y10 = y[2], *y11 = y[3];
  float *m = p->m + row * cout;
  CHANNELS_INDEPENDENT
  for (int c = 0; c < cout; c++) {
    /* e{a}{s} = (A dY)[a][s] */
    float e00 = y00[c], e01 = y01[c], e10 = y00[c] + y10[c], e11 = y01[c] + y11[c];
    float e20 = y00[c] - y10[c], e21 = y01[c] - y11[c], e30 = -y10[c], e31 = -y11[c];
    m[0 * ms + c] = e00, m[1 * ms + c] = e00 + e01, m[2 * ms + c] = e00 - e01, m[3 * ms + c] = -e01;
    m[4 * ms + c] = e10, m[5 * ms + c] = e10 + e11, m[6 * ms + c] = e10 - e11, m[7 * ms + c] = -e11;
    m[8 * ms + c] = e20, m[9 * ms + c] = e20 + e21, m[10 * ms + c] = e20 - e21, m[11 * ms + c] = -e21;
    m[12 * ms + c] = e30, m[13 * ms + c] = e30 + e31, m[14 * ms + c] = e30 - e31, m[15 * ms + c] = -e31;
  }
}

/* din patch of tile t += B dV B^T, dV = v[xi] row `row`; padding pixels go
 * to the trash vector. */
VECTOR_CLONES static void din_transform_add_f2(const Plan *p, float *din, size_t t, size_t row) {
  const int cin = p->cin;
  const size_t vs = p->cap * cin;
  long at[16];
  float *d[16];
  tile_pixels(p, t, 4, -1, at);
  for (int k = 0; k < 16; k++) d[k] = at[k] < 0 ? p->trash : din + (size_t)at[k] * cin;
  float *d00 = d[0], *d01 = d[1], *d02 = d[2], *d03 = d[3], *d10 = d[4], *d11 = d[5], *d12 = d[6], *d13 = d[7],
        *d20 = d[8], *d21 = d[9], *d22 = d[10], *d23 = d[11], *d30 = d[12], *d31 = d[13], *d32 = d[14], *d33 = d[15];
  const float *v = p->v + row * cin;
  CHANNELS_INDEPENDENT
  for (int c = 0; c < cin; c++) {
    /* u{a}{q} = (dV B^T)[a][q] */
    float v0 = v[0 * vs + c], v1 = v[1 * vs + c], v2 = v[2 * vs + c], v3 = v[3 * vs + c];
    float u00 = v0, u01 = v1 - v2 + v3, u02 = v1 + v2 - v0, u03 = -v3;
    v0 = v[4 * vs + c], v1 = v[5 * vs + c], v2 = v[6 * vs + c], v3 = v[7 * vs + c];
    float u10 = v0, u11 = v1 - v2 + v3, u12 = v1 + v2 - v0, u13 = -v3;
    v0 = v[8 * vs + c], v1 = v[9 * vs + c], v2 = v[10 * vs + c], v3 = v[11 * vs + c];
    float u20 = v0, u21 = v1 - v2 + v3, u22 = v1 + v2 - v0, u23 = -v3;
    v0 = v[12 * vs + c], v1 = v[13 * vs + c], v2 = v[14 * vs + c], v3 = v[15 * vs + c];
    float u30 = v0, u31 = v1 - v2 + v3, u32 = v1 + v2 - v0, u33 = -v3;
    d00[c] += u00, d01[c] += u01, d02[c] += u02, d03[c] += u03;
    d10[c] += u10 - u20 + u30, d11[c] += u11 - u21 + u31, d12[c] += u12 - u22 + u32, d13[c] += u13 - u23 + u33;
    d20[c] += u10 + u20 - u00, d21[c] += u11 + u21 - u01, d22[c] += u12 + u22 - u02, d23[c] += u13 + u23 - u03;
    d30[c] -= u30, d31[c] -= u31, d32[c] -= u32, d33[c] -= u33;
  }
}

/* ---- F(4x4,3x3) ----------------------------------------------------------*/
/* The 2-D transforms are a 1-D transform along the rows of a tile into an
 * L1 scratch [positions][F4_BLOCK channels], then along its columns. The
 * interpolation points are 0, 1, -1, 1/2, -2 and infinity: in float32 they
 * gave less than half the error of Lavin & Gray's 0, +-1, +-2
 * (arXiv:1509.09308) on 256-channel tiles (max 4.3e-6 vs 9.8e-6 of the
 * output range, rms 2.2e-6 vs 3.4e-6; tests/tools/winograd_points.py).
 * With them (Toom-Cook, computed exactly by that script):
 *   B^T = [1 -3/2 -2 3/2 1 0;  0 -1 1/2 5/2 1 0;  0 1 -5/2 1/2 1 0;
 *          0 -2 -1 2 1 0;      0 1/2 -1 -1/2 1 0; 0 1 -3/2 -2 3/2 1]
 *   G   = [1 0 0; 1/3 1/3 1/3; -1/3 1/3 -1/3; -16/15 -8/15 -4/15;
 *          1/15 -2/15 4/15; 0 0 1]
 *   A^T = [1 1 1 1 1 0;  0 1 -1 1/2 -2 0;  0 1 1 1/4 4 0;  0 1 -1 1/8 -8 1]
 * The 1-D transforms work on channel vectors (all pointers distinct). */
#define F4_BLOCK 32

/* o = B^T d (6 -> 6) */
static inline void bt6(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                       float *restrict o4, float *restrict o5, const float *restrict d0, const float *restrict d1,
                       const float *restrict d2, const float *restrict d3, const float *restrict d4,
                       const float *restrict d5, int len) {
  for (int c = 0; c < len; c++) {
    o0[c] = d0[c] - 1.5f * d1[c] - 2.0f * d2[c] + 1.5f * d3[c] + d4[c];
    o1[c] = 0.5f * d2[c] - d1[c] + 2.5f * d3[c] + d4[c];
    o2[c] = d1[c] - 2.5f * d2[c] + 0.5f * d3[c] + d4[c];
    o3[c] = 2.0f * (d3[c] - d1[c]) - d2[c] + d4[c];
    o4[c] = 0.5f * (d1[c] - d3[c]) - d2[c] + d4[c];
    o5[c] = d1[c] - 1.5f * d2[c] - 2.0f * d3[c] + 1.5f * d4[c] + d5[c];
  }
}
/* o = B v (6 -> 6), the adjoint of bt6 */
static inline void b6(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                      float *restrict o4, float *restrict o5, const float *restrict v0, const float *restrict v1,
                      const float *restrict v2, const float *restrict v3, const float *restrict v4,
                      const float *restrict v5, int len) {
  for (int c = 0; c < len; c++) {
    o0[c] = v0[c];
    o1[c] = v2[c] - v1[c] - 1.5f * v0[c] - 2.0f * v3[c] + 0.5f * v4[c] + v5[c];
    o2[c] = 0.5f * v1[c] - 2.0f * v0[c] - 2.5f * v2[c] - v3[c] - v4[c] - 1.5f * v5[c];
    o3[c] = 1.5f * v0[c] + 2.5f * v1[c] + 0.5f * v2[c] + 2.0f * v3[c] - 0.5f * v4[c] - 2.0f * v5[c];
    o4[c] = v0[c] + v1[c] + v2[c] + v3[c] + v4[c] + 1.5f * v5[c];
    o5[c] = v5[c];
  }
}
/* o = A^T m (6 -> 4) */
static inline void at4(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                       const float *restrict m0, const float *restrict m1, const float *restrict m2,
                       const float *restrict m3, const float *restrict m4, const float *restrict m5, int len) {
  for (int c = 0; c < len; c++) {
    float s12 = m1[c] + m2[c], d12 = m1[c] - m2[c];
    o0[c] = m0[c] + s12 + m3[c] + m4[c];
    o1[c] = d12 + 0.5f * m3[c] - 2.0f * m4[c];
    o2[c] = s12 + 0.25f * m3[c] + 4.0f * m4[c];
    o3[c] = d12 + 0.125f * m3[c] - 8.0f * m4[c] + m5[c];
  }
}
/* o = A y (4 -> 6), the adjoint of at4 */
static inline void a6(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                      float *restrict o4, float *restrict o5, const float *restrict y0, const float *restrict y1,
                      const float *restrict y2, const float *restrict y3, int len) {
  for (int c = 0; c < len; c++) {
    float s02 = y0[c] + y2[c], s13 = y1[c] + y3[c];
    o0[c] = y0[c];
    o1[c] = s02 + s13;
    o2[c] = s02 - s13;
    o3[c] = y0[c] + 0.5f * y1[c] + 0.25f * y2[c] + 0.125f * y3[c];
    o4[c] = y0[c] - 2.0f * y1[c] + 4.0f * y2[c] - 8.0f * y3[c];
    o5[c] = y3[c];
  }
}
/* o = G g (3 -> 6) */
static inline void g6(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                      float *restrict o4, float *restrict o5, const float *restrict g0, const float *restrict g1,
                      const float *restrict g2, int len) {
  for (int c = 0; c < len; c++) {
    float s02 = g0[c] + g2[c];
    o0[c] = g0[c];
    o1[c] = (s02 + g1[c]) / 3.0f;
    o2[c] = (g1[c] - s02) / 3.0f;
    o3[c] = -(16.0f * g0[c] + 8.0f * g1[c] + 4.0f * g2[c]) / 15.0f;
    o4[c] = (g0[c] - 2.0f * g1[c] + 4.0f * g2[c]) / 15.0f;
    o5[c] = g2[c];
  }
}
/* o = G^T d (6 -> 3), the adjoint of g6 */
static inline void gt3(float *restrict o0, float *restrict o1, float *restrict o2, const float *restrict d0,
                       const float *restrict d1, const float *restrict d2, const float *restrict d3,
                       const float *restrict d4, const float *restrict d5, int len) {
  for (int c = 0; c < len; c++) {
    o0[c] = d0[c] + (d1[c] - d2[c]) / 3.0f + (d4[c] - 16.0f * d3[c]) / 15.0f;
    o1[c] = (d1[c] + d2[c]) / 3.0f - (8.0f * d3[c] + 2.0f * d4[c]) / 15.0f;
    o2[c] = (d1[c] - d2[c]) / 3.0f + (4.0f * d4[c] - 4.0f * d3[c]) / 15.0f + d5[c];
  }
}

/* u[xi] [cin, cout] = (G g G^T)[a][b], xi = 6a+b, g = kernel (3,3,cin,cout). */
VECTOR_CLONES static void kernel_transform_f4(float *restrict u, const float *restrict kernel, int cin, int cout) {
  const size_t plane = (size_t)cin * cout;
  float t[18][F4_BLOCK]; /* t[6i+b] = (g G^T)[i][b] */
  for (size_t e0 = 0; e0 < plane; e0 += F4_BLOCK) {
    int len = plane - e0 < F4_BLOCK ? (int)(plane - e0) : F4_BLOCK;
    const float *g = kernel + e0;
    for (int i = 0; i < 3; i++)
      g6(t[6 * i], t[6 * i + 1], t[6 * i + 2], t[6 * i + 3], t[6 * i + 4], t[6 * i + 5], g + (3 * i) * plane,
         g + (3 * i + 1) * plane, g + (3 * i + 2) * plane, len);
    float *o = u + e0;
    for (int b = 0; b < 6; b++)
      g6(o + b * plane, o + (6 + b) * plane, o + (12 + b) * plane, o + (18 + b) * plane, o + (24 + b) * plane,
         o + (30 + b) * plane, t[b], t[6 + b], t[12 + b], len);
  }
}

/* dkernel (3,3,cin,cout) += G^T du G */
VECTOR_CLONES static void kernel_gradient_add_f4(float *restrict dkernel, const float *restrict du, int cin,
                                                 int cout) {
  const size_t plane = (size_t)cin * cout;
  float t[18][F4_BLOCK], r[3][F4_BLOCK]; /* t[3a+j] = (du G)[a][j] */
  for (size_t e0 = 0; e0 < plane; e0 += F4_BLOCK) {
    int len = plane - e0 < F4_BLOCK ? (int)(plane - e0) : F4_BLOCK;
    const float *d = du + e0;
    for (int a = 0; a < 6; a++)
      gt3(t[3 * a], t[3 * a + 1], t[3 * a + 2], d + (6 * a) * plane, d + (6 * a + 1) * plane,
          d + (6 * a + 2) * plane, d + (6 * a + 3) * plane, d + (6 * a + 4) * plane, d + (6 * a + 5) * plane, len);
    for (int j = 0; j < 3; j++) {
      gt3(r[0], r[1], r[2], t[j], t[3 + j], t[6 + j], t[9 + j], t[12 + j], t[15 + j], len);
      for (int i = 0; i < 3; i++) {
        float *dst = dkernel + (size_t)(i * 3 + j) * plane + e0;
        for (int c = 0; c < len; c++) dst[c] += r[i][c];
      }
    }
  }
}

/* v[xi] row `row` = B^T d B for the 6x6 input patch d of tile t. */
VECTOR_CLONES static void input_transform_f4(const Plan *p, const float *in, size_t t, size_t row) {
  const int cin = p->cin;
  const size_t vs = p->cap * cin;
  long at[36];
  const float *d[36];
  float s[36][F4_BLOCK]; /* s[6i+b] = (d B)[i][b] */
  tile_pixels(p, t, 6, -1, at);
  for (int k = 0; k < 36; k++) d[k] = at[k] < 0 ? p->zero : in + (size_t)at[k] * cin;
  float *v = p->v + row * cin;
  for (int c0 = 0; c0 < cin; c0 += F4_BLOCK) {
    int len = cin - c0 < F4_BLOCK ? cin - c0 : F4_BLOCK;
    for (int i = 0; i < 6; i++) {
      const float *const *r = d + 6 * i;
      bt6(s[6 * i], s[6 * i + 1], s[6 * i + 2], s[6 * i + 3], s[6 * i + 4], s[6 * i + 5], r[0] + c0, r[1] + c0,
          r[2] + c0, r[3] + c0, r[4] + c0, r[5] + c0, len);
    }
    for (int b = 0; b < 6; b++) {
      float *o = v + b * vs + c0;
      bt6(o, o + 6 * vs, o + 12 * vs, o + 18 * vs, o + 24 * vs, o + 30 * vs, s[b], s[6 + b], s[12 + b], s[18 + b],
          s[24 + b], s[30 + b], len);
    }
  }
}

/* Output tile t = A^T M A + bias (= or += per accumulate), M = m[xi] row `row`. */
VECTOR_CLONES static void output_transform_f4(const Plan *p, float *out, const float *bias, int accumulate, size_t t,
                                              size_t row) {
  const int cout = p->cout;
  const size_t ms = p->cap * cout;
  long at[16];
  float *o[16];
  float s[24][F4_BLOCK], y[16][F4_BLOCK]; /* s[4a+q] = (M A)[a][q]; y[4r+q] = Y[r][q] */
  tile_pixels(p, t, 4, 0, at);
  for (int k = 0; k < 16; k++) o[k] = at[k] < 0 ? p->trash : out + (size_t)at[k] * cout;
  const float *m = p->m + row * cout, *b = bias ? bias : p->zero;
  for (int c0 = 0; c0 < cout; c0 += F4_BLOCK) {
    int len = cout - c0 < F4_BLOCK ? cout - c0 : F4_BLOCK;
    for (int a = 0; a < 6; a++) {
      const float *r = m + 6 * a * ms + c0;
      at4(s[4 * a], s[4 * a + 1], s[4 * a + 2], s[4 * a + 3], r, r + ms, r + 2 * ms, r + 3 * ms, r + 4 * ms,
          r + 5 * ms, len);
    }
    for (int q = 0; q < 4; q++)
      at4(y[q], y[4 + q], y[8 + q], y[12 + q], s[q], s[4 + q], s[8 + q], s[12 + q], s[16 + q], s[20 + q], len);
    for (int k = 0; k < 16; k++) {
      float *dst = o[k] + c0;
      const float *src = y[k], *bb = b + c0;
      if (accumulate)
        for (int c = 0; c < len; c++) dst[c] += src[c] + bb[c];
      else
        for (int c = 0; c < len; c++) dst[c] = src[c] + bb[c];
    }
  }
}

/* m[xi] row `row` = A dY A^T, dY = the 4x4 dout pixels of tile t (0 where
 * the tile is partial). */
VECTOR_CLONES static void dout_transform_f4(const Plan *p, const float *dout, size_t t, size_t row) {
  const int cout = p->cout;
  const size_t ms = p->cap * cout;
  long at[16];
  const float *y[16];
  float e[24][F4_BLOCK]; /* e[4a+q] = (A dY)[a][q] */
  tile_pixels(p, t, 4, 0, at);
  for (int k = 0; k < 16; k++) y[k] = at[k] < 0 ? p->zero : dout + (size_t)at[k] * cout;
  float *m = p->m + row * cout;
  for (int c0 = 0; c0 < cout; c0 += F4_BLOCK) {
    int len = cout - c0 < F4_BLOCK ? cout - c0 : F4_BLOCK;
    for (int q = 0; q < 4; q++)
      a6(e[q], e[4 + q], e[8 + q], e[12 + q], e[16 + q], e[20 + q], y[q] + c0, y[4 + q] + c0, y[8 + q] + c0,
         y[12 + q] + c0, len);
    for (int a = 0; a < 6; a++) {
      float *o = m + 6 * a * ms + c0;
      a6(o, o + ms, o + 2 * ms, o + 3 * ms, o + 4 * ms, o + 5 * ms, e[4 * a], e[4 * a + 1], e[4 * a + 2],
         e[4 * a + 3], len);
    }
  }
}

/* din patch of tile t += B dV B^T, dV = v[xi] row `row`; padding pixels go
 * to the trash vector. */
VECTOR_CLONES static void din_transform_add_f4(const Plan *p, float *din, size_t t, size_t row) {
  const int cin = p->cin;
  const size_t vs = p->cap * cin;
  long at[36];
  float *d[36];
  float u[36][F4_BLOCK], z[36][F4_BLOCK]; /* u[6a+q] = (dV B^T)[a][q]; z[6p+q] = (B dV B^T)[p][q] */
  tile_pixels(p, t, 6, -1, at);
  for (int k = 0; k < 36; k++) d[k] = at[k] < 0 ? p->trash : din + (size_t)at[k] * cin;
  const float *v = p->v + row * cin;
  for (int c0 = 0; c0 < cin; c0 += F4_BLOCK) {
    int len = cin - c0 < F4_BLOCK ? cin - c0 : F4_BLOCK;
    for (int a = 0; a < 6; a++) {
      const float *r = v + 6 * a * vs + c0;
      b6(u[6 * a], u[6 * a + 1], u[6 * a + 2], u[6 * a + 3], u[6 * a + 4], u[6 * a + 5], r, r + vs, r + 2 * vs,
         r + 3 * vs, r + 4 * vs, r + 5 * vs, len);
    }
    for (int q = 0; q < 6; q++)
      b6(z[q], z[6 + q], z[12 + q], z[18 + q], z[24 + q], z[30 + q], u[q], u[6 + q], u[12 + q], u[18 + q],
         u[24 + q], u[30 + q], len);
    for (int k = 0; k < 36; k++) {
      float *dst = d[k] + c0;
      const float *src = z[k];
      for (int c = 0; c < len; c++) dst[c] += src[c];
    }
  }
}

/* ---- per tile size ---------------------------------------------------------*/
static void kernel_transform(const Plan *p, const float *kernel) {
  (p->side == 2 ? kernel_transform_f2 : kernel_transform_f4)(p->u, kernel, p->cin, p->cout);
}
static void kernel_gradient_add(const Plan *p, float *dkernel) {
  (p->side == 2 ? kernel_gradient_add_f2 : kernel_gradient_add_f4)(dkernel, p->du, p->cin, p->cout);
}
static void input_transform(const Plan *p, const float *in, size_t t, size_t row) {
  (p->side == 2 ? input_transform_f2 : input_transform_f4)(p, in, t, row);
}
static void output_transform(const Plan *p, float *out, const float *bias, int accumulate, size_t t, size_t row) {
  (p->side == 2 ? output_transform_f2 : output_transform_f4)(p, out, bias, accumulate, t, row);
}
static void dout_transform(const Plan *p, const float *dout, size_t t, size_t row) {
  (p->side == 2 ? dout_transform_f2 : dout_transform_f4)(p, dout, t, row);
}
static void din_transform_add(const Plan *p, float *din, size_t t, size_t row) {
  (p->side == 2 ? din_transform_add_f2 : din_transform_add_f4)(p, din, t, row);
}

/* Chunking that keeps results independent of an image's place in the batch
 * (and so of the rank count): OpenBLAS's last bits depend on a GEMM's height
 * and row offset, so the forward and input-gradient GEMMs run once per image
 * (tile_gemms), and chunks hold whole images when one fits (chunk_rows),
 * else pieces of one image starting at its first tile. Every image is thus
 * computed by the same sequence of GEMM shapes. The kernel-gradient GEMMs sum
 * over the batch anyway and stay one per chunk. */
static size_t chunk_rows(const Plan *p, size_t t0) {
  size_t per_image = (size_t)p->th * p->tw, left = p->tiles - t0;
  size_t rows = p->cap >= per_image ? p->cap / per_image * per_image : p->cap;
  if (p->cap < per_image && rows > per_image - t0 % per_image) rows = per_image - t0 % per_image;
  return rows < left ? rows : left;
}

/* dst[xi] [rows, dst_cols] = src[xi] [rows, src_cols] x U[xi] [src_cols,
 * dst_cols] for the (m+2)^2 tile elements of chunk [t0, t0 + rows), one GEMM
 * per image segment (see above), or one for the whole chunk where the GEMMs
 * are row-independent (gemm_rows_independent: the same bits). U holds the
 * kernel transform as [cin, cout] planes in the forward pass and as
 * [cout, cin] planes (Ut) for the input gradient: both GEMMs are
 * NoTrans x NoTrans, which OpenBLAS runs 1.3-1.6x
 * faster than NoTrans x Trans on these short GEMMs (25-32 rows, 32-256
 * channels, one thread). */
static void tile_gemms(const Plan *p, size_t t0, size_t rows, const float *src, int src_cols, float *dst,
                       int dst_cols) {
  const size_t per_image = (size_t)p->th * p->tw;
  const int whole_chunk = gemm_rows_independent(); /* the same bits as per image, in one GEMM */
  for (size_t s0 = 0, seg; s0 < rows; s0 += seg) {
    size_t to_image_end = per_image - (t0 + s0) % per_image;
    seg = whole_chunk || rows - s0 < to_image_end ? rows - s0 : to_image_end;
    for (int xi = 0; xi < p->xis; xi++)
      gemm_nn((int)seg, dst_cols, src_cols, src + (xi * p->cap + s0) * src_cols, src_cols,
              p->u + (size_t)xi * p->cin * p->cout, dst_cols, 0, dst + (xi * p->cap + s0) * dst_cols, dst_cols);
  }
}

static void check_args(int n, int h, int w, int cin, int cout, const char *who) {
  if (n < 0 || h < 1 || w < 1 || cin < 1 || cout < 1)
    unet_fatal("%s: invalid shape %dx%dx%dx%d -> %d channels", who, n, h, w, cin, cout);
}

void winograd_conv3x3_forward(int tile, float *out, const float *in, const float *kernel, const float *bias, int n,
                              int h, int w, int cin, int cout, int accumulate, float *ws, size_t ws_floats) {
  check_args(n, h, w, cin, cout, "winograd_conv3x3_forward");
  if (n == 0) return;
  Plan p = plan_workspace(tile, cin, cout, n, h, w, ws, ws_floats, "winograd_conv3x3_forward");
  kernel_transform(&p, kernel);
  for (size_t t0 = 0, rows; t0 < p.tiles; t0 += rows) {
    rows = chunk_rows(&p, t0);
    for (size_t r = 0; r < rows; r++) input_transform(&p, in, t0 + r, r);
    /* M[xi] [rows, cout] = V[xi] [rows, cin] x U[xi] [cin, cout] */
    tile_gemms(&p, t0, rows, p.v, cin, p.m, cout);
    for (size_t r = 0; r < rows; r++) output_transform(&p, out, bias, accumulate, t0 + r, r);
  }
}

void winograd_conv3x3_backward(int tile, float *din, float *dkernel, const float *dout, const float *in,
                               const float *kernel, int n, int h, int w, int cin, int cout, float *ws,
                               size_t ws_floats) {
  check_args(n, h, w, cin, cout, "winograd_conv3x3_backward");
  if (n == 0 || (!din && !dkernel)) return;
  Plan p = plan_workspace(tile, cin, cout, n, h, w, ws, ws_floats, "winograd_conv3x3_backward");
  if (din) {
    /* Ut = the transform of the kernel with each tap's [cin, cout] plane
     * transposed (the transform is elementwise over a plane), staged in dU,
     * which the first chunk's kernel-gradient GEMMs overwrite. */
    for (int tap = 0; tap < 9; tap++)
      for (int ci = 0; ci < cin; ci++)
        for (int co = 0; co < cout; co++)
          p.du[((size_t)tap * cout + co) * cin + ci] = kernel[((size_t)tap * cin + ci) * cout + co];
    kernel_transform(&p, p.du);
  }
  for (size_t t0 = 0, rows; t0 < p.tiles; t0 += rows) {
    rows = chunk_rows(&p, t0);
    for (size_t r = 0; r < rows; r++) dout_transform(&p, dout, t0 + r, r);
    if (dkernel) {
      for (size_t r = 0; r < rows; r++) input_transform(&p, in, t0 + r, r);
      /* dU[xi] [cin, cout] (+)= V[xi]^T [cin, rows] x dM[xi] [rows, cout] */
      for (int xi = 0; xi < p.xis; xi++)
        gemm_tn(cin, cout, (int)rows, p.v + xi * p.cap * cin, cin, p.m + xi * p.cap * cout, cout, t0 > 0,
                p.du + (size_t)xi * cin * cout, cout);
    }
    if (din) {
      /* dV[xi] [rows, cin] = dM[xi] [rows, cout] x Ut[xi] [cout, cin], over V */
      tile_gemms(&p, t0, rows, p.m, cout, p.v, cin);
      for (size_t r = 0; r < rows; r++) din_transform_add(&p, din, t0 + r, r);
    }
  }
  if (dkernel) kernel_gradient_add(&p, dkernel);
}
