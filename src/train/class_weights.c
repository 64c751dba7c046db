/* class_weights.c - see class_weights.h */
#include "unet/class_weights.h"

#include <stdlib.h>
#include <string.h>

#include "unet/util.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int class_weights_median_frequency(const int64_t *class_pixels, const int64_t *image_pixels, int c, float *w) {
  double *freq = xmalloc(sizeof(double) * (size_t)c, "class frequencies"), *sorted = xmalloc(sizeof(double) * (size_t)c, "class frequencies");
  int n = 0;
  for (int k = 0; k < c; k++) {
    freq[k] = class_pixels[k] > 0 && image_pixels[k] > 0 ? (double)class_pixels[k] / (double)image_pixels[k] : 0;
    if (freq[k] > 0) sorted[n++] = freq[k];
  }
  qsort(sorted, (size_t)n, sizeof(double), cmp_double);
  double median = n == 0 ? 1 : (n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]));
  for (int k = 0; k < c; k++) w[k] = freq[k] > 0 ? (float)(median / freq[k]) : 1.0f;
  xfree(freq);
  xfree(sorted);
  return n;
}

void class_weights_count(const uint8_t *mask, long pixels, int c, int64_t *class_pixels, int64_t *image_pixels) {
  int64_t local[256] = {0}, counted = 0;
  for (long q = 0; q < pixels; q++)
    if (mask[q] < c) local[mask[q]]++, counted++;
  for (int k = 0; k < c; k++)
    if (local[k]) {
      class_pixels[k] += local[k];
      image_pixels[k] += counted;
    }
}

int class_weights_parse(const char *s, float *w, int max, int *n) {
  *n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    double v = strtod(p, &end);
    if (end == p || !(v > 0) || *n >= max) return -1;
    w[(*n)++] = (float)v;
    if (*end == ',') end++;
    else if (*end) return -1;
    p = end;
  }
  return *n > 0 ? 0 : -1;
}
