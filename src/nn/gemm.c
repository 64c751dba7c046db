/* gemm.c - the convolutions' GEMMs (gemm.h): own AVX-512 kernels where the
 * CPU has AVX-512F, OpenBLAS elsewhere.
 *
 * Why own kernels: on AVX-512 CPUs that an OpenBLAS build does not know (or
 * where OPENBLAS_CORETYPE pins an AVX2 core, as on machines where older
 * OpenBLAS builds misbehave) sgemm runs its AVX2 kernels at half the
 * machine's width; and OpenBLAS packs B on every call, which the per-image
 * GEMMs (25-400 rows) pay again and again. These kernels read A and B in
 * place (no packing): C is cut into tiles of R rows x V vectors of 16
 * columns, held in R*V zmm accumulators (at most 24 of the 32 registers)
 * while k runs over a block of GEMM_K_BLOCK:
 *   acc[r][v] = sum over k in the block, in order, of a(r, k) * B[k][16v..16v+15]
 *   C tile    = acc (first block, no accumulate) or C tile + acc
 * with a(r, k) = A[r*rs + k*ks]: rs = lda, ks = 1 for NN; rs = 1, ks = lda
 * for TN (A^T). Rows left over below R go one at a time through the R = 1
 * tile, which runs the same chain: every element of C gets the same
 * operations in the same order wherever it sits, so results do not depend
 * on M or on the row offset. The last vector of a panel is loaded and stored
 * under a mask when N is not a multiple of 16.
 * Loop order: K blocks, then 16V-column panels of B (KB x 64 floats, 64 KiB,
 * kept in L2 while every row block of A passes), then row blocks. */
#include "gemm.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "unet/util.h"

void gemm_nn_openblas(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                      int ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, accumulate ? 1.0f : 0.0f, C,
              ldc);
}

void gemm_tn_openblas(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                      int ldc) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, accumulate ? 1.0f : 0.0f, C,
              ldc);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(UNET_NO_AVX512)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define UNROLL _Pragma("GCC unroll 8")

/* C[r][16v..] (+)= sum_k a(r,k) B[k][16v..] for r < R, v < V over kc terms.
 * R and V are constants at every call, so the loops unroll and acc stays in
 * registers. The last vector uses `last` as its column mask. */
static inline __attribute__((always_inline)) AVX512 void tile(const int R, const int V, int kc, const float *a,
                                                              long rs, long ks, const float *b, long ldb, float *c,
                                                              long ldc, int add, __mmask16 last) {
  __m512 acc[12][4]; /* fixed size: R <= 12, V <= 4; unrolled, it lives in registers */
  UNROLL for (int r = 0; r < R; r++) UNROLL for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
  for (int k = 0; k < kc; k++) {
    const float *bk = b + k * ldb, *ak = a + k * ks;
    __m512 bv[4];
    UNROLL for (int v = 0; v < V; v++) bv[v] =
        v < V - 1 ? _mm512_loadu_ps(bk + 16 * v) : _mm512_maskz_loadu_ps(last, bk + 16 * v);
    UNROLL for (int r = 0; r < R; r++) {
      __m512 av = _mm512_set1_ps(ak[r * rs]);
      UNROLL for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  UNROLL for (int r = 0; r < R; r++) {
    float *cr = c + r * ldc;
    UNROLL for (int v = 0; v < V; v++) {
      __mmask16 m = v < V - 1 ? (__mmask16)0xFFFF : last;
      __m512 out = acc[r][v];
      if (add) out = _mm512_add_ps(_mm512_maskz_loadu_ps(m, cr + 16 * v), out);
      _mm512_mask_storeu_ps(cr + 16 * v, m, out);
    }
  }
}

/* All M rows of one panel of V vectors: R rows at a time, then single rows. */
#define PANEL(R, V)                                                                                                \
  AVX512 static void panel_##V(int M, int kc, const float *a, long rs, long ks, const float *b, long ldb, float *c, \
                               long ldc, int add, __mmask16 last) {                                                \
    int i = 0;                                                                                                     \
    for (; i + R <= M; i += R) tile(R, V, kc, a + i * rs, rs, ks, b, ldb, c + i * ldc, ldc, add, last);           \
    for (; i < M; i++) tile(1, V, kc, a + i * rs, rs, ks, b, ldb, c + i * ldc, ldc, add, last);                   \
  }
/* Rows per tile, measured (one thread, 25-6400 rows, 16-256 columns): 6 x 4
 * vectors and 8 x 3 fill 24 accumulators; 12 rows x 2 vectors ran at half
 * the speed of 8 x 2 (the 12 row offsets no longer fit the integer
 * registers), so 2 and 1 vectors also take 8 rows. */
PANEL(6, 4)
PANEL(8, 3)
PANEL(8, 2)
PANEL(8, 1)

AVX512 static void gemm_avx512(int M, int N, int K, const float *A, long rs, long ks, const float *B, int ldb,
                               int accumulate, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
    return;
  }
  for (int k0 = 0; k0 < K; k0 += GEMM_K_BLOCK) {
    const int kc = K - k0 < GEMM_K_BLOCK ? K - k0 : GEMM_K_BLOCK, add = accumulate || k0 > 0;
    const float *a = A + k0 * ks, *b = B + (long)k0 * ldb;
    for (int j0 = 0; j0 < N; j0 += 64) {
      const int cols = N - j0 < 64 ? N - j0 : 64, V = (cols + 15) / 16;
      const __mmask16 last = cols % 16 ? (__mmask16)((1u << (cols % 16)) - 1) : (__mmask16)0xFFFF;
      switch (V) {
        case 4: panel_4(M, kc, a, rs, ks, b + j0, ldb, C + j0, ldc, add, last); break;
        case 3: panel_3(M, kc, a, rs, ks, b + j0, ldb, C + j0, ldc, add, last); break;
        case 2: panel_2(M, kc, a, rs, ks, b + j0, ldb, C + j0, ldc, add, last); break;
        default: panel_1(M, kc, a, rs, ks, b + j0, ldb, C + j0, ldc, add, last); break;
      }
    }
  }
}

