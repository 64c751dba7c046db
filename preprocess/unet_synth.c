/* unet-synth - write a pets-like segmentation dataset in the Oxford layout:
 *   OUT/images/synth_00001.jpg            RGB JPEG
 *   OUT/annotations/trimaps/synth_00001.png  8-bit gray trimap:
 *       1 = object ("pet"), 2 = background, 3 = border band around the object
 *
 * Each image: a textured background (gradient, stripes, value noise), 0..4
 * distractor shapes (polygons and flat ellipses: NOT objects), and one "pet":
 * a smooth blob made of a body, head, ears, legs and tail ellipses with a fur
 * texture (spots / stripes / mottling) in a random colour. Colour alone never
 * tells object from background; shape and texture do, so a U-Net can learn it
 * but not trivially. Image i depends only on (seed, i), so the output is the
 * same for any thread count. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unet/image.h"
#include "unet/rng.h"
#include "unet/util.h"

#define PI_F 3.14159265f

typedef struct {
  char out_dir[UNET_PATH_MAX];
  long count;
  int fixed_h, fixed_w; /* 0 = random size per image */
  int min_side, max_side;
  uint64_t seed;
  int threads;
  int quality;
} SynthOptions;

/* ---- value noise: a random lattice, smoothly interpolated; values in [-1,1] */
typedef struct {
  int gw, gh;
  float cell;
  float *grid;
} ValueNoise;

static void noise_init(ValueNoise *n, UnetRng *r, int h, int w, float cell) {
  n->cell = cell;
  n->gw = (int)(w / cell) + 3;
  n->gh = (int)(h / cell) + 3;
  n->grid = xmalloc(sizeof(float) * n->gw * n->gh, "value noise lattice");
  for (int i = 0; i < n->gw * n->gh; i++) n->grid[i] = (float)(2.0 * rng_uniform(r) - 1.0);
}

static float smooth(float t) { return t * t * (3.0f - 2.0f * t); }

static float noise_at(const ValueNoise *n, float y, float x) {
  float gx = x / n->cell, gy = y / n->cell;
  if (gx < 0) gx = 0;
  if (gy < 0) gy = 0;
  int x0 = (int)gx, y0 = (int)gy;
  if (x0 > n->gw - 2) x0 = n->gw - 2;
  if (y0 > n->gh - 2) y0 = n->gh - 2;
  float fx = smooth(gx - x0), fy = smooth(gy - y0);
  if (fx > 1) fx = 1;
  if (fy > 1) fy = 1;
  const float *g = n->grid + y0 * n->gw + x0;
  float top = g[0] + (g[1] - g[0]) * fx, bot = g[n->gw] + (g[n->gw + 1] - g[n->gw]) * fx;
  return top + (bot - top) * fy;
}

static void noise_free(ValueNoise *n) { xfree(n->grid); }

/* ---- shapes ----------------------------------------------------------- */
typedef struct {
  float cy, cx, ry, rx, angle; /* rotated ellipse */
  float cos_a, sin_a;          /* cached by ellipse_prepare */
} Ellipse;

static void ellipse_prepare(Ellipse *e) {
  e->cos_a = cosf(e->angle);
  e->sin_a = sinf(e->angle);
}

static Ellipse make_ellipse(float cy, float cx, float ry, float rx, float angle) {
  Ellipse e = {cy, cx, ry, rx, angle, 0, 0};
  ellipse_prepare(&e);
  return e;
}

static int in_ellipse(const Ellipse *e, float y, float x) {
  float dy = y - e->cy, dx = x - e->cx;
  float u = dx * e->cos_a + dy * e->sin_a, v = -dx * e->sin_a + dy * e->cos_a;
  return (u * u) / (e->rx * e->rx) + (v * v) / (e->ry * e->ry) <= 1.0f;
}

typedef struct {
  int n;          /* 3 or 4 vertices, convex, counter-clockwise or clockwise */
  float y[4], x[4];
} Polygon;

