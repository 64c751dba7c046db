/* rng.h - small deterministic RNG (splitmix64-seeded xoshiro128+ style) whose
 * whole state is 4 x uint64, so a checkpoint can store and restore it. */
#ifndef UNET_RNG_H
#define UNET_RNG_H
#include <stdint.h>

typedef struct { uint64_t s[4]; } UnetRng;

void rng_seed(UnetRng *r, uint64_t seed);
uint64_t rng_next_u64(UnetRng *r);
uint32_t rng_below(UnetRng *r, uint32_t n);   /* uniform in [0, n) */
double rng_uniform(UnetRng *r);               /* uniform in [0, 1) */
float rng_uniform_range(UnetRng *r, float lo, float hi);
double rng_normal(UnetRng *r);                /* standard normal */
void rng_shuffle_u32(UnetRng *r, uint32_t *a, uint32_t n); /* Fisher-Yates */
#endif