int gemm_have_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

void gemm_nn_avx512(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                    int ldc) {
  gemm_avx512(M, N, K, A, lda, 1, B, ldb, accumulate, C, ldc);
}

void gemm_tn_avx512(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                    int ldc) {
  gemm_avx512(M, N, K, A, 1, lda, B, ldb, accumulate, C, ldc);
}

#else /* no x86-64 GCC/clang: OpenBLAS only */
int gemm_have_avx512(void) { return 0; }
void gemm_nn_avx512(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                    int ldc) {
  unet_fatal("gemm_nn_avx512: this build has no AVX-512 kernels (%dx%dx%d)", M, N, K);
  (void)A, (void)lda, (void)B, (void)ldb, (void)accumulate, (void)C, (void)ldc;
}
void gemm_tn_avx512(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                    int ldc) {
  unet_fatal("gemm_tn_avx512: this build has no AVX-512 kernels (%dx%dx%d)", M, N, K);
  (void)A, (void)lda, (void)B, (void)ldb, (void)accumulate, (void)C, (void)ldc;
}
#endif

/* Chosen once, when the program loads (before any thread starts):
 * UNET_GEMM=openblas forces OpenBLAS, UNET_GEMM=avx512 insists on the own
 * kernels (a fatal error where the CPU lacks AVX-512F), unset or "auto"
 * takes the own kernels where the CPU has AVX-512F. */
typedef void (*GemmFn)(int, int, int, const float *, int, const float *, int, int, float *, int);
static GemmFn g_nn = gemm_nn_openblas, g_tn = gemm_tn_openblas;
static const char *g_backend = "openblas";

__attribute__((constructor)) static void gemm_choose(void) {
  const char *want = getenv("UNET_GEMM");
  int avx512 = gemm_have_avx512();
  if (want && *want && strcmp(want, "auto") && strcmp(want, "openblas") && strcmp(want, "avx512"))
    unet_fatal("UNET_GEMM=%s: expected auto, avx512 or openblas", want);
  if (want && !strcmp(want, "avx512") && !avx512)
    unet_fatal("UNET_GEMM=avx512: this CPU (or this build) has no AVX-512F; use auto or openblas");
  if (want && !strcmp(want, "openblas")) return;
  if (avx512) {
    g_nn = gemm_nn_avx512;
    g_tn = gemm_tn_avx512;
    g_backend = "avx512";
  }
}

void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C, int ldc) {
  g_nn(M, N, K, A, lda, B, ldb, accumulate, C, ldc);
}
void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C, int ldc) {
  g_tn(M, N, K, A, lda, B, ldb, accumulate, C, ldc);
}
const char *gemm_backend(void) { return g_backend; }
int gemm_rows_independent(void) { return g_nn == gemm_nn_avx512; }
