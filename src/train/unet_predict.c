/* unet_predict.c - `unet-predict --weights FILE --out DIR IMAGE...`: decode
 * any JPEG/PNG as unet-preprocess does, resize to the model size, run
 * inference (moving BatchNorm statistics) and write per image a class-id mask
 * PNG and a coloured overlay PNG; optionally all softmax probabilities. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/checkpoint.h"
#include "unet/image.h"
#include "unet/metrics.h"
#include "unet/model.h"
#include "unet/resize.h"
#include "unet/util.h"

extern void openblas_set_num_threads(int num_threads);

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-predict --weights FILE --out DIR [options] IMAGE...\n"
          "  --weights FILE   Keras .weights.h5 (best.weights.h5) or a checkpoint (last.ckpt.h5)\n"
          "  --out DIR        writes <stem>_mask.png (class ids) and <stem>_overlay.png per image\n"
          "  --size S|HxW     model input size (default 160)\n"
          "  --classes N      class count (default: read from the weights file)\n"
          "  --probs FILE.h5  also write softmax probabilities: dataset probs float32 [N,H,W,C]\n"
          "  --batch N        images per forward pass (default 8)\n"
          "  --threads N      OpenBLAS threads (default: all cores)\n");
}

static void stem_of(const char *path, char *out, size_t len) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(out, len, "%s", base);
  char *dot = strrchr(out, '.');
  if (dot && dot != out) *dot = 0;
}

static int write_probs(const char *path, const float *probs, int n, int h, int w, int c, char *err, size_t err_len) {
  char tmp[4200];
  unet_tmp_path(tmp, sizeof tmp, path);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) {
    snprintf(err, err_len, "%.900s: cannot create", tmp);
    return -1;
  }
  hsize_t dims[4] = {(hsize_t)n, (hsize_t)h, (hsize_t)w, (hsize_t)c};
  hid_t sp = H5Screate_simple(4, dims, NULL);
  hid_t d = H5Dcreate2(f, "probs", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = d >= 0 ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, probs) : -1;
  if (d >= 0) H5Dclose(d);
  H5Sclose(sp);
  if (H5Fclose(f) < 0) st = -1;
  if (st < 0 || unet_commit_file(tmp, path) != 0) {
    remove(tmp);
    snprintf(err, err_len, "%.900s: write failed", path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  unet_set_progname("unet-predict");
  const char *weights = NULL, *out = NULL, *probs_path = NULL;
  int h = 160, w = 160, classes = 0, batch = 8, threads = 0, first_image = argc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long n;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--weights") && v) { weights = v; i++; }
    else if (!strcmp(a, "--out") && v) { out = v; i++; }
    else if (!strcmp(a, "--probs") && v) { probs_path = v; i++; }
    else if (!strcmp(a, "--size") && v) {
      if (unet_parse_size(v, &h, &w) != 0) { unet_error("--size: bad size '%s' (S or HxW)", v); return 2; }
      i++;
    }
    else if ((!strcmp(a, "--classes") || !strcmp(a, "--batch") || !strcmp(a, "--threads")) && v) {
      if (unet_parse_int(v, &n) != 0 || n < 1) { unet_error("%s needs a positive integer", a); return 2; }
      if (!strcmp(a, "--classes")) classes = (int)n;
      else if (!strcmp(a, "--batch")) batch = (int)n;
      else threads = (int)n;
      i++;
    }
    else if (a[0] == '-' && a[1] == '-') { unet_error("unknown or incomplete option '%s' (see --help)", a); return 2; }
    else { first_image = i; break; }
  }
  if (!weights || !out || first_image >= argc) {
    usage(stderr);
    return 2;
  }
  if (threads > 0) openblas_set_num_threads(threads);
  char err[1024];
  if (classes == 0 && weights_num_classes(weights, &classes, err, sizeof err) != 0) unet_fatal("%s", err);
  UNet m;
  if (unet_create(&m, h, w, classes, err, sizeof err) != 0) unet_fatal("--size: %s", err);
  if (weights_load_keras(&m, weights, err, sizeof err) != 0) unet_fatal("%s", err);
  if (unet_mkdir_p(out) != 0) unet_fatal("%s: cannot create: %s", out, strerror(errno));

  int count = argc - first_image;
  if (batch > count) batch = count;
  unet_plan(&m, batch);
  size_t pix = (size_t)h * w;
  float *x = xmalloc(batch * pix * 3 * sizeof(float), "input batch");
  uint8_t *rgb = xmalloc((size_t)count * pix * 3, "resized images");
  float *probs = xmalloc((size_t)count * pix * classes * sizeof(float), "probabilities");
  uint8_t *ids = xmalloc(pix, "class ids");
  uint8_t *overlay = xmalloc(pix * 3, "overlay");
  /* decode everything first: a bad image stops us before any output exists */
  for (int i = 0; i < count; i++) {
    const char *path = argv[first_image + i];
    Image img;
    if (image_load_rgb(path, &img, err, sizeof err) != 0) unet_fatal("%s: %s", path, err);
    /* exactly what unet-preprocess stores, so the network sees what it trained on */
    resize_bilinear_u8(img.pixels, img.height, img.width, 3, rgb + i * pix * 3, h, w);
    image_free(&img);
  }
  int failures = 0;
  for (int start = 0; start < count; start += batch) {
    int n = count - start < batch ? count - start : batch;
    for (size_t j = 0; j < (size_t)n * pix * 3; j++) x[j] = rgb[(size_t)start * pix * 3 + j];
    float *p = probs + (size_t)start * pix * classes;
    unet_predict(&m, x, n, p);
    for (int i = 0; i < n; i++) {
      const char *path = argv[first_image + start + i];
      char stem[512], file[4096];
      stem_of(path, stem, sizeof stem);
      argmax_classes(ids, p + i * pix * classes, (long)pix, classes);
      snprintf(file, sizeof file, "%s/%s_mask.png", out, stem);
      if (image_write_png(file, ids, w, h, 1, err, sizeof err) != 0) { unet_error("%s: %s", file, err); failures++; }
      const uint8_t *src = rgb + (size_t)(start + i) * pix * 3;
      for (size_t j = 0; j < pix; j++) {
        uint8_t col[3];
        class_colour(ids[j], col);
        for (int k = 0; k < 3; k++) overlay[j * 3 + k] = (uint8_t)((src[j * 3 + k] + col[k] + 1) / 2);
      }
      snprintf(file, sizeof file, "%s/%s_overlay.png", out, stem);
      if (image_write_png(file, overlay, w, h, 3, err, sizeof err) != 0) { unet_error("%s: %s", file, err); failures++; }
    }
  }
  if (probs_path && write_probs(probs_path, probs, count, h, w, classes, err, sizeof err) != 0) {
    unet_error("%s", err);
    failures++;
  }
  if (!failures) unet_info("wrote %d mask and overlay PNGs to %s", count, out);
  xfree(x); xfree(rgb); xfree(probs); xfree(ids); xfree(overlay);
  unet_destroy(&m);
  return failures ? 1 : 0;
}
