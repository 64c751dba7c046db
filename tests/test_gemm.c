/* test_gemm.c - the convolutions' GEMMs (src/nn/gemm.c), both backends:
 *  - NN and TN against a double reference, with and without accumulate, over
 *    shapes that hit every tile and tail: rows 1..13 (tiles of 6 or 8 rows and
 *    single rows), columns 1..260 (masked last vectors, 1-4 vector panels),
 *    K = 0, 1 and past GEMM_K_BLOCK, leading dimensions wider than the
 *    matrices. The bound is the rigorous one for a K-term float dot product,
 *    (K + 2) u sum|a||b| + |C0| u, u = 2^-24; a lost, doubled or misplaced
 *    term is ~ sum/K, far above it at these K.
 *  - the padding between N and ldc and the rows past M are never written;
 *  - own kernels: a row's bits do not depend on the GEMM's height or the
 *    row's offset (each block of rows computed alone equals the tall GEMM
 *    by memcmp): the property that makes batching images rank-independent;
 *  - the backend chosen at load: argv[1] (else UNET_GEMM, else "auto") names
 *    the one expected; "auto" means avx512 exactly where the CPU has AVX-512F. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/nn/gemm.h"
#include "check.h"
#include "unet/rng.h"
#include "unet/util.h"

typedef void (*Gemm)(int, int, int, const float *, int, const float *, int, int, float *, int);

#define SENTINEL 12345.0f

/* One case: C [M, N] (ldc) (+)= op(A) x B, checked against double. */
static void check_case(const char *backend, Gemm fn, int tn, int M, int N, int K, int accumulate, UnetRng *rng) {
  const int lda = (tn ? M : K) + 3, ldb = N + 5, ldc = N + 7;
  const int a_rows = tn ? K : M, b_rows = K;
  float *A = xcalloc((size_t)a_rows * lda + 1, sizeof(float), "A");
  float *B = xcalloc((size_t)b_rows * ldb + 1, sizeof(float), "B");
  float *C = xcalloc((size_t)(M + 2) * ldc, sizeof(float), "C");
  float *C0 = xcalloc((size_t)(M + 2) * ldc, sizeof(float), "C0");
  for (long i = 0; i < (long)a_rows * lda; i++) A[i] = rng_uniform_range(rng, -1, 1);
  for (long i = 0; i < (long)b_rows * ldb; i++) B[i] = rng_uniform_range(rng, -1, 1);
  for (long i = 0; i < (long)(M + 2) * ldc; i++) C0[i] = SENTINEL;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) C0[(size_t)i * ldc + j] = rng_uniform_range(rng, -1, 1);
  memcpy(C, C0, (size_t)(M + 2) * ldc * sizeof(float));
  fn(M, N, K, A, lda, B, ldb, accumulate, C, ldc);
  const double u = 1.0 / (1 << 24);
  double worst = 0;
  int bad = 0, touched = 0;
  for (int i = 0; i < M + 2; i++)
    for (int j = 0; j < ldc; j++) {
      float got = C[(size_t)i * ldc + j];
      if (i >= M || j >= N) {
        if (got != SENTINEL) touched++;
        continue;
      }
      double ref = accumulate ? C0[(size_t)i * ldc + j] : 0, mag = accumulate ? fabs(ref) : 0;
      for (int k = 0; k < K; k++) {
        double a = tn ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k], b = B[(size_t)k * ldb + j];
        ref += a * b;
        mag += fabs(a * b);
      }
      double err = fabs(got - ref), bound = (K + 2) * u * mag + 1e-30;
      if (!(err <= bound)) bad++;
      if (mag > 0 && err / mag > worst) worst = err / mag;
    }
  CHECK_MSG(bad == 0, "%s %s M=%d N=%d K=%d accumulate=%d: %d element(s) past the bound (worst err/sum|ab| %.3g)",
            backend, tn ? "TN" : "NN", M, N, K, accumulate, bad, worst);
  CHECK_MSG(touched == 0, "%s %s M=%d N=%d K=%d: %d element(s) outside C [M, N] written", backend, tn ? "TN" : "NN",
            M, N, K, touched);
  xfree(A);
  xfree(B);
  xfree(C);
  xfree(C0);
}

