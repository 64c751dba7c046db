/* onnx_export.c - unet_inference_graph translated to ONNX nodes and packed
 * with protobuf-c (onnx.pb-c.c is generated at build time by protoc-c from
 * /usr/include/onnx/onnx.proto). Every message, string and array of the model
 * lives in one arena released after packing.
 *
 * Op mapping (NCHW inside): conv -> Conv (kernel (kh,kw,cin,cout) -> OIHW);
 * depthwise -> Conv with group = C (kernel (3,3,C,1) -> [C,1,3,3]);
 * conv_transpose -> ConvTranspose (Keras (kh,kw,out,in) -> ONNX [in,out,kh,kw],
 * which is exactly TensorFlow's conv2d_transpose); batchnorm ->
 * BatchNormalization; maxpool -> MaxPool (ONNX pads never win, as TF's);
 * upsample -> Resize nearest, asymmetric, floor, scales (1,1,2,2) (each pixel
 * repeated 2x2); softmax -> Softmax over the channel axis after the final
 * Transpose to NHWC. 'same' padding is written as explicit pads. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "unet/model_graph.h"
#include "unet/onnx_export.h"
#include "unet/util.h"

/* ---- arena ---------------------------------------------------------------- */

typedef struct Block {
  struct Block *next;
  max_align_t data[];
} Block;

typedef struct {
  Block *head;
} Arena;

static void *arena_alloc(Arena *a, size_t bytes) {
  Block *b = xcalloc(1, sizeof(Block) + bytes, "ONNX model message");
  b->next = a->head;
  a->head = b;
  return b->data;
}

static void arena_free(Arena *a) {
  while (a->head) {
    Block *next = a->head->next;
    xfree(a->head);
    a->head = next;
  }
}