static int in_polygon(const Polygon *p, float y, float x) {
  int pos = 0, neg = 0;
  for (int i = 0; i < p->n; i++) {
    int j = (i + 1) % p->n;
    float cross = (p->x[j] - p->x[i]) * (y - p->y[i]) - (p->y[j] - p->y[i]) * (x - p->x[i]);
    if (cross > 0) pos = 1;
    if (cross < 0) neg = 1;
  }
  return !(pos && neg);
}

static float clamp255(float v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

static void random_colour(UnetRng *r, float c[3]) {
  for (int k = 0; k < 3; k++) c[k] = rng_uniform_range(r, 20, 235);
}

/* The pet: body + head + 2 ears + 2..4 legs + tail, all in one pose. */
static int build_pet(UnetRng *r, int h, int w, Ellipse *e) {
  int n = 0;
  float side = (float)(h < w ? h : w);
  float s = side * rng_uniform_range(r, 0.2f, 0.3f);
  float cy = h * rng_uniform_range(r, 0.35f, 0.65f), cx = w * rng_uniform_range(r, 0.35f, 0.65f);
  float th = rng_uniform_range(r, -0.6f, 0.6f);  /* tilt of the body axis */
  float face = rng_below(r, 2) ? 1.0f : -1.0f;     /* head to the right or left */
  float c = cosf(th), sn = sinf(th);
  /* body frame: u along the body towards the head, v across it (+v = down,
   * so legs stay below and ears above whichever way the pet faces) */
#define AT(u, v) cy + face * (u) * sn + (v) * c, cx + face * (u) * c - (v) * sn
  float brx = s * rng_uniform_range(r, 1.0f, 1.4f), bry = s * rng_uniform_range(r, 0.55f, 0.8f);
  e[n++] = make_ellipse(AT(0, 0), bry, brx, th);
  float hr = s * rng_uniform_range(r, 0.45f, 0.6f);
  float hu = brx * 0.95f, hv = -bry * rng_uniform_range(r, 0.3f, 0.8f);
  float head_ry = hr * rng_uniform_range(r, 0.85f, 1.0f);
  float head_tilt = rng_uniform_range(r, -0.3f, 0.3f);
  e[n++] = make_ellipse(AT(hu, hv), head_ry, hr, th + head_tilt);
  for (int k = -1; k <= 1; k += 2) { /* ears: narrow ellipses pointing up-out of the head */
    float eu = hu + k * hr * 0.5f, ev = hv - hr * 0.85f;
    float ear_len = hr * rng_uniform_range(r, 0.45f, 0.7f);
    float ear_tilt = rng_uniform_range(r, 0.1f, 0.4f);
    e[n++] = make_ellipse(AT(eu, ev), hr * 0.22f, ear_len, th + PI_F / 2 - face * k * ear_tilt);
  }
  int legs = 2 + (int)rng_below(r, 3);
  for (int k = 0; k < legs; k++) {
    float lu = brx * (-0.7f + 1.4f * (legs > 1 ? (float)k / (legs - 1) : 0.5f));
    float len = s * rng_uniform_range(r, 0.45f, 0.75f);
    float leg_tilt = rng_uniform_range(r, -0.2f, 0.2f);
    e[n++] = make_ellipse(AT(lu, bry * 0.8f + len * 0.5f), s * 0.12f, len * 0.6f, th + PI_F / 2 + leg_tilt);
  }
  float tl = s * rng_uniform_range(r, 0.5f, 0.9f);
  float tail_tilt = rng_uniform_range(r, -0.7f, 0.7f);
  e[n++] = make_ellipse(AT(-brx - tl * 0.6f, -bry * 0.3f), s * 0.09f, tl, th + tail_tilt);
#undef AT
  return n;
}

/* Renders image i (every random draw is its own statement: the order of
 * evaluation of function arguments is unspecified in C, and the output must
 * not depend on the compiler) into rgb [h,w,3] and trimap [h,w]. */
static void render(const SynthOptions *o, long index, int h, int w, UnetRng *r, uint8_t *rgb, uint8_t *trimap,
                   uint8_t *obj, uint8_t *tmp) {
  (void)o;
  (void)index;
  /* background: gradient between two colours, optional stripes, value noise */
  float c0[3], c1[3];
  random_colour(r, c0);
  random_colour(r, c1);
  float ga = rng_uniform_range(r, 0, 2 * PI_F), gc = cosf(ga), gs = sinf(ga);
  int stripes = rng_below(r, 2);
  float sa = rng_uniform_range(r, 0, PI_F), speriod = rng_uniform_range(r, 6, 30), samp = rng_uniform_range(r, 10, 35);
  float sa_cos = cosf(sa), sa_sin = sinf(sa);
  float stint[3];
  for (int k = 0; k < 3; k++) stint[k] = rng_uniform_range(r, 0.3f, 1.0f);
  ValueNoise bg_noise, fur_noise, spot_noise;
  noise_init(&bg_noise, r, h, w, rng_uniform_range(r, 12, 48));
  float bg_amp = rng_uniform_range(r, 15, 45), pix_sigma = rng_uniform_range(r, 2, 7);
  float diag = sqrtf((float)h * h + (float)w * w);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      float t = 0.5f + ((x - w * 0.5f) * gc + (y - h * 0.5f) * gs) / diag;
      float st = stripes ? samp * sinf(2 * PI_F * (x * sa_cos + y * sa_sin) / speriod) : 0;
      float nz = bg_amp * noise_at(&bg_noise, (float)y, (float)x);
      for (int k = 0; k < 3; k++)
        rgb[(y * w + x) * 3 + k] = (uint8_t)clamp255(c0[k] + (c1[k] - c0[k]) * t + st * stint[k] + nz);
    }

  /* distractors: polygons and flat ellipses in any colour; never objects */
  int nd = (int)rng_below(r, 5);
  for (int d = 0; d < nd; d++) {
    float col[3];
    random_colour(r, col);
    float size = (h < w ? h : w) * rng_uniform_range(r, 0.06f, 0.2f);
    float py = rng_uniform_range(r, 0, (float)h), px = rng_uniform_range(r, 0, (float)w);
    int kind = (int)rng_below(r, 3);
    Polygon poly = {0};
    float el_ry = size * rng_uniform_range(r, 0.4f, 1.0f);
    float el_angle = rng_uniform_range(r, 0, PI_F);
    Ellipse el = make_ellipse(py, px, el_ry, size, el_angle);
    if (kind < 2) {
      poly.n = kind == 0 ? 3 : 4;
      float a0 = rng_uniform_range(r, 0, 2 * PI_F);
      for (int v = 0; v < poly.n; v++) {
        float a = a0 + 2 * PI_F * v / poly.n + rng_uniform_range(r, -0.25f, 0.25f);
        poly.y[v] = py + size * sinf(a);
        poly.x[v] = px + size * cosf(a);
      }
    }
    float shade = rng_uniform_range(r, -25, 25);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        int in = kind < 2 ? in_polygon(&poly, (float)y, (float)x) : in_ellipse(&el, (float)y, (float)x);
        if (!in) continue;
        float g = shade * (y - py) / (size + 1);
        for (int k = 0; k < 3; k++) rgb[(y * w + x) * 3 + k] = (uint8_t)clamp255(col[k] + g);
      }
  }

  /* the pet */
  Ellipse parts[16];
  int np = build_pet(r, h, w, parts);
  float base[3], second[3];
  random_colour(r, base);
  int pattern = (int)rng_below(r, 3); /* 0 spots, 1 stripes, 2 mottled */
  float mix = rng_uniform_range(r, 0.3f, 0.8f);
  for (int k = 0; k < 3; k++) second[k] = base[k] * (1 - mix) + (rng_below(r, 2) ? 255.0f : 0.0f) * mix;
  noise_init(&fur_noise, r, h, w, rng_uniform_range(r, 2.5f, 5));
  noise_init(&spot_noise, r, h, w, rng_uniform_range(r, 6, 14));
  float stripe_period = rng_uniform_range(r, 5, 12), stripe_angle = parts[0].angle + PI_F / 2;
  float st_cos = cosf(stripe_angle), st_sin = sinf(stripe_angle);
  float fur_amp = rng_uniform_range(r, 12, 30);
  float top = parts[0].cy - parts[0].rx, span = 2 * parts[0].rx + 1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int in = 0;
      for (int p = 0; p < np && !in; p++) in = in_ellipse(&parts[p], (float)y, (float)x);
      obj[y * w + x] = (uint8_t)in;
      if (!in) continue;
      float m; /* 0 = base colour, 1 = second colour */
      if (pattern == 0) {
        m = noise_at(&spot_noise, (float)y, (float)x) > 0.25f ? 1.0f : 0.0f;
      } else if (pattern == 1) {
        float warp = 4.0f * noise_at(&spot_noise, (float)y, (float)x);
        float v = x * st_cos + y * st_sin + warp;
        m = sinf(2 * PI_F * v / stripe_period) > 0.2f ? 1.0f : 0.0f;
      } else {
        m = 0.5f + 0.5f * noise_at(&spot_noise, (float)y, (float)x);
      }
      float light = 18.0f * (0.5f - (y - top) / span); /* lit from above */
      float fur = fur_amp * noise_at(&fur_noise, (float)y, (float)x);
      for (int k = 0; k < 3; k++)
        rgb[(y * w + x) * 3 + k] = (uint8_t)clamp255(base[k] + (second[k] - base[k]) * m + light + fur);
    }
  noise_free(&bg_noise);
  noise_free(&fur_noise);
  noise_free(&spot_noise);

  /* sensor noise over everything */
  for (int p = 0; p < h * w * 3; p++)
    rgb[p] = (uint8_t)clamp255(rgb[p] + (float)(pix_sigma * rng_normal(r)));

  /* trimap: band = dilate_r(obj) & !erode_r(obj), r in {1,2} (square window),
   * i.e. a 2..4 px border band straddling the outline as in the Oxford set */
  int rad = 1 + (int)rng_below(r, 2);
  /* tmp holds horizontal max (dilate) in bit 0 and min (erode) in bit 1 */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int mx = 0, mn = 1;
      for (int d = -rad; d <= rad; d++) {
        int xx = x + d < 0 ? 0 : (x + d >= w ? w - 1 : x + d);
        int v = obj[y * w + xx];
        mx |= v;
        mn &= v;
      }
      tmp[y * w + x] = (uint8_t)(mx | (mn << 1));
    }
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int mx = 0, mn = 1;
      for (int d = -rad; d <= rad; d++) {
        int yy = y + d < 0 ? 0 : (y + d >= h ? h - 1 : y + d);
        int v = tmp[yy * w + x];
        mx |= v & 1;
        mn &= (v >> 1) & 1;
      }
      trimap[y * w + x] = (mx && !mn) ? 3 : (obj[y * w + x] ? 1 : 2);
    }
}