static void check_backend(const char *name, Gemm nn, Gemm tn) {
  UnetRng rng;
  rng_seed(&rng, 7);
  const int rows[] = {1, 5, 6, 7, 8, 9, 13, 25};
  const int cols[] = {1, 15, 16, 17, 33, 48, 64, 65, 100, 260};
  const int ks[] = {0, 1, 3, 64, GEMM_K_BLOCK + 1, 2 * GEMM_K_BLOCK + 37};
  int cases = 0;
  for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
    for (size_t c = 0; c < sizeof cols / sizeof *cols; c++)
      for (size_t k = 0; k < sizeof ks / sizeof *ks; k++) {
        if (ks[k] > 64 && (rows[r] > 9 || cols[c] > 65)) continue; /* keep the long-K cases few */
        for (int acc = 0; acc < 2; acc++) {
          check_case(name, nn, 0, rows[r], cols[c], ks[k], acc, &rng);
          check_case(name, tn, 1, rows[r], cols[c], ks[k], acc, &rng);
          cases += 2;
        }
      }
  printf("%s: %d NN/TN cases against the double reference\n", name, cases);
}

/* Own kernels: the rows of a tall GEMM, recomputed in blocks at other
 * offsets and heights, are the same bits. */
static void check_height_independent(void) {
  const int M = 53, N = 80, K = 300, splits[] = {1, 5, 6, 8, 25};
  UnetRng rng;
  rng_seed(&rng, 11);
  float *A = xmalloc((size_t)M * K * sizeof(float), "A"), *B = xmalloc((size_t)K * N * sizeof(float), "B");
  float *At = xmalloc((size_t)K * M * sizeof(float), "At");
  float *tall = xmalloc((size_t)M * N * sizeof(float), "C"), *part = xmalloc((size_t)M * N * sizeof(float), "C");
  for (long i = 0; i < (long)M * K; i++) A[i] = rng_uniform_range(&rng, -1, 1);
  for (long i = 0; i < (long)K * N; i++) B[i] = rng_uniform_range(&rng, -1, 1);
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++) At[(size_t)k * M + i] = A[(size_t)i * K + k];
  for (int tn = 0; tn < 2; tn++) {
    if (tn)
      gemm_tn_avx512(M, N, K, At, M, B, N, 0, tall, N);
    else
      gemm_nn_avx512(M, N, K, A, K, B, N, 0, tall, N);
    for (size_t s = 0; s < sizeof splits / sizeof *splits; s++) {
      memset(part, 0, (size_t)M * N * sizeof(float));
      for (int r0 = 0; r0 < M; r0 += splits[s]) {
        int h = M - r0 < splits[s] ? M - r0 : splits[s];
        if (tn)
          gemm_tn_avx512(h, N, K, At + r0, M, B, N, 0, part + (size_t)r0 * N, N);
        else
          gemm_nn_avx512(h, N, K, A + (size_t)r0 * K, K, B, N, 0, part + (size_t)r0 * N, N);
      }
      CHECK_MSG(!memcmp(tall, part, (size_t)M * N * sizeof(float)),
                "own %s kernels: rows computed %d at a time differ from the %d-row GEMM", tn ? "TN" : "NN",
                splits[s], M);
    }
  }
  printf("own kernels: rows in blocks of 1/5/6/8/25 = the 53-row GEMM, bit for bit (NN and TN)\n");
  xfree(A);
  xfree(B);
  xfree(At);
  xfree(tall);
  xfree(part);
}

int main(int argc, char **argv) {
  /* expected: the argument, else what UNET_GEMM asks for (unset = auto) */
  const char *env = getenv("UNET_GEMM");
  const char *expect = argc > 1 ? argv[1] : env && *env ? env : "auto";
  const char *want = strcmp(expect, "auto") ? expect : gemm_have_avx512() ? "avx512" : "openblas";
  CHECK_MSG(!strcmp(gemm_backend(), want), "backend %s, expected %s (argument %s)", gemm_backend(), want, expect);
  printf("backend chosen at load: %s\n", gemm_backend());
  check_backend("openblas", gemm_nn_openblas, gemm_tn_openblas);
  if (gemm_have_avx512()) {
    check_backend("avx512", gemm_nn_avx512, gemm_tn_avx512);
    check_height_independent();
  } else {
    printf("this CPU has no AVX-512F: the own kernels are not run (OpenBLAS is the backend)\n");
  }
  CHECK_DONE();
}