static char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *arena_printf(Arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* ---- graph under construction --------------------------------------------- */

typedef struct {
  Arena arena;
  const UNet *m;
  Onnx__GraphProto *graph;
  size_t cap_nodes, cap_inits;
} Builder;

static const float *var_data(const UNet *m, int var) {
  const ModelVar *v = &m->vars[var];
  return (v->trainable ? m->params : m->state) + v->offset;
}

static const char *role_name(VarRole r) {
  switch (r) {
  case VAR_KERNEL: return "kernel";
  case VAR_BIAS: return "bias";
  case VAR_DEPTHWISE: return "depthwise_kernel";
  case VAR_POINTWISE: return "pointwise_kernel";
  case VAR_GAMMA: return "gamma";
  case VAR_BETA: return "beta";
  case VAR_MOVING_MEAN: return "moving_mean";
  case VAR_MOVING_VARIANCE: return "moving_variance";
  }
  return "var";
}

static Onnx__NodeProto *add_node(Builder *b, const char *op_type, const char *name, int n_in, const char *const *in,
                                 const char *out) {
  Onnx__GraphProto *g = b->graph;
  if (g->n_node == b->cap_nodes) unet_fatal("internal: ONNX node table full at %s", name);
  Onnx__NodeProto *n = arena_alloc(&b->arena, sizeof *n);
  onnx__node_proto__init(n);
  n->op_type = (char *)op_type;
  n->name = arena_printf(&b->arena, "%s", name);
  n->n_input = (size_t)n_in;
  n->input = arena_alloc(&b->arena, (size_t)n_in * sizeof(char *));
  for (int i = 0; i < n_in; i++) n->input[i] = arena_printf(&b->arena, "%s", in[i]);
  n->n_output = 1;
  n->output = arena_alloc(&b->arena, sizeof(char *));
  n->output[0] = arena_printf(&b->arena, "%s", out);
  n->attribute = arena_alloc(&b->arena, 8 * sizeof(Onnx__AttributeProto *));
  g->node[g->n_node++] = n;
  return n;
}

static Onnx__AttributeProto *add_attr(Builder *b, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
  if (n->n_attribute == 8) unet_fatal("internal: too many ONNX attributes on %s", n->name);
  Onnx__AttributeProto *a = arena_alloc(&b->arena, sizeof *a);
  onnx__attribute_proto__init(a);
  a->name = (char *)name;
  a->has_type = 1;
  a->type = type;
  n->attribute[n->n_attribute++] = a;
  return a;
}

static void attr_int(Builder *b, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = add_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  a->has_i = 1;
  a->i = v;
}

static void attr_float(Builder *b, Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a = add_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  a->has_f = 1;
  a->f = v;
}

static void attr_string(Builder *b, Onnx__NodeProto *n, const char *name, const char *v) {
  Onnx__AttributeProto *a = add_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  a->has_s = 1;
  a->s.data = (uint8_t *)v;
  a->s.len = strlen(v);
}

static void attr_ints(Builder *b, Onnx__NodeProto *n, const char *name, int count, const int *v) {
  Onnx__AttributeProto *a = add_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  a->n_ints = (size_t)count;
  a->ints = arena_alloc(&b->arena, (size_t)count * sizeof(int64_t));
  for (int i = 0; i < count; i++) a->ints[i] = v[i];
}

/* A float32 initializer; returns its data for the caller to fill. */
static float *add_initializer(Builder *b, const char *name, int ndim, const int *dims) {
  Onnx__GraphProto *g = b->graph;
  if (g->n_initializer == b->cap_inits) unet_fatal("internal: ONNX initializer table full at %s", name);
  Onnx__TensorProto *t = arena_alloc(&b->arena, sizeof *t);
  onnx__tensor_proto__init(t);
  t->name = arena_printf(&b->arena, "%s", name);
  t->has_data_type = 1;
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  t->n_dims = (size_t)ndim;
  t->dims = arena_alloc(&b->arena, (size_t)ndim * sizeof(int64_t));
  size_t count = 1;
  for (int i = 0; i < ndim; i++) {
    t->dims[i] = dims[i];
    count *= (size_t)dims[i];
  }
  /* raw_data is little-endian float32: the in-memory layout on the x86-64 and
   * arm64 machines this builds for */
  t->has_raw_data = 1;
  t->raw_data.len = count * sizeof(float);
  t->raw_data.data = arena_alloc(&b->arena, t->raw_data.len);
  g->initializer[g->n_initializer++] = t;
  return (float *)t->raw_data.data;
}

/* The variable as an initializer named "<layer>/<role>". 1-d variables are
 * copied; a Keras kernel (kh, kw, a, c) becomes ONNX [c, a, kh, kw]: Conv's
 * OIHW from (kh, kw, cin, cout), and ConvTranspose's [in, out, kh, kw] from
 * Keras' (kh, kw, out, in). A depthwise kernel (3, 3, C, 1) becomes
 * [C, 1, 3, 3] (Conv with group = C). */
static const char *init_var(Builder *b, int var) {
  const ModelVar *v = &b->m->vars[var];
  const char *name = arena_printf(&b->arena, "%s/%s", v->layer, role_name(v->role));
  const float *src = var_data(b->m, var);
  if (v->ndim == 1) {
    float *dst = add_initializer(b, name, 1, v->shape);
    memcpy(dst, src, v->size * sizeof(float));
    return name;
  }
  const int kh = v->shape[0], kw = v->shape[1], a = v->shape[2], c = v->shape[3];
  const int depthwise = v->role == VAR_DEPTHWISE;
  int dims[4] = {depthwise ? a : c, depthwise ? 1 : a, kh, kw};
  float *dst = add_initializer(b, name, 4, dims);
  for (int y = 0; y < kh; y++)
    for (int x = 0; x < kw; x++)
      for (int i = 0; i < a; i++)
        for (int o = 0; o < c; o++) {
          size_t outer = depthwise ? (size_t)i : (size_t)o * a + i;
          dst[(outer * kh + y) * kw + x] = src[(((size_t)y * kw + x) * a + i) * c + o];
        }
  return name;
}

static Onnx__ValueInfoProto *value_info(Builder *b, const char *name, int elem_type, const char *const dim_param[4],
                                        const int dim_value[4]) {
  Arena *a = &b->arena;
  Onnx__TensorShapeProto *shape = arena_alloc(a, sizeof *shape);
  onnx__tensor_shape_proto__init(shape);
  shape->n_dim = 4;
  shape->dim = arena_alloc(a, 4 * sizeof(Onnx__TensorShapeProto__Dimension *));
  for (int i = 0; i < 4; i++) {
    Onnx__TensorShapeProto__Dimension *d = arena_alloc(a, sizeof *d);
    onnx__tensor_shape_proto__dimension__init(d);
    if (dim_param[i]) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = (char *)dim_param[i];
    } else {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = dim_value[i];
    }
    shape->dim[i] = d;
  }
  Onnx__TypeProto__Tensor *tt = arena_alloc(a, sizeof *tt);
  onnx__type_proto__tensor__init(tt);
  tt->has_elem_type = 1;
  tt->elem_type = elem_type;
  tt->shape = shape;
  Onnx__TypeProto *type = arena_alloc(a, sizeof *type);
  onnx__type_proto__init(type);
  type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  type->tensor_type = tt;
  Onnx__ValueInfoProto *vi = arena_alloc(a, sizeof *vi);
  onnx__value_info_proto__init(vi);
  vi->name = (char *)name;
  vi->type = type;
  return vi;
}

/* ---- translation -------------------------------------------------------------- */