/* ---- driver ----------------------------------------------------------- */
typedef struct {
  const SynthOptions *o;
  atomic_long next, done;
  atomic_int failed;
  char error[1024];
  pthread_mutex_t error_lock;
} SynthJob;

static uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void *synth_worker(void *arg) {
  SynthJob *job = arg;
  const SynthOptions *o = job->o;
  int maxh = o->fixed_h ? o->fixed_h : o->max_side, maxw = o->fixed_w ? o->fixed_w : o->max_side;
  size_t px = (size_t)maxh * maxw;
  uint8_t *rgb = xmalloc(px * 3, "synth image"), *tri = xmalloc(px, "synth trimap");
  uint8_t *obj = xmalloc(px, "synth object mask"), *tmp = xmalloc(px, "synth scratch");
  for (;;) {
    long i = atomic_fetch_add(&job->next, 1);
    if (i >= o->count || atomic_load(&job->failed)) break;
    UnetRng r;
    rng_seed(&r, mix64(o->seed ^ mix64((uint64_t)i + 1)));
    int h = o->fixed_h, w = o->fixed_w;
    if (!h) {
      h = o->min_side + (int)rng_below(&r, (uint32_t)(o->max_side - o->min_side + 1));
      w = o->min_side + (int)rng_below(&r, (uint32_t)(o->max_side - o->min_side + 1));
    }
    render(o, i, h, w, &r, rgb, tri, obj, tmp);
    char name[64], path[UNET_PATH_MAX], err[1024];
    snprintf(name, sizeof name, "images/synth_%05ld.jpg", i + 1);
    unet_path_join(path, sizeof path, o->out_dir, name);
    int st = image_write_jpeg(path, rgb, w, h, o->quality, err, sizeof err);
    if (st == 0) {
      snprintf(name, sizeof name, "annotations/trimaps/synth_%05ld.png", i + 1);
      unet_path_join(path, sizeof path, o->out_dir, name);
      st = image_write_png(path, tri, w, h, 1, err, sizeof err);
    }
    if (st != 0) {
      pthread_mutex_lock(&job->error_lock);
      if (!atomic_load(&job->failed)) snprintf(job->error, sizeof job->error, "%s", err);
      atomic_store(&job->failed, 1);
      pthread_mutex_unlock(&job->error_lock);
      break;
    }
    atomic_fetch_add(&job->done, 1);
  }
  xfree(rgb);
  xfree(tri);
  xfree(obj);
  xfree(tmp);
  return NULL;
}

