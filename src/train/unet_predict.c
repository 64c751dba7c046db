/* unet_predict.c - `unet-predict --weights FILE --out DIR IMAGE...`: decode
 * any JPEG/PNG as unet-preprocess does, resize to the model size, run
 * inference (moving BatchNorm statistics) and write per image a class-id mask
 * PNG and a coloured overlay PNG; optionally all softmax probabilities.
 *
 * All or nothing: the output folder is created only when the weights load, and
 * if any image cannot be decoded or any output cannot be written (a full disk),
 * every file this run wrote is removed again and one message names the cause. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unet/checkpoint.h"
#include "unet/image.h"
#include "unet/metrics.h"
#include "unet/model.h"
#include "unet/probs_file.h"
#include "unet/resize.h"
#include "unet/util.h"
#include "unet/weights_info.h"

extern void openblas_set_num_threads(int num_threads);

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-predict --weights FILE --out DIR [options] IMAGE...\n"
          "  --weights FILE   Keras .weights.h5 (best.weights.h5) or a checkpoint (last.ckpt.h5)\n"
          "  --out DIR        writes <stem>_mask.png (class ids) and <stem>_overlay.png per image\n"
          "  --size S|HxW     model input size (default: the size the weights were trained at, as\n"
          "                   recorded in files this project writes; 160 for a file Keras wrote)\n"
          "  --classes N      class count (default: read from the weights file)\n"
          "  --probs FILE.h5  also write softmax probabilities: dataset probs float32 [N,H,W,C]\n"
          "  --batch N        images per forward pass (default 8)\n"
          "  --threads N      OpenBLAS threads (default: all cores)\n"
          "Options and images may come in any order; after -- every argument is an image.\n"
          "Two images with the same file stem are refused (their outputs would collide).\n"
          "exit codes: 0 done, 1 error (nothing is left written), 2 bad command line\n");
}

typedef struct {
  const char *weights, *out, *probs_path;
  int h, w, size_given, classes, batch, threads;
  const char **images;
  int count;
} PredictOptions;

static long need_positive(const char *opt, const char *v) {
  long n;
  if (!v || unet_parse_int(v, &n) != 0 || n < 1 || n > 1000000)
    unet_usage_error("%s needs a positive integer, got '%s'", opt, v ? v : "(nothing)");
  return n;
}

static void parse_args(int argc, char **argv, PredictOptions *o) {
  memset(o, 0, sizeof *o);
  o->batch = 8;
  o->images = xcalloc((size_t)argc, sizeof *o->images, "image list");
  int only_images = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (only_images || a[0] != '-' || !strcmp(a, "-")) {
      o->images[o->count++] = a;
      continue;
    }
    if (!strcmp(a, "--")) { only_images = 1; continue; }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(UNET_EXIT_OK); }
    int takes_value = !strcmp(a, "--weights") || !strcmp(a, "--out") || !strcmp(a, "--probs") ||
                      !strcmp(a, "--size") || !strcmp(a, "--classes") || !strcmp(a, "--batch") ||
                      !strcmp(a, "--threads");
    if (!takes_value) unet_usage_error("unknown option '%s'", a);
    if (!v) unet_usage_error("%s needs a value", a);
    i++;
    if (!strcmp(a, "--weights")) o->weights = v;
    else if (!strcmp(a, "--out")) o->out = v;
    else if (!strcmp(a, "--probs")) o->probs_path = v;
    else if (!strcmp(a, "--size")) {
      if (unet_parse_size(v, &o->h, &o->w) != 0) unet_usage_error("--size %s: want S or HxW, e.g. 160 or 160x128", v);
      if (o->h % UNET_SIZE_MULTIPLE || o->w % UNET_SIZE_MULTIPLE)
        unet_usage_error("--size %s: the model needs sides that are multiples of %d", v, UNET_SIZE_MULTIPLE);
      o->size_given = 1;
    }
    else if (!strcmp(a, "--classes")) o->classes = (int)need_positive(a, v);
    else if (!strcmp(a, "--batch")) o->batch = (int)need_positive(a, v);
    else o->threads = (int)need_positive(a, v);
  }
  if (!o->weights || !o->out) unet_usage_error("--weights and --out are required");
  if (o->count == 0) unet_usage_error("no input image given");
}

static void stem_of(const char *path, char *out, size_t len) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(out, len, "%s", base);
  char *dot = strrchr(out, '.');
  if (dot && dot != out) *dot = 0;
}

typedef struct {
  char stem[512];
  int index;
} StemEntry;

static int stem_cmp(const void *a, const void *b) {
  const StemEntry *x = a, *y = b;
  int c = strcmp(x->stem, y->stem);
  return c ? c : x->index - y->index;
}

/* Outputs are named by stem: two inputs with one stem would overwrite each
 * other. Refused before anything is done, naming both files. */
static void check_unique_stems(const PredictOptions *o) {
  StemEntry *e = xmalloc(sizeof *e * (size_t)o->count, "stems");
  for (int i = 0; i < o->count; i++) {
    stem_of(o->images[i], e[i].stem, sizeof e[i].stem);
    e[i].index = i;
  }
  qsort(e, (size_t)o->count, sizeof *e, stem_cmp);
  for (int i = 1; i < o->count; i++)
    if (!strcmp(e[i].stem, e[i - 1].stem))
      unet_usage_error("%s and %s have the same stem '%s': their outputs (%s_mask.png, ...) would overwrite each "
                       "other; rename one or predict them in separate runs",
                       o->images[e[i - 1].index], o->images[e[i].index], e[i].stem, e[i].stem);
  xfree(e);
}

