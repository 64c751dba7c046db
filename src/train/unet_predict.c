/* unet_predict.c - `unet-predict --weights FILE --out DIR IMAGE|DIR...`: decode
 * any JPEG/PNG as unet-preprocess does, resize to the model size, run
 * inference (moving BatchNorm statistics) and write per image a class-id mask
 * PNG and a coloured overlay PNG, at the model size or (--original-size) at the
 * photo's own size; optionally all softmax probabilities.
 *
 * Any number of images (arguments, folders, --list FILE) in batches; under
 * mpirun the batches are dealt round-robin to the ranks (batch b on rank
 * b % P), one round of P batches at a time, with a progress line.
 *
 * All or nothing: every input is decoded once before anything is written (all
 * bad ones are named), the output folder is created only then, and if an
 * output cannot be written (a full disk) every rank removes the files this run
 * wrote and one message names the cause. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unet/comm.h"
#include "unet/image.h"
#include "unet/metrics.h"
#include "unet/model.h"
#include "unet/predict_inputs.h"
#include "unet/probs_file.h"
#include "unet/resize.h"
#include "unet/trainer.h"
#include "unet/util.h"
#include "unet/weights_info.h"
#include "unet/weights_keras.h"

/* --probs keeps all probabilities in rank 0's memory until the atomic write */
#define PROBS_MEMORY_LIMIT ((size_t)4 << 30)

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-predict --weights FILE --out DIR [options] IMAGE|DIR...\n"
          "       mpirun -np N unet-predict ... (the batches are spread over the ranks)\n"
          "  --weights FILE   Keras .weights.h5 (best.weights.h5) or a checkpoint (last.ckpt.h5)\n"
          "  --out DIR        writes <stem>_mask.png (class ids) and <stem>_overlay.png per image\n"
          "  --original-size  masks and overlays at each photo's own size (probabilities upsampled\n"
          "                   bilinearly, then argmax); default: the model size\n"
          "  --list FILE      also the images listed in FILE, one path per line (# comments)\n"
          "  --size S|HxW     model input size (default: the size the weights were trained at, as\n"
          "                   recorded in files this project writes; 160 for a file Keras wrote)\n"
          "  --classes N      class count (default: read from the weights file)\n"
          "  --probs FILE.h5  also write softmax probabilities at the model size: dataset probs\n"
          "                   float32 [N,H,W,C] in input order (held in memory: at most 4 GB)\n"
          "  --batch N        images per forward pass and rank (default 8)\n"
          "  --threads N      OpenBLAS threads per rank (default: the cores of the rank)\n"
          "  --tta flip       not Keras: average the logits of each image and its mirror image\n"
          "A folder argument means its image files (by extension, sorted, not recursive).\n"
          "Options and images may come in any order; after -- every argument is an image.\n"
          "Two images with the same file stem are refused (their outputs would collide).\n"
          "exit codes: 0 done, 1 error (nothing is left written), 2 bad command line\n");
}

typedef struct {
  const char *weights, *out, *probs_path;
  int h, w, size_given, classes, batch, threads, original_size, flip_tta;
  InputList inputs;
} PredictOptions;

/* An error every rank meets alike (same command line, same files): rank 0
 * says it once, every rank ends with the code. */
static void fail_all(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fail_all(int code, const char *fmt, ...) {
  if (comm_rank() == 0) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unet_error("%s", msg);
  }
  unet_remove_created_dirs();
  comm_finalize();
  exit(code);
}

static long need_positive(const char *opt, const char *v) {
  long n;
  if (!v || unet_parse_int(v, &n) != 0 || n < 1 || n > 1000000)
    unet_usage_error("%s needs a positive integer, got '%s'", opt, v ? v : "(nothing)");
  return n;
}

