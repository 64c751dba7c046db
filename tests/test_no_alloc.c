/* test_no_alloc.c - a training step allocates nothing: the layers get all
 * their scratch from the model's planned workspace (include/unet/layers.h).
 * After one warm-up step (OpenBLAS sets up its buffers on first use), a
 * training step, a BatchNorm-statistics pass, inference and an Adam step must
 * not call xmalloc, and, outside the sanitizer build, not call malloc at all
 * (this program counts every malloc/calloc/realloc/memalign of the process,
 * OpenBLAS's included). */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "unet/adam.h"
#include "unet/model.h"
#include "unet/rng.h"
#include "unet/util.h"

#if defined(__SANITIZE_ADDRESS__)
#define COUNT_MALLOC 0 /* ASan owns malloc */
#else
#define COUNT_MALLOC 1
static atomic_size_t g_mallocs = 0;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
void *malloc(size_t n) {
  atomic_fetch_add(&g_mallocs, 1);
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  atomic_fetch_add(&g_mallocs, 1);
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  atomic_fetch_add(&g_mallocs, 1);
  return __libc_realloc(p, n);
}
void *memalign(size_t align, size_t n) {
  atomic_fetch_add(&g_mallocs, 1);
  return __libc_memalign(align, n);
}
void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
  void *p = memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void free(void *p) { __libc_free(p); }
#endif

static size_t mallocs(void) {
#if COUNT_MALLOC
  return atomic_load(&g_mallocs);
#else
  return 0;
#endif
}

int main(void) {
  const int n = 3, h = 32, w = 32, c = 3;
  UNet m;
  char err[256];
  CHECK(unet_create(&m, h, w, c, err, sizeof err) == 0);
  unet_init_keras(&m, 5);
  size_t pix = (size_t)h * w;
  float *x = xmalloc((size_t)n * pix * 3 * sizeof(float), "x");
  float *probs = xmalloc((size_t)n * pix * c * sizeof(float), "probs");
  uint8_t *labels = xmalloc((size_t)n * pix, "labels");
  UnetRng r;
  rng_seed(&r, 1);
  for (size_t i = 0; i < (size_t)n * pix * 3; i++) x[i] = (float)rng_below(&r, 256);
  for (size_t i = 0; i < (size_t)n * pix; i++) labels[i] = (uint8_t)rng_below(&r, (uint32_t)c);
  Adam opt;
  adam_init(&opt, m.num_params, 1e-3);
  BatchNormReducer none = {0};
  const float scale = 1.0f / (float)(n * pix);
  unet_plan(&m, n);
  /* warm-up: everything once */
  memset(m.grads, 0, m.num_params * sizeof(float));
  double loss0 = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL);
  adam_step(&opt, m.params, m.grads);
  unet_update_batch_stats(&m, x, n, none);
  unet_predict(&m, x, n, probs);

  size_t x0 = unet_alloc_count(), m0 = mallocs();
  for (int step = 0; step < 2; step++) {
    memset(m.grads, 0, m.num_params * sizeof(float));
    double loss = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL);
    CHECK(isfinite(loss) && loss != loss0); /* the weights moved: a real step */
    adam_step(&opt, m.params, m.grads);
  }
  unet_train_step(&m, x, labels, 1, scale, none, NULL, NULL); /* a smaller batch than planned */
  unet_update_batch_stats(&m, x, n, none);
  unet_predict(&m, x, n, probs);
  unet_plan(&m, n); /* planned already: nothing to do */
  /* the input is read in place, never written: a copy of it gives the same
   * step, and it is unchanged afterwards */
  float *copy = probs; /* large enough: C = 3 floats per pixel, as the input */
  memcpy(copy, x, (size_t)n * pix * 3 * sizeof(float));
  memset(m.grads, 0, m.num_params * sizeof(float));
  double on_x = unet_train_step(&m, x, labels, n, scale, none, NULL, NULL);
  memset(m.grads, 0, m.num_params * sizeof(float));
  double on_copy = unet_train_step(&m, copy, labels, n, scale, none, NULL, NULL);
  CHECK_MSG(on_x == on_copy, "on x %.17g, on a copy %.17g", on_x, on_copy);
  CHECK(memcmp(copy, x, (size_t)n * pix * 3 * sizeof(float)) == 0);
  size_t x1 = unet_alloc_count(), m1 = mallocs();
  printf("during 5 training steps, a statistics pass and inference: %zu xmalloc calls, %zu malloc calls%s\n", x1 - x0,
         m1 - m0, COUNT_MALLOC ? "" : " (malloc not counted under the sanitizer)");
  CHECK_MSG(x1 == x0, "%zu xmalloc calls in a step", x1 - x0);
  CHECK_MSG(m1 == m0, "%zu malloc calls in a step", m1 - m0);
#if COUNT_MALLOC
  /* the counters themselves work: one xmalloc is one malloc-level call */
  size_t before = mallocs(), xbefore = unet_alloc_count();
  xfree(xmalloc(16, "probe"));
  CHECK(mallocs() == before + 1 && unet_alloc_count() == xbefore + 1);
#endif
  adam_free(&opt);
  xfree(x);
  xfree(probs);
  xfree(labels);
  unet_destroy(&m);
  CHECK_DONE();
}
