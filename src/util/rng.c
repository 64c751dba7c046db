/* rng.c - xoshiro256** seeded by splitmix64; see rng.h */
#include "unet/rng.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void rng_seed(UnetRng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next_u64(UnetRng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint32_t rng_below(UnetRng *r, uint32_t n) {
  /* rejection sampling keeps it exactly uniform */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = rng_next_u64(r); while (x >= limit);
  return (uint32_t)(x % n);
}

double rng_uniform(UnetRng *r) { return (rng_next_u64(r) >> 11) * 0x1.0p-53; }

float rng_uniform_range(UnetRng *r, float lo, float hi) { return (float)(lo + (hi - lo) * rng_uniform(r)); }

double rng_normal(UnetRng *r) {
  double u1 = rng_uniform(r), u2 = rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Fisher-Yates from the back: a[i-1] swaps with a[j], j in [0, i) drawn by
 * rng_below (exact) or from 53 uniform bits (by_uniform). */
static void shuffle(UnetRng *r, uint32_t *a, uint32_t n, int by_uniform) {
  for (uint32_t i = n; i > 1; i--) {
    uint32_t j;
    if (by_uniform) {
      j = (uint32_t)(rng_uniform(r) * i);
      if (j >= i) j = i - 1;
    } else {
      j = rng_below(r, i);
    }
    uint32_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

void rng_shuffle_u32(UnetRng *r, uint32_t *a, uint32_t n) { shuffle(r, a, n, 0); }
void rng_shuffle_u32_by_uniform(UnetRng *r, uint32_t *a, uint32_t n) { shuffle(r, a, n, 1); }