static void parse_args(int argc, char **argv, PredictOptions *o) {
  memset(o, 0, sizeof *o);
  o->batch = 8;
  int only_images = 0;
  const char **lists = xcalloc((size_t)argc, sizeof *lists, "list files"), **paths = xcalloc((size_t)argc, sizeof *paths, "paths");
  int nlists = 0, npaths = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (only_images || a[0] != '-' || !strcmp(a, "-")) {
      paths[npaths++] = a;
      continue;
    }
    if (!strcmp(a, "--")) { only_images = 1; continue; }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      if (comm_rank() == 0) usage(stdout);
      comm_finalize();
      exit(UNET_EXIT_OK);
    }
    if (!strcmp(a, "--original-size")) { o->original_size = 1; continue; }
    int takes_value = !strcmp(a, "--weights") || !strcmp(a, "--out") || !strcmp(a, "--probs") ||
                      !strcmp(a, "--size") || !strcmp(a, "--classes") || !strcmp(a, "--batch") ||
                      !strcmp(a, "--threads") || !strcmp(a, "--list") || !strcmp(a, "--tta");
    if (!takes_value) unet_usage_error("unknown option '%s'", a);
    if (!v) unet_usage_error("%s needs a value", a);
    i++;
    if (!strcmp(a, "--weights")) o->weights = v;
    else if (!strcmp(a, "--out")) o->out = v;
    else if (!strcmp(a, "--probs")) o->probs_path = v;
    else if (!strcmp(a, "--list")) lists[nlists++] = v;
    else if (!strcmp(a, "--tta")) {
      if (!strcmp(v, "flip")) o->flip_tta = 1;
      else if (strcmp(v, "none")) unet_usage_error("--tta: unknown '%s' (known: flip, none)", v);
    }
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
  if (npaths == 0 && nlists == 0) unet_usage_error("no input image given (IMAGE, a folder, or --list FILE)");
  char err[4096];
  for (int i = 0; i < npaths; i++)
    if (inputs_add_path(&o->inputs, paths[i], err, sizeof err) != 0) fail_all(UNET_EXIT_ERROR, "%s", err);
  for (int i = 0; i < nlists; i++)
    if (inputs_add_list_file(&o->inputs, lists[i], err, sizeof err) != 0) fail_all(UNET_EXIT_ERROR, "%s", err);
  xfree(lists);
  xfree(paths);
  /* outputs are named by stem: a collision is refused before anything is done */
  if (inputs_check_stems(&o->inputs, err, sizeof err) != 0) unet_usage_error("%s", err);
}

/* ---- all or nothing: every file this rank writes is remembered ------------ */
typedef struct {
  char (*paths)[INPUT_OUTPUT_PATH_MAX];
  int count, cap;
  char failure[INPUT_OUTPUT_PATH_MAX + 1024 + 8]; /* the first write error of this rank: "path: reason" */
} Written;

static void write_png(Written *wr, const char *file, const uint8_t *px, int w, int h, int channels) {
  if (wr->failure[0]) return;
  char err[1024];
  if (image_write_png(file, px, w, h, channels, err, sizeof err) != 0) {
    snprintf(wr->failure, sizeof wr->failure, "%s: %s", file, err);
    return;
  }
  snprintf(wr->paths[wr->count++], sizeof wr->paths[0], "%s", file);
}

/* Every rank learns whether any failed; if so all remove their files, the
 * failing rank(s) say why in one line each, and every rank ends with 1. */
static void agree_or_clean(Written *wr) {
  if (!comm_allreduce_max_int(wr->failure[0] ? 1 : 0)) return;
  for (int i = 0; i < wr->count; i++) unlink(wr->paths[i]);
  int64_t removed = wr->count;
  comm_allreduce_sum_i64(&removed, 1);
  if (wr->failure[0])
    unet_error("%s; nothing is left: removed the %lld file(s) this run had written", wr->failure, (long long)removed);
  comm_barrier(); /* every file is gone before the folder goes */
  unet_remove_created_dirs();
  comm_finalize();
  exit(UNET_EXIT_ERROR);
}

/* ---- per image -------------------------------------------------------------- */
typedef struct {
  int h, w, classes, original_size;
  const char *out;
  uint8_t *ids, *overlay; /* scratch, large enough for the largest output */
  size_t scratch_px;
} OutputCtx;

static void ensure_scratch(OutputCtx *c, size_t px) {
  if (px <= c->scratch_px) return;
  xfree(c->ids);
  xfree(c->overlay);
  c->ids = xmalloc(px, "class ids");
  c->overlay = xmalloc(px * 3, "overlay");
  c->scratch_px = px;
}

/* Mask and overlay of one image: probs [h, w, C] of the model, the resized
 * image the model saw (rgb_model), and the photo itself. */
