/* blas_threads.c - unet_set_threads: the one place that sets OpenBLAS's
 * threads; unet_gemm_backend: which GEMM code runs (gemm.h). */
#include <cblas.h>

#include "gemm.h"
#include "unet/model.h"

void unet_set_threads(int threads) { openblas_set_num_threads(threads); }
const char *unet_gemm_backend(void) { return gemm_backend(); }
