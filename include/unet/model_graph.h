/* model_graph.h - the inference computation of a built UNet as a flat list of
 * operations over numbered tensors, in execution order: what unet_predict
 * computes (model_step.c's forward pass with the moving BatchNorm statistics,
 * then softmax), for exporters that must not re-derive the wiring.
 *
 * Tensors are NHWC; tensor 0 is the input image [N,H,W,3] (float 0..255) and
 * op i writes tensor i + 1. Variables are indices into UNet.vars, whose data
 * (unet_var_data) is in Keras layout. The up blocks appear as the model runs
 * them: upsample(BN2(t2) + conv1x1(prev)), equal per pixel to Keras'
 * upsample(BN2(t2)) + conv1x1(upsample(prev)). */
#ifndef UNET_MODEL_GRAPH_H
#define UNET_MODEL_GRAPH_H
#include "unet/model.h"

typedef enum {
  GOP_CONV,           /* vars: kernel (kh,kw,cin,cout), bias (cout) */
  GOP_DEPTHWISE,      /* vars: depthwise kernel (3,3,C,1); no bias */
  GOP_CONV_TRANSPOSE, /* vars: kernel (3,3,cout,cin), bias (cout); stride 1, same */
  GOP_BATCHNORM,      /* vars: gamma, beta, moving_mean, moving_variance; inference */
  GOP_RELU,
  GOP_MAXPOOL,        /* kernel x kernel window, stride; padding never wins */
  GOP_ADD,            /* input[0] + input[1] */
  GOP_UPSAMPLE2X,     /* nearest, each pixel repeated 2x2 */
  GOP_SOFTMAX         /* over channels */
} GraphOpKind;

#define GRAPH_NAME_LEN (UNET_NAME_LEN + 16)

typedef struct {
  GraphOpKind kind;
  char name[GRAPH_NAME_LEN]; /* Keras layer name (+ "/depthwise", "/pointwise"), or kind_N */
  int input[2];              /* tensor ids; input[1] is -1 except for GOP_ADD */
  int output;                /* tensor id */
  int cin, cout;             /* channels in and out */
  int kernel, stride;        /* conv / pool window (1 for elementwise ops) */
  int pads[4];               /* TensorFlow 'same' padding: top, left, bottom, right */
  int vars[4];               /* see GraphOpKind; -1 unused */
} GraphOp;

typedef struct {
  int num_ops;
  GraphOp *ops;
  int num_tensors; /* num_ops + 1 */
  float bn_epsilon;
} ModelGraph;

/* Describes m at its built size (padding depends on it; for any size that is a
 * multiple of 16 every stride-2 input is even, so the pads are the same).
 * Free with unet_graph_free. */
void unet_inference_graph(const UNet *m, ModelGraph *g);
void unet_graph_free(ModelGraph *g);
const char *unet_graph_op_kind_name(GraphOpKind k);

#endif