static void write_outputs(OutputCtx *c, Written *wr, const char *path, const float *probs, const uint8_t *rgb_model,
                          const Image *photo) {
  int oh = c->original_size ? photo->height : c->h, ow = c->original_size ? photo->width : c->w;
  const uint8_t *base = c->original_size ? photo->pixels : rgb_model;
  size_t px = (size_t)oh * ow;
  ensure_scratch(c, px);
  if (c->original_size)
    resize_bilinear_argmax(probs, c->h, c->w, c->classes, c->ids, oh, ow);
  else
    argmax_classes(c->ids, probs, (long)px, c->classes);
  for (size_t j = 0; j < px; j++) {
    uint8_t col[3];
    class_colour(c->ids[j], col);
    for (int k = 0; k < 3; k++) c->overlay[j * 3 + k] = (uint8_t)((base[j * 3 + k] + col[k] + 1) / 2);
  }
  char stem[INPUT_STEM_MAX], file[INPUT_OUTPUT_PATH_MAX];
  input_stem(path, stem, sizeof stem);
  snprintf(file, sizeof file, "%s/%s_mask.png", c->out, stem);
  write_png(wr, file, c->ids, ow, oh, 1);
  snprintf(file, sizeof file, "%s/%s_overlay.png", c->out, stem);
  write_png(wr, file, c->overlay, ow, oh, 3);
}

/* Phase 1: every input decodes (image i on rank i % P); all bad ones are named. */
static void check_inputs(const InputList *in) {
  int rank = comm_rank(), P = comm_size();
  int64_t bad = 0;
  char err[1024];
  for (int i = rank; i < in->count; i += P) {
    Image img;
    if (image_load_rgb(in->paths[i], &img, err, sizeof err) != 0) {
      unet_error("%s: %s", in->paths[i], err);
      bad++;
      continue;
    }
    image_free(&img);
  }
  comm_allreduce_sum_i64(&bad, 1);
  if (bad) fail_all(UNET_EXIT_ERROR, "%lld of %d input image(s) cannot be decoded (named above): nothing written", (long long)bad, in->count);
}

