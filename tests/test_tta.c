/* test_tta.c - flip test-time augmentation (unet_predict_flip_average):
 *  1. its logits are (f(x) + mirror(f(mirror x))) / 2, built here from two
 *     plain unet_predict calls (bit-exact: the same float operations);
 *  2. it commutes with the mirror: TTA(mirror x) = mirror(TTA(x)) exactly
 *     (a + b = b + a in float), which the plain network does not (checked: a
 *     trained-from-init network is not mirror-symmetric, so 2 can fail);
 *  3. probs = softmax(logits): each pixel's probabilities sum to 1 and the
 *     ratio p_i / p_j is exp(l_i - l_j).
 * Shapes: x [n, H, W, 3], logits and probs [n, H, W, C]. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "unet/model.h"
#include "unet/rng.h"
#include "unet/util.h"

static void mirror(float *dst, const float *src, long rows, int W, int ch) {
  for (long r = 0; r < rows; r++)
    for (int x = 0; x < W; x++)
      memcpy(dst + (r * W + x) * ch, src + (r * W + (W - 1 - x)) * ch, ch * sizeof(float));
}

int main(void) {
  const int n = 2, H = 32, W = 32, C = 3;
  const long pix = (long)H * W, rows = (long)n * H;
  UNet m;
  char err[256];
  CHECK(unet_create(&m, H, W, C, err, sizeof err) == 0);
  unet_init_keras(&m, 11);
  unet_plan(&m, n);
  float *x = xmalloc(n * pix * 3 * sizeof(float), "x"), *xm = xmalloc(n * pix * 3 * sizeof(float), "x mirrored");
  float *scratch = xmalloc(n * pix * 3 * sizeof(float), "scratch");
  float *probs = xmalloc(n * pix * C * sizeof(float), "probs");
  float *tta = xmalloc(n * pix * C * sizeof(float), "tta logits"), *tta_m = xmalloc(n * pix * C * sizeof(float), "tta of mirror");
  float *plain = xmalloc(n * pix * C * sizeof(float), "plain logits"), *want = xmalloc(n * pix * C * sizeof(float), "expected");
  UnetRng r;
  rng_seed(&r, 3);
  for (long i = 0; i < n * pix * 3; i++) x[i] = (float)rng_below(&r, 256);
  mirror(xm, x, rows, W, 3);

  /* 1: from two plain passes */
  unet_predict(&m, x, n, probs);
  memcpy(plain, unet_last_logits(&m), n * pix * C * sizeof(float));
  unet_predict(&m, xm, n, probs);
  mirror(want, unet_last_logits(&m), rows, W, C);
  for (long i = 0; i < n * pix * C; i++) want[i] = 0.5f * (want[i] + plain[i]);
  unet_predict_flip_average(&m, x, n, probs, scratch, tta);
  long differ = 0;
  for (long i = 0; i < n * pix * C; i++) differ += tta[i] != want[i];
  CHECK_MSG(differ == 0, "%ld of %ld logits differ from (f(x) + mirror f(mirror x)) / 2", differ, n * pix * C);

  /* 3: the probabilities are the softmax of the averaged logits */
  double worst_sum = 0, worst_ratio = 0;
  for (long p = 0; p < n * pix; p++) {
    double s = 0;
    for (int k = 0; k < C; k++) s += probs[p * C + k];
    worst_sum = fmax(worst_sum, fabs(s - 1));
    double ratio = log(probs[p * C + 1] / probs[p * C]) - (tta[p * C + 1] - tta[p * C]);
    worst_ratio = fmax(worst_ratio, fabs(ratio));
  }
  CHECK_MSG(worst_sum < 1e-5, "probabilities sum to 1 within %.3g", worst_sum);
  CHECK_MSG(worst_ratio < 1e-4, "log(p1/p0) = l1 - l0 within %.3g", worst_ratio);

  /* 2: TTA commutes with the mirror; the plain network does not */
  unet_predict_flip_average(&m, xm, n, probs, scratch, tta_m);
  mirror(want, tta_m, rows, W, C);
  differ = 0;
  for (long i = 0; i < n * pix * C; i++) differ += want[i] != tta[i];
  CHECK_MSG(differ == 0, "TTA(mirror x) mirrored back differs from TTA(x) in %ld logits", differ);
  unet_predict(&m, xm, n, probs);
  mirror(want, unet_last_logits(&m), rows, W, C);
  double asym = 0;
  for (long i = 0; i < n * pix * C; i++) asym = fmax(asym, fabs(want[i] - plain[i]));
  CHECK_MSG(asym > 1e-3, "the plain network looks mirror-symmetric (max difference %.3g): check 2 proves nothing", asym);

  xfree(x); xfree(xm); xfree(scratch); xfree(probs); xfree(tta); xfree(tta_m); xfree(plain); xfree(want);
  unet_destroy(&m);
  if (check_failures) return 1;
  printf("test_tta: flip TTA = (f(x) + mirror f(mirror x)) / 2 bit-exact, commutes with the mirror, softmax ok "
         "(plain network asymmetry %.3g)\n", asym);
  return 0;
}