/* ---- all or nothing: every file written is remembered until the end ------- */
static char (*g_written)[4700];
static int g_nwritten = 0;

static void fail_and_clean(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail_and_clean(const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (int i = 0; i < g_nwritten; i++) unlink(g_written[i]);
  if (g_nwritten)
    unet_fatal("%s; removed the %d file(s) this run had written", msg, g_nwritten);
  unet_fatal("%s", msg); /* also removes the output folder if this run created it */
}

static void write_png_or_fail(const char *file, const uint8_t *px, int w, int h, int channels) {
  char err[1024];
  if (image_write_png(file, px, w, h, channels, err, sizeof err) != 0) fail_and_clean("%s: %s", file, err);
  snprintf(g_written[g_nwritten++], sizeof g_written[0], "%s", file);
}

int main(int argc, char **argv) {
  unet_set_progname("unet-predict");
  PredictOptions o;
  parse_args(argc, argv, &o);
  check_unique_stems(&o);
  /* a file size limit must become a write error we clean up after, not a kill */
  signal(SIGXFSZ, SIG_IGN);
  if (o.threads > 0) openblas_set_num_threads(o.threads);

  char err[1024];
  WeightsInfo wi;
  if (weights_read_info(o.weights, &wi, err, sizeof err) != 0) unet_fatal("--weights: %s", err);
  int classes = o.classes ? o.classes : wi.num_classes;
  int h = o.h, w = o.w;
  if (!o.size_given) {
    if (wi.height > 0) {
      h = wi.height, w = wi.width;
    } else {
      h = w = 160;
      unet_warn("%s does not record the size it was trained at (written by Keras?): predicting at 160x160; "
                "pass --size to choose",
                o.weights);
    }
  } else if (wi.height > 0 && (wi.height != h || wi.width != w)) {
    unet_info("note: %s was trained at %dx%d; predicting at %dx%d as --size asks", o.weights, wi.height, wi.width, h, w);
  }
  UNet m;
  if (unet_create(&m, h, w, classes, err, sizeof err) != 0) unet_fatal("--size: %s", err);
  if (weights_load_keras(&m, o.weights, err, sizeof err) != 0) unet_fatal("--weights: %s", err);
  if (unet_mkdir_output(o.out) != 0) unet_fatal("%s: cannot create: %s", o.out, strerror(errno));

  int count = o.count, batch = o.batch < count ? o.batch : count;
  unet_plan(&m, batch);
  size_t pix = (size_t)h * w;
  g_written = xcalloc((size_t)count * 2, sizeof *g_written, "written files");
  float *x = xmalloc(batch * pix * 3 * sizeof(float), "input batch");
  uint8_t *rgb = xmalloc((size_t)batch * pix * 3, "resized images");
  float *probs = xmalloc((size_t)(o.probs_path ? count : batch) * pix * classes * sizeof(float), "probabilities");
  uint8_t *ids = xmalloc(pix, "class ids");
  uint8_t *overlay = xmalloc(pix * 3, "overlay");
  for (int start = 0; start < count; start += batch) {
    int n = count - start < batch ? count - start : batch;
    for (int i = 0; i < n; i++) {
      const char *path = o.images[start + i];
      Image img;
      if (image_load_rgb(path, &img, err, sizeof err) != 0) fail_and_clean("%s: %s", path, err);
      /* exactly what unet-preprocess stores, so the network sees what it trained on */
      resize_bilinear_u8(img.pixels, img.height, img.width, 3, rgb + (size_t)i * pix * 3, h, w);
      image_free(&img);
    }
    for (size_t j = 0; j < (size_t)n * pix * 3; j++) x[j] = rgb[j];
    float *p = probs + (o.probs_path ? (size_t)start * pix * classes : 0);
    unet_predict(&m, x, n, p);
    for (int i = 0; i < n; i++) {
      char stem[512], file[4700];
      stem_of(o.images[start + i], stem, sizeof stem);
      argmax_classes(ids, p + (size_t)i * pix * classes, (long)pix, classes);
      snprintf(file, sizeof file, "%s/%s_mask.png", o.out, stem);
      write_png_or_fail(file, ids, w, h, 1);
      const uint8_t *src = rgb + (size_t)i * pix * 3;
      for (size_t j = 0; j < pix; j++) {
        uint8_t col[3];
        class_colour(ids[j], col);
        for (int k = 0; k < 3; k++) overlay[j * 3 + k] = (uint8_t)((src[j * 3 + k] + col[k] + 1) / 2);
      }
      snprintf(file, sizeof file, "%s/%s_overlay.png", o.out, stem);
      write_png_or_fail(file, overlay, w, h, 3);
    }
  }
  if (o.probs_path && probs_save(o.probs_path, probs, count, h, w, classes, err, sizeof err) != 0)
    fail_and_clean("%s", err);
  unet_info("wrote %d mask and %d overlay PNGs (%dx%d) to %s%s%s", count, count, h, w, o.out,
            o.probs_path ? " and probabilities to " : "", o.probs_path ? o.probs_path : "");
  xfree(x); xfree(rgb); xfree(probs); xfree(ids); xfree(overlay); xfree(g_written); xfree(o.images);
  unet_destroy(&m);
  return UNET_EXIT_OK;
}