/* A rerun with a smaller --count would leave the earlier run's higher-numbered
 * pairs, which unet-preprocess would then pick up: remove synth_NNNNN files
 * (our own names, exactly) numbered beyond the count. */
static long remove_stale_pairs(const SynthOptions *o, const char *sub, const char *ext) {
  char dir[UNET_PATH_MAX];
  if (unet_path_join(dir, sizeof dir, o->out_dir, sub) != 0) return 0;
  DIR *d = opendir(dir);
  if (!d) return 0;
  long removed = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    if (strncmp(n, "synth_", 6) || strlen(n) != 11 + strlen(ext) || strcmp(n + 11, ext)) continue;
    int digits = 1;
    for (int i = 6; i < 11; i++) digits &= n[i] >= '0' && n[i] <= '9';
    if (!digits || strtol(n + 6, NULL, 10) <= o->count) continue;
    char path[UNET_PATH_MAX];
    if (unet_path_join(path, sizeof path, dir, n) == 0 && unlink(path) == 0) removed++;
  }
  closedir(d);
  return removed;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-synth --out DIR [--count N] [--size S|HxW] [--seed S] [--threads T] [--quality Q]\n"
          "Writes a synthetic pets-like dataset in the Oxford layout:\n"
          "  DIR/images/synth_00001.jpg, DIR/annotations/trimaps/synth_00001.png\n"
          "  trimap values: 1 = object, 2 = background, 3 = border band\n"
          "  --count N     number of image/trimap pairs (default 100)\n"
          "  --size S|HxW  fixed image size; default: height and width drawn per image in 180..320\n"
          "  --seed S      (default 1337); the same seed gives the same files for any --threads\n"
          "  --threads T   worker threads (default: online CPUs)\n"
          "  --quality Q   JPEG quality 1..100 (default 90)\n"
          "A rerun removes the synth_* pairs of an earlier run numbered beyond --count.\n"
          "exit codes: 0 done, 1 error (the file at fault is named), 2 bad command line\n");
}