int main(int argc, char **argv) {
  unet_set_progname("unet-predict");
  /* a file size limit must become a write error we clean up after, not a kill */
  signal(SIGXFSZ, SIG_IGN);
  comm_init(&argc, &argv);
  int rank = comm_rank(), P = comm_size();
  unet_set_usage_exit(comm_finalize, rank != 0);
  PredictOptions o;
  parse_args(argc, argv, &o);
  unet_set_threads(o.threads > 0 ? o.threads : default_threads_per_rank(comm_local_size()));

  char err[1024];
  WeightsInfo wi;
  if (weights_read_info(o.weights, &wi, err, sizeof err) != 0) fail_all(UNET_EXIT_ERROR, "--weights: %s", err);
  int classes = o.classes ? o.classes : wi.num_classes;
  int h = o.h, w = o.w;
  if (!o.size_given) {
    if (wi.height > 0) {
      h = wi.height, w = wi.width;
    } else {
      h = w = 160;
      if (rank == 0)
        unet_warn("%s does not record the size it was trained at (written by Keras?): predicting at 160x160; "
                  "pass --size to choose",
                  o.weights);
    }
  } else if (wi.height > 0 && (wi.height != h || wi.width != w) && rank == 0) {
    unet_info("note: %s was trained at %dx%d; predicting at %dx%d as --size asks", o.weights, wi.height, wi.width, h, w);
  }
  UNet m;
  if (unet_create(&m, h, w, classes, err, sizeof err) != 0) fail_all(UNET_EXIT_ERROR, "--size: %s", err);
  if (weights_load_keras(&m, o.weights, err, sizeof err) != 0) fail_all(UNET_EXIT_ERROR, "--weights: %s", err);
  const int count = o.inputs.count;
  const size_t pix = (size_t)h * w;
  if (o.probs_path && (size_t)count * pix * classes * sizeof(float) > PROBS_MEMORY_LIMIT)
    fail_all(UNET_EXIT_ERROR, "--probs: %d images at %dx%dx%d need %.1f GB in memory (at most %.0f GB): predict fewer "
             "images per run", count, h, w, classes, (double)count * pix * classes * 4 / (1 << 30),
             (double)PROBS_MEMORY_LIMIT / (1 << 30));

  double t0 = unet_now();
  check_inputs(&o.inputs);
  if (rank == 0 && unet_mkdir_output(o.out) != 0) unet_fatal("%s: cannot create: %s", o.out, strerror(errno));
  comm_barrier();

  int batch = o.batch < count ? o.batch : count;
  unet_plan(&m, batch);
  int nbatches = (count + batch - 1) / batch, rounds = (nbatches + P - 1) / P;
  Written wr = {0};
  wr.cap = 2 * batch * rounds;
  wr.paths = xcalloc((size_t)wr.cap + 1, sizeof *wr.paths, "written files");
  float *x = xmalloc((size_t)batch * pix * 3 * sizeof(float), "input batch");
  uint8_t *rgb = xmalloc((size_t)batch * pix * 3, "resized images");
  float *probs = xmalloc((size_t)batch * pix * classes * sizeof(float), "probabilities");
  float *x_mirror = o.flip_tta ? xmalloc((size_t)batch * pix * 3 * sizeof(float), "mirrored input batch") : NULL;
  float *tta_logits = o.flip_tta ? xmalloc((size_t)batch * pix * classes * sizeof(float), "averaged logits") : NULL;
  float *all_probs = o.probs_path && rank == 0 ? xmalloc((size_t)count * pix * classes * sizeof(float), "all probabilities") : NULL;
  Image *photos = xcalloc((size_t)batch, sizeof *photos, "decoded photos");
  OutputCtx oc = {h, w, classes, o.original_size, o.out, NULL, NULL, 0};
  UnetProgress prog;
  if (rank == 0) unet_progress_start(&prog, "unet-predict: images", count);
  for (int t = 0; t < rounds; t++) {
    int b = t * P + rank, first = b * batch;
    int n = b < nbatches ? (count - first < batch ? count - first : batch) : 0;
    for (int i = 0; i < n; i++) {
      const char *path = o.inputs.paths[first + i];
      /* checked above; a file changed since then is an error like any other */
      if (image_load_rgb(path, &photos[i], err, sizeof err) != 0) unet_fatal("%s: %s", path, err);
      /* exactly what unet-preprocess stores, so the network sees what it trained on */
      resize_bilinear_u8(photos[i].pixels, photos[i].height, photos[i].width, 3, rgb + (size_t)i * pix * 3, h, w);
    }
    unet_bytes_to_floats(x, rgb, (size_t)n * pix * 3);
    if (n && o.flip_tta) unet_predict_flip_average(&m, x, n, probs, x_mirror, tta_logits);
    else if (n) unet_predict(&m, x, n, probs);
    for (int i = 0; i < n; i++) {
      write_outputs(&oc, &wr, o.inputs.paths[first + i], probs + (size_t)i * pix * classes, rgb + (size_t)i * pix * 3,
                    &photos[i]);
      image_free(&photos[i]);
    }
    /* the round's batches are consecutive images, in rank order */
    if (o.probs_path)
      comm_gather_floats(probs, (int)((size_t)n * pix * classes),
                         all_probs ? all_probs + (size_t)t * P * batch * pix * classes : NULL, 0);
    agree_or_clean(&wr);
    if (rank == 0) {
      long done = (long)(t + 1) * P * batch;
      unet_progress_update(&prog, done < count ? done : count);
    }
  }
  if (rank == 0 && all_probs && probs_save(o.probs_path, all_probs, count, h, w, classes, err, sizeof err) != 0)
    snprintf(wr.failure, sizeof wr.failure, "%s", err);
  agree_or_clean(&wr);
  if (rank == 0) {
    unet_progress_end(&prog, count);
    double s = unet_now() - t0;
    char size[64];
    if (o.original_size) snprintf(size, sizeof size, "each photo's own size");
    else snprintf(size, sizeof size, "%dx%d", h, w);
    unet_info("wrote %d mask and %d overlay PNGs (%s) to %s%s%s in %.1f s (%.1f images/s, %d rank(s))", count, count,
              size, o.out, o.probs_path ? " and probabilities to " : "", o.probs_path ? o.probs_path : "", s,
              count / (s > 0 ? s : 1), P);
  }
  xfree(x); xfree(x_mirror); xfree(tta_logits); xfree(rgb); xfree(probs); xfree(all_probs); xfree(photos); xfree(wr.paths); xfree(oc.ids); xfree(oc.overlay);
  inputs_free(&o.inputs);
  unet_destroy(&m);
  comm_finalize();
  return UNET_EXIT_OK;
}
