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
/* The one Fisher-Yates (from the back: a[i-1] swaps with a[j], j in [0, i)),
 * with two draws of j: rng_below, exactly uniform (unet-preprocess's split,
 * the trainer's global data order), and floor(rng_uniform * i), uniform to
 * 2^-53 (the trainer's shard data order since its first version: kept so a
 * run keeps its data order). */
void rng_shuffle_u32(UnetRng *r, uint32_t *a, uint32_t n);
void rng_shuffle_u32_by_uniform(UnetRng *r, uint32_t *a, uint32_t n);
#endif
