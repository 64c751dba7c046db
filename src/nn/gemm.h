/* gemm.h - private to src/nn: the two single-precision GEMM shapes the
 * convolutions use, row-major, with the operands as the layers hold them.
 *
 *   gemm_nn: C [M, N] = A [M, K] x B [K, N]        (+ C when accumulate)
 *   gemm_tn: C [M, N] = A^T x B, A [K, M], B [K, N] (+ C when accumulate)
 *
 * Where the CPU has AVX-512F (checked at run time), gemm.c computes them
 * itself: every element of C is the same chain of fused multiply-adds over k
 * in order, in fixed blocks of GEMM_K_BLOCK, whatever M, N, the row or the
 * column, so a row's result does not depend on the GEMM's height or on where
 * the row sits in it (an image's result on its place in the batch). Elsewhere
 * (or with UNET_GEMM=openblas in the environment) they call OpenBLAS's
 * cblas_sgemm. Either way they run on the calling thread only when OpenBLAS
 * is set to one thread; the own kernels are single-threaded. */
#ifndef UNET_NN_GEMM_H
#define UNET_NN_GEMM_H

/* k is summed in blocks of this many terms, each block's chain added to C. */
#define GEMM_K_BLOCK 256

void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C, int ldc);
void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C, int ldc);

/* Which implementation runs: "avx512" or "openblas". */
const char *gemm_backend(void);

/* 1 when a row's result depends on nothing but its own data (the own
 * kernels): callers may then multiply many images' rows in one GEMM and
 * still compute every image exactly as alone. 0 for OpenBLAS, whose last
 * bits depend on the GEMM's height and row offset: callers run one GEMM per
 * image there, so that no result depends on the local batch (the rank count). */
int gemm_rows_independent(void);

/* The two implementations, for the tests: *_openblas always calls OpenBLAS;
 * *_avx512 must only be called when gemm_have_avx512() is true. */
int gemm_have_avx512(void);
void gemm_nn_avx512(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                    int ldc);
void gemm_tn_avx512(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                    int ldc);
void gemm_nn_openblas(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                      int ldc);
void gemm_tn_openblas(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate, float *C,
                      int ldc);

#endif
