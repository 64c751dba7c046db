/* onnx_export.h - the U-Net in inference mode as an ONNX model (opset 13),
 * encoded with protobuf-c from the onnx.proto of Debian's libonnx-dev.
 *
 * One input "image" [N,H,W,3], RGB, NHWC, values 0..255 as float32 (or
 * uint8, cast to float inside the model), and one output "probs" [N,H,W,C],
 * the softmax probabilities, float32. Inside, the graph is NCHW (one
 * Transpose at each end) and follows unet_inference_graph op for op;
 * BatchNorm is exported as BatchNormalization nodes with the moving
 * statistics (not folded), so the initializers are the weights file's
 * values. Metadata (metadata_props): classes, input_size, input_type,
 * layout, output, batchnorm, source_weights, tool_version. */
#ifndef UNET_ONNX_EXPORT_H
#define UNET_ONNX_EXPORT_H
#include <stddef.h>

#include "unet/model.h"

#define UNET_ONNX_OPSET 13
#define UNET_ONNX_IR_VERSION 7 /* the IR version of opset 13 (ONNX 1.8) */

typedef enum { ONNX_INPUT_FLOAT, ONNX_INPUT_UINT8 } OnnxInputType;

typedef struct {
  int dynamic;                /* N, H and W symbolic (H, W multiples of 16); else H, W = the model's */
  OnnxInputType input;
  const char *source_weights; /* recorded in the metadata */
} OnnxExportOptions;

/* Serialises m into a malloc'ed buffer (free with free()). 0 ok, -1 with a reason. */
int onnx_export_bytes(const UNet *m, const OnnxExportOptions *o, unsigned char **out, size_t *len, char *err,
                      size_t err_len);
/* The same, written to path atomically (path.tmp.<pid>, then rename). */
int onnx_export_file(const UNet *m, const OnnxExportOptions *o, const char *path, char *err, size_t err_len);

#endif