int main(int argc, char **argv) {
  unet_set_progname("unet-synth");
  SynthOptions o;
  memset(&o, 0, sizeof o);
  o.count = 100;
  o.seed = 1337;
  o.min_side = 180;
  o.max_side = 320;
  o.quality = 90;
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  o.threads = nproc > 0 ? (int)nproc : 1;
  for (int a = 1; a < argc; a++) {
    const char *opt = argv[a];
    if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
      usage(stdout);
      return UNET_EXIT_OK;
    }
    int known = !strcmp(opt, "--out") || !strcmp(opt, "--count") || !strcmp(opt, "--size") ||
                !strcmp(opt, "--seed") || !strcmp(opt, "--threads") || !strcmp(opt, "--quality");
    if (!known) unet_usage_error("unknown option '%s'", opt);
    if (a + 1 >= argc) unet_usage_error("%s needs a value", opt);
    const char *val = argv[++a];
    long v;
    if (!strcmp(opt, "--out")) {
      snprintf(o.out_dir, sizeof o.out_dir, "%s", val);
    } else if (!strcmp(opt, "--count")) {
      if (unet_parse_int(val, &v) || v < 1 || v > 99999) unet_usage_error("--count %s: want an integer in 1..99999", val);
      o.count = v;
    } else if (!strcmp(opt, "--size")) {
      if (unet_parse_size(val, &o.fixed_h, &o.fixed_w) || o.fixed_h < 8 || o.fixed_w < 8 || o.fixed_h > 8192 ||
          o.fixed_w > 8192)
        unet_usage_error("--size %s: want S or HxW with sides in 8..8192", val);
    } else if (!strcmp(opt, "--seed")) {
      if (unet_parse_int(val, &v)) unet_usage_error("--seed %s: want an integer", val);
      o.seed = (uint64_t)v;
    } else if (!strcmp(opt, "--threads")) {
      if (unet_parse_int(val, &v) || v < 1 || v > 256) unet_usage_error("--threads %s: want an integer in 1..256", val);
      o.threads = (int)v;
    } else if (!strcmp(opt, "--quality")) {
      if (unet_parse_int(val, &v) || v < 1 || v > 100) unet_usage_error("--quality %s: want an integer in 1..100", val);
      o.quality = (int)v;
    }
  }
  if (!o.out_dir[0]) unet_usage_error("--out DIR is required");
  char dir[UNET_PATH_MAX];
  unet_path_join(dir, sizeof dir, o.out_dir, "images");
  if (unet_mkdir_output(dir) != 0) unet_fatal("cannot create directory %s: %s", dir, strerror(errno));
  unet_path_join(dir, sizeof dir, o.out_dir, "annotations/trimaps");
  if (unet_mkdir_output(dir) != 0) unet_fatal("cannot create directory %s: %s", dir, strerror(errno));

  SynthJob job;
  memset(&job, 0, sizeof job);
  job.o = &o;
  atomic_init(&job.next, 0);
  atomic_init(&job.done, 0);
  atomic_init(&job.failed, 0);
  pthread_mutex_init(&job.error_lock, NULL);
  int nt = o.threads < o.count ? o.threads : (int)o.count;
  pthread_t *tids = xmalloc(sizeof(pthread_t) * nt, "threads");
  for (int t = 0; t < nt; t++)
    if (pthread_create(&tids[t], NULL, synth_worker, &job) != 0) unet_fatal("cannot start worker thread %d", t);
  UnetProgress prog;
  unet_progress_start(&prog, "unet-synth: images", o.count);
  while (atomic_load(&job.done) < o.count && !atomic_load(&job.failed)) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    unet_progress_update(&prog, atomic_load(&job.done));
  }
  for (int t = 0; t < nt; t++) pthread_join(tids[t], NULL);
  xfree(tids);
  if (atomic_load(&job.failed)) unet_fatal("%s", job.error);
  unet_progress_end(&prog, atomic_load(&job.done));
  long stale = remove_stale_pairs(&o, "images", ".jpg") + remove_stale_pairs(&o, "annotations/trimaps", ".png");
  if (stale) unet_info("removed %ld file(s) of an earlier, larger run (synth_*.jpg/png beyond --count %ld)", stale, o.count);
  unet_info("wrote %ld image/trimap pairs to %s (images/, annotations/trimaps/), seed %llu", o.count, o.out_dir,
            (unsigned long long)o.seed);
  return 0;
}
