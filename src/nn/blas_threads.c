/* blas_threads.c - unet_set_threads: the one place that sets OpenBLAS's threads. */
#include <cblas.h>

#include "unet/model.h"

void unet_set_threads(int threads) { openblas_set_num_threads(threads); }