static void pads_attr(Builder *b, Onnx__NodeProto *n, const GraphOp *op) {
  /* ONNX order: [top, left, bottom, right] = x1_begin, x2_begin, x1_end, x2_end */
  attr_ints(b, n, "pads", 4, op->pads);
}

static void translate_op(Builder *b, const GraphOp *op, const char *const *tensor) {
  const char *out = tensor[op->output];
  const char *in0 = tensor[op->input[0]];
  int k2[2] = {op->kernel, op->kernel}, s2[2] = {op->stride, op->stride};
  Onnx__NodeProto *n;
  switch (op->kind) {
  case GOP_CONV:
  case GOP_DEPTHWISE:
  case GOP_CONV_TRANSPOSE: {
    int ct = op->kind == GOP_CONV_TRANSPOSE;
    const char *in[3] = {in0, init_var(b, op->vars[0]), op->vars[1] >= 0 ? init_var(b, op->vars[1]) : NULL};
    n = add_node(b, ct ? "ConvTranspose" : "Conv", op->name, in[2] ? 3 : 2, in, out);
    attr_ints(b, n, "kernel_shape", 2, k2);
    attr_ints(b, n, "strides", 2, s2);
    pads_attr(b, n, op);
    if (op->kind == GOP_DEPTHWISE) attr_int(b, n, "group", op->cin);
    break;
  }
  case GOP_BATCHNORM: {
    const char *in[5] = {in0, init_var(b, op->vars[0]), init_var(b, op->vars[1]), init_var(b, op->vars[2]),
                         init_var(b, op->vars[3])};
    n = add_node(b, "BatchNormalization", op->name, 5, in, out);
    attr_float(b, n, "epsilon", b->m->bn_epsilon);
    break;
  }
  case GOP_RELU: add_node(b, "Relu", op->name, 1, &in0, out); break;
  case GOP_MAXPOOL:
    n = add_node(b, "MaxPool", op->name, 1, &in0, out);
    attr_ints(b, n, "kernel_shape", 2, k2);
    attr_ints(b, n, "strides", 2, s2);
    pads_attr(b, n, op);
    break;
  case GOP_ADD: {
    const char *in[2] = {in0, tensor[op->input[1]]};
    add_node(b, "Add", op->name, 2, in, out);
    break;
  }
  case GOP_UPSAMPLE2X: {
    const char *in[3] = {in0, "", "upsample_scales"}; /* roi unused */
    n = add_node(b, "Resize", op->name, 3, in, out);
    attr_string(b, n, "mode", "nearest");
    attr_string(b, n, "coordinate_transformation_mode", "asymmetric");
    attr_string(b, n, "nearest_mode", "floor");
    break;
  }
  case GOP_SOFTMAX: {
    /* NCHW logits -> NHWC, then softmax over the last (channel) axis */
    static const int to_nhwc[4] = {0, 2, 3, 1};
    const char *nhwc = arena_printf(&b->arena, "%s_nhwc", in0);
    n = add_node(b, "Transpose", "to_nhwc", 1, &in0, nhwc);
    attr_ints(b, n, "perm", 4, to_nhwc);
    n = add_node(b, "Softmax", op->name, 1, &nhwc, out);
    attr_int(b, n, "axis", 3);
    break;
  }
  }
}

static void add_metadata(Builder *b, Onnx__ModelProto *model, const OnnxExportOptions *o) {
  const UNet *m = b->m;
  const char *kv[][2] = {
      {"classes", arena_printf(&b->arena, "%d", m->num_classes)},
      {"input_size", o->dynamic ? "dynamic: N, H and W free, H and W multiples of 16"
                                : arena_printf(&b->arena, "%dx%d", m->height, m->width)},
      {"input_type", o->input == ONNX_INPUT_UINT8 ? "uint8" : "float32"},
      {"layout", "image [N,H,W,3] RGB values 0..255 (NHWC); probs [N,H,W,C]"},
      {"output", "softmax probabilities over the classes, float32"},
      {"batchnorm", "BatchNormalization nodes with the moving statistics (not folded)"},
      {"source_weights", o->source_weights ? o->source_weights : ""},
      {"tool_version", "unet-export " UNET_VERSION},
  };
  size_t n = sizeof kv / sizeof kv[0];
  model->n_metadata_props = n;
  model->metadata_props = arena_alloc(&b->arena, n * sizeof(Onnx__StringStringEntryProto *));
  for (size_t i = 0; i < n; i++) {
    Onnx__StringStringEntryProto *e = arena_alloc(&b->arena, sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)kv[i][0];
    e->value = (char *)kv[i][1];
    model->metadata_props[i] = e;
  }
}

