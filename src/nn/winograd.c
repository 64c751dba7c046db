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
 * Every tile takes the same branch-free path: pixels outside the image read
 * a zero vector and write a trash vector.
 * Workspace: [U 16*cin*cout | dU 16*cin*cout | zeros, trash max(cin,cout)
 *             each | V 16*cap*cin | M 16*cap*cout], V[xi] = V + xi*cap*cin.
 */
#include "winograd.h"

#include <cblas.h>
#include <string.h>

#include "unet/util.h"
#include "vector_clones.h"

/* V + M floats of a chunk: 512K floats (2 MiB). Measured on the U-Net's
 * transposed convs (batch 16, one thread, Zen L2 512 KiB, L3 32 MiB):
 * 512K-1M beat 256K by 10% and 2M by 15-35% on the 40x40 and 80x80 maps. */
#define WINOGRAD_CHUNK_BUDGET_FLOATS ((size_t)1 << 19)
/* ... but at least this many tiles (GEMM rows) when the batch has them: with
 * 512 channels each way 32-tile GEMMs made Winograd slower than im2col. */
#define WINOGRAD_MIN_CHUNK_TILES 128
/* Kernel elements transformed at a time: the 12 x CHANNEL_BLOCK scratch of
 * the kernel transforms stays in L1. */
#define CHANNEL_BLOCK 64

typedef struct {
  int n, h, w, cin, cout;
  int th, tw;          /* tiles per column / row of an image */
  size_t tiles;        /* n * th * tw */
  size_t per_tile;     /* V + M floats of one tile */
  size_t fixed;        /* U, dU, the zero and the trash vectors */
  size_t cap;          /* tiles per chunk */
  float *u, *du, *zero, *trash, *v, *m;
} Plan;

static Plan plan_layout(int cin, int cout, int n, int h, int w) {
  Plan p;
  memset(&p, 0, sizeof p);
  p.n = n, p.h = h, p.w = w, p.cin = cin, p.cout = cout;
  p.th = (h + 1) / 2, p.tw = (w + 1) / 2;
  p.tiles = (size_t)n * p.th * p.tw;
  p.per_tile = (size_t)16 * (cin + cout);
  p.fixed = (size_t)32 * cin * cout + (size_t)2 * (cin > cout ? cin : cout);
  return p;
}

/* Tiles per chunk for the planned workspace: the budget's worth, at least
 * WINOGRAD_MIN_CHUNK_TILES, at most the batch. */
static size_t planned_cap(const Plan *p) {
  size_t cap = WINOGRAD_CHUNK_BUDGET_FLOATS / p->per_tile;
  if (cap < WINOGRAD_MIN_CHUNK_TILES) cap = WINOGRAD_MIN_CHUNK_TILES;
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
  p.trash = p.zero + (cin > cout ? cin : cout);
  p.v = p.trash + (cin > cout ? cin : cout);
  p.m = p.v + (size_t)16 * p.cap * cin;
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
 * starting at offset `start` from (2ty, 2tx): -1 for the 4x4 input patch, 0
 * for the 2x2 output tile. */
static void tile_pixels(const Plan *p, size_t t, int side, int start, long *at) {
  Tile tl = tile_at(p, t);
  for (int k = 0; k < side * side; k++)
    at[k] = pixel_index(p, tl.img, 2 * tl.ty + start + k / side, 2 * tl.tx + start + k % side);
}

/* v[xi] row `row` = B^T d B for the 4x4 input patch d of tile t, where
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. */
VECTOR_CLONES static void input_transform(const Plan *p, const float *in, size_t t, size_t row) {
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
VECTOR_CLONES static void output_transform(const Plan *p, float *out, const float *bias, int accumulate, size_t t,
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
VECTOR_CLONES static void dout_transform(const Plan *p, const float *dout, size_t t, size_t row) {
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
VECTOR_CLONES static void din_transform_add(const Plan *p, float *din, size_t t, size_t row) {
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

/* dst[xi] [rows, dst_cols] = src[xi] [rows, src_cols] x op(U[xi]) for the 16
 * tile elements of chunk [t0, t0 + rows), one GEMM per image segment (see
 * above). U[xi] is [cin, cout]: NoTrans maps cin -> cout, Trans cout -> cin. */
static void tile_gemms(const Plan *p, size_t t0, size_t rows, enum CBLAS_TRANSPOSE trans_u, const float *src,
                       int src_cols, float *dst, int dst_cols) {
  const size_t per_image = (size_t)p->th * p->tw;
  for (size_t s0 = 0, seg; s0 < rows; s0 += seg) {
    size_t to_image_end = per_image - (t0 + s0) % per_image;
    seg = rows - s0 < to_image_end ? rows - s0 : to_image_end;
    for (int xi = 0; xi < 16; xi++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_u, (int)seg, dst_cols, src_cols, 1.0f,
                  src + (xi * p->cap + s0) * src_cols, src_cols, p->u + (size_t)xi * p->cin * p->cout, p->cout, 0.0f,
                  dst + (xi * p->cap + s0) * dst_cols, dst_cols);
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
  for (size_t t0 = 0, rows; t0 < p.tiles; t0 += rows) {
    rows = chunk_rows(&p, t0);
    for (size_t r = 0; r < rows; r++) input_transform(&p, in, t0 + r, r);
    /* M[xi] [rows, cout] = V[xi] [rows, cin] x U[xi] [cin, cout] */
    tile_gemms(&p, t0, rows, CblasNoTrans, p.v, cin, p.m, cout);
    for (size_t r = 0; r < rows; r++) output_transform(&p, out, bias, accumulate, t0 + r, r);
  }
}

void winograd_conv3x3_backward(float *din, float *dkernel, const float *dout, const float *in, const float *kernel,
                               int n, int h, int w, int cin, int cout, float *ws, size_t ws_floats) {
  check_args(n, h, w, cin, cout, "winograd_conv3x3_backward");
  if (n == 0 || (!din && !dkernel)) return;
  Plan p = plan_workspace(cin, cout, n, h, w, ws, ws_floats, "winograd_conv3x3_backward");
  if (din) kernel_transform(p.u, kernel, cin, cout);
  for (size_t t0 = 0, rows; t0 < p.tiles; t0 += rows) {
    rows = chunk_rows(&p, t0);
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
      tile_gemms(&p, t0, rows, CblasTrans, p.m, cout, p.v, cin);
      for (size_t r = 0; r < rows; r++) din_transform_add(&p, din, t0 + r, r);
    }
  }
  if (dkernel) kernel_gradient_add(dkernel, p.du, cin, cout);
}
