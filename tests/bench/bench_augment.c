/* bench_augment.c - what --augment costs per training image: the CPU time of
 * augment_sample (flip, scale/crop, colour) on a size x size image, to set
 * against the training step's time per image measured by bench-train in the
 * same run (README "Data orders, augmentation and the recipe").
 * usage: bench-augment [--size 160] [--count 2000] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unet/augment.h"
#include "unet/util.h"

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
  int size = 160, count = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--count")) count = atoi(argv[i + 1]);
  }
  size_t pix = (size_t)size * size;
  uint8_t *img = xmalloc(pix * 3, "image"), *mask = xmalloc(pix, "mask");
  uint8_t *out = xmalloc(pix * 3, "out"), *om = xmalloc(pix, "out mask");
  for (size_t i = 0; i < pix * 3; i++) img[i] = (uint8_t)(i * 2654435761u >> 24);
  for (size_t i = 0; i < pix; i++) mask[i] = (uint8_t)(i % 3);
  const char *lists[] = {"flip", "scale", "color", "flip,scale,color"};
  unsigned sink = 0;
  for (int l = 0; l < 4; l++) {
    AugmentConfig a;
    char err[128];
    augment_defaults(&a);
    augment_parse(lists[l], &a, err, sizeof err);
    double t0 = cpu_seconds();
    for (int s = 0; s < count; s++) {
      augment_sample(&a, 1337, 0, s, img, mask, size, size, out, om);
      sink += out[s % (pix * 3)];
    }
    printf("%-18s %.3f ms CPU per %dx%d image\n", lists[l], 1e3 * (cpu_seconds() - t0) / count, size, size);
  }
  xfree(img);
  xfree(mask);
  xfree(out);
  xfree(om);
  return sink == 1u ? 1 : 0;
}