int onnx_export_bytes(const UNet *m, const OnnxExportOptions *o, unsigned char **out, size_t *len, char *err,
                      size_t err_len) {
  *out = NULL;
  *len = 0;
  if (o->dynamic && (m->height % 16 || m->width % 16)) {
    snprintf(err, err_len, "model size %dx%d: a dynamic export needs multiples of 16", m->height, m->width);
    return -1;
  }
  ModelGraph mg;
  unet_inference_graph(m, &mg);
  Builder b = {.m = m};
  b.cap_nodes = (size_t)mg.num_ops + 8;
  b.cap_inits = (size_t)mg.num_ops * 5 + 8;

  Onnx__GraphProto *g = arena_alloc(&b.arena, sizeof *g);
  onnx__graph_proto__init(g);
  b.graph = g;
  g->name = "unet";
  g->node = arena_alloc(&b.arena, b.cap_nodes * sizeof(Onnx__NodeProto *));
  g->initializer = arena_alloc(&b.arena, b.cap_inits * sizeof(Onnx__TensorProto *));

  /* tensor names: the producing op's name; 0 is the image in NCHW float */
  const char **tensor = arena_alloc(&b.arena, (size_t)mg.num_tensors * sizeof(char *));
  tensor[0] = "image_nchw";
  for (int i = 0; i < mg.num_ops; i++) tensor[mg.ops[i].output] = mg.ops[i].name;
  tensor[mg.ops[mg.num_ops - 1].output] = "probs";

  const char *const dyn[4] = {"N", o->dynamic ? "H" : NULL, o->dynamic ? "W" : NULL, NULL};
  int in_dims[4] = {0, m->height, m->width, 3}, out_dims[4] = {0, m->height, m->width, m->num_classes};
  int elem = o->input == ONNX_INPUT_UINT8 ? ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  g->n_input = 1;
  g->input = arena_alloc(&b.arena, sizeof(Onnx__ValueInfoProto *));
  g->input[0] = value_info(&b, "image", elem, dyn, in_dims);
  g->input[0]->doc_string = "RGB image, NHWC, values 0..255 (as the Keras example and unet-predict feed it)";
  g->n_output = 1;
  g->output = arena_alloc(&b.arena, sizeof(Onnx__ValueInfoProto *));
  g->output[0] = value_info(&b, "probs", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dyn, out_dims);
  g->output[0]->doc_string = "softmax probabilities over the classes, NHWC";

  const char *image = "image";
  Onnx__NodeProto *n;
  if (o->input == ONNX_INPUT_UINT8) {
    n = add_node(&b, "Cast", "to_float", 1, &image, "image_float");
    attr_int(&b, n, "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    image = "image_float";
  }
  static const int to_nchw[4] = {0, 3, 1, 2};
  n = add_node(&b, "Transpose", "to_nchw", 1, &image, tensor[0]);
  attr_ints(&b, n, "perm", 4, to_nchw);
  float *scales = add_initializer(&b, "upsample_scales", 1, (const int[]){4});
  scales[0] = scales[1] = 1.0f;
  scales[2] = scales[3] = 2.0f;
  for (int i = 0; i < mg.num_ops; i++) translate_op(&b, &mg.ops[i], tensor);

  Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  opset.domain = "";
  opset.has_version = 1;
  opset.version = UNET_ONNX_OPSET;
  Onnx__OperatorSetIdProto *opsets[1] = {&opset};
  Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
  model.has_ir_version = 1;
  model.ir_version = UNET_ONNX_IR_VERSION;
  model.n_opset_import = 1;
  model.opset_import = opsets;
  model.producer_name = "unet-export";
  model.producer_version = UNET_VERSION;
  model.doc_string = "Xception-style U-Net of the Keras pets segmentation example (unet-hpc), inference mode";
  model.graph = g;
  add_metadata(&b, &model, o);

  size_t size = onnx__model_proto__get_packed_size(&model);
  unsigned char *buf = malloc(size);
  if (!buf) {
    arena_free(&b.arena);
    unet_graph_free(&mg);
    snprintf(err, err_len, "out of memory for the %zu-byte ONNX model", size);
    return -1;
  }
  size_t packed = onnx__model_proto__pack(&model, buf);
  arena_free(&b.arena);
  unet_graph_free(&mg);
  if (packed != size) {
    free(buf);
    snprintf(err, err_len, "protobuf-c packed %zu of %zu bytes", packed, size);
    return -1;
  }
  *out = buf;
  *len = size;
  return 0;
}

int onnx_export_file(const UNet *m, const OnnxExportOptions *o, const char *path, char *err, size_t err_len) {
  unsigned char *buf;
  size_t len;
  if (onnx_export_bytes(m, o, &buf, &len, err, err_len) != 0) return -1;
  int rc = unet_write_file_atomic(path, buf, len, err, err_len);
  free(buf);
  return rc;
}
