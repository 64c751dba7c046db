/* unet_export.c - `unet-export --weights W.h5 --out model.onnx`: the network
 * in inference mode (moving BatchNorm statistics) as an ONNX model, for ONNX
 * Runtime and every other ONNX consumer (onnx_export.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/model.h"
#include "unet/onnx_export.h"
#include "unet/trainer.h"
#include "unet/util.h"
#include "unet/weights_keras.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-export --weights FILE --out MODEL.onnx [options]\n"
          "  --weights FILE      Keras .weights.h5 (best.weights.h5) or a checkpoint (last.ckpt.h5)\n"
          "  --out FILE          the ONNX model (opset %d), written atomically\n"
          "  --size S|HxW        fixed input height and width (default 160x160; multiples of 16)\n"
          "  --dynamic           leave N, H and W free (H and W multiples of 16); not with --size\n"
          "  --input float|uint8 input element type (default float: float32 0..255; uint8: the same as bytes)\n"
          "  --classes N         class count (default: read from the weights file)\n"
          "The model: input \"image\" [N,H,W,3] RGB NHWC 0..255, output \"probs\" [N,H,W,C] softmax, float32.\n",
          UNET_ONNX_OPSET);
}

int main(int argc, char **argv) {
  unet_set_progname("unet-export");
  const char *weights = NULL, *out = NULL;
  int h = 160, w = 160, classes = 0, have_size = 0;
  OnnxExportOptions o = {.dynamic = 0, .input = ONNX_INPUT_FLOAT};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long n;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return UNET_EXIT_OK; }
    else if (!strcmp(a, "--weights") && v) { weights = v; i++; }
    else if (!strcmp(a, "--out") && v) { out = v; i++; }
    else if (!strcmp(a, "--dynamic")) o.dynamic = 1;
    else if (!strcmp(a, "--size") && v) {
      if (unet_parse_size(v, &h, &w) != 0 || h % 16 || w % 16) {
        unet_error("--size: '%s' is not S or HxW with multiples of 16 (the model halves the image 4 times)", v);
        return UNET_EXIT_USAGE;
      }
      have_size = 1;
      i++;
    }
    else if (!strcmp(a, "--input") && v) {
      if (!strcmp(v, "float")) o.input = ONNX_INPUT_FLOAT;
      else if (!strcmp(v, "uint8")) o.input = ONNX_INPUT_UINT8;
      else { unet_error("--input: '%s' is neither float nor uint8", v); return UNET_EXIT_USAGE; }
      i++;
    }
    else if (!strcmp(a, "--classes") && v) {
      if (unet_parse_int(v, &n) != 0 || n < 2 || n > 255) { unet_error("--classes needs 2..255"); return UNET_EXIT_USAGE; }
      classes = (int)n;
      i++;
    }
    else { unet_error("unknown or incomplete option '%s' (see --help)", a); return UNET_EXIT_USAGE; }
  }
  if (!weights || !out) {
    usage(stderr);
    return UNET_EXIT_USAGE;
  }
  if (have_size && o.dynamic) {
    unet_error("--size and --dynamic exclude each other: --dynamic leaves H and W free");
    return UNET_EXIT_USAGE;
  }
  char err[1024];
  if (classes == 0 && weights_num_classes(weights, &classes, err, sizeof err) != 0) unet_fatal("%s", err);
  UNet m;
  if (unet_create(&m, h, w, classes, err, sizeof err) != 0) unet_fatal("--size: %s", err);
  if (weights_load_keras(&m, weights, err, sizeof err) != 0) unet_fatal("%s", err);
  char source[PATH_MAX];
  o.source_weights = realpath(weights, source) ? source : weights;
  if (onnx_export_file(&m, &o, out, err, sizeof err) != 0) unet_fatal("%s", err);
  if (o.dynamic)
    unet_info("wrote %s: image [N,H,W,3] %s -> probs [N,H,W,%d] (H, W multiples of 16), opset %d", out,
              o.input == ONNX_INPUT_UINT8 ? "uint8" : "float32", classes, UNET_ONNX_OPSET);
  else
    unet_info("wrote %s: image [N,%d,%d,3] %s -> probs [N,%d,%d,%d], opset %d", out, h, w,
              o.input == ONNX_INPUT_UINT8 ? "uint8" : "float32", h, w, classes, UNET_ONNX_OPSET);
  unet_destroy(&m);
  return UNET_EXIT_OK;
}
