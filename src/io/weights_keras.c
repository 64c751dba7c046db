/* weights_keras.c - the Keras 3 `.weights.h5` layout (model.save_weights /
 * model.load_weights), written and read by us.
 *
 * What Keras 3 writes, verified in keras-team/keras keras/src/saving/saving_lib.py
 * (save_weights_only, _save_state, _walk_saveable, _save_container_state,
 * H5IOStore, H5Entry) and keras/src/layers/layer.py (save_own_variables):
 *  - _save_state(model, inner_path="") first calls model.save_own_variables on
 *    H5Entry(""), which creates the top-level group "/vars" (empty: a Functional
 *    model owns no variables itself).
 *  - For a Functional model _walk_saveable yields ("layers", model.layers)
 *    first; the list goes through _save_container_state, which names each layer
 *    by naming.to_snake_case(class name) with a per-class counter in list order
 *    ("conv2d", "conv2d_1", ...), NOT by layer.name. model.layers comes from the
 *    graph's operations and includes the InputLayer -> "input_layer".
 *  - Every Layer has save_own_variables, so every layer gets a group
 *    "/layers/<name>/vars" (H5Entry creates path + "vars" even when the layer has
 *    no variables); datasets are named "0", "1", ... in the order
 *    _trainable_variables + _non_trainable_variables, stored as the numpy array
 *    (float32, Keras shape, contiguous, no attributes, no compression).
 *  - No attributes anywhere in a .weights.h5 (H5IOStore writes none, and reads
 *    none but a dataset's "dtype" for bfloat16): we add root attributes Keras
 *    never looks at: unet_input_size (weights_info.h) and the CRC-32 of the
 *    parameter and statistics arenas (arena_crc.c), checked on loading when
 *    present.
 *  - Metrics have no save_own_variables, so compiled metrics add no groups; a
 *    compiled model adds "/optimizer/vars" (see checkpoint.c), which we write
 *    only in checkpoints.
 * Our names come from model_build.c, which uses the same class-name counters in
 * model order. Within each class our order equals Keras's model.layers order
 * (topological by depth): the only place where Keras's order differs from
 * creation order is the two UpSampling2D of an up block, which hold no
 * variables, so every group holds the same data either way.
 *
 * Loading (like Keras's load_weights, but strict): every variable of the model
 * must be present with its exact shape; a layer with a different variable
 * count or a layer group that is not in the model is an error (a file for a
 * different model). Layers without variables may be absent. Keras 2.13 files
 * that use "_layer_checkpoint_dependencies" instead of "layers" are accepted,
 * as Keras 3 itself does. */
#include <stdio.h>
#include <string.h>

#include "io_internal.h"
#include "unet/weights_keras.h"
#include "unet/util.h"

int io_write_model(hid_t file, const UNet *m, const char *path, char *err, size_t err_len) {
  if (io_write_crc_attr(file, IO_CRC_PARAMS_ATTR, io_arena_crc32(m->params, m->num_params, 0), path, err, err_len) ||
      io_write_crc_attr(file, IO_CRC_STATE_ATTR, io_arena_crc32(m->state, m->num_state, 0), path, err, err_len))
    return -1;
  return io_write_model_values(file, m, m->params, m->state, path, err, err_len);
}

int io_write_model_values(hid_t file, const UNet *m, const float *trainable, const float *non_trainable,
                          const char *path, char *err, size_t err_len) {
  if (io_write_input_size(file, m, path, err, err_len) != 0) return -1;
  hid_t top_vars = h5_create_group(file, "vars", path, err, err_len);
  if (top_vars < 0) return -1;
  H5Gclose(top_vars);
  hid_t layers = h5_create_group(file, "layers", path, err, err_len);
  if (layers < 0) return -1;
  int rc = 0;
  for (int li = 0; li < m->num_layers && rc == 0; li++) {
    const ModelLayer *l = &m->layers[li];
    hid_t lg = h5_create_group(layers, l->name, path, err, err_len);
    if (lg < 0) {
      rc = -1;
      break;
    }
    hid_t vg = h5_create_group(lg, "vars", path, err, err_len);
    if (vg < 0) rc = -1;
    for (int i = 0; i < l->num_vars && rc == 0; i++) {
      const ModelVar *v = &m->vars[l->first_var + i];
      if (!v->trainable && !non_trainable) continue;
      const float *data = (v->trainable ? trainable : non_trainable) + v->offset;
      char name[16];
      snprintf(name, sizeof name, "%d", v->index);
      if (h5_write_f32(vg, name, data, v->ndim, v->shape, path, err, err_len) != 0)
        h5_fail(err, err_len, path, "cannot write layer %s variable %d (disk full?)", l->name, v->index), rc = -1;
    }
    if (vg >= 0) H5Gclose(vg);
    H5Gclose(lg);
  }
  H5Gclose(layers);
  return rc;
}

static int model_has_layer(const UNet *m, const char *name) {
  for (int i = 0; i < m->num_layers; i++)
    if (strcmp(m->layers[i].name, name) == 0) return 1;
  return 0;
}

/* Reads one layer's variables into params_out/state_out after checking them. */
static int read_layer(hid_t layers, const UNet *m, const ModelLayer *l, float *params_out, float *state_out,
                      const char *path, char *err, size_t err_len) {
  if (!h5_has(layers, l->name)) {
    if (l->num_vars == 0) return 0; /* Keras tolerates that too: nothing to load */
    return h5_fail(err, err_len, path, "missing layer %s (the model expects %d variables there)", l->name,
                   l->num_vars);
  }
  char what[160];
  snprintf(what, sizeof what, "layer %s", l->name);
  hid_t lg = h5_open_group(layers, l->name, what, path, err, err_len);
  if (lg < 0) return -1;
  snprintf(what, sizeof what, "vars group of layer %s", l->name);
  hid_t vg = h5_open_group(lg, "vars", what, path, err, err_len);
  H5Gclose(lg);
  if (vg < 0) return -1;
  int rc = 0;
  long count = h5_count_links(vg);
  if (count != l->num_vars) {
    rc = h5_fail(err, err_len, path, "layer %s has %ld variables, the model expects %d (a file for a different model?)",
                 l->name, count, l->num_vars);
  }
  for (int i = 0; i < l->num_vars && rc == 0; i++) {
    const ModelVar *v = &m->vars[l->first_var + i];
    float *dst = (v->trainable ? params_out : state_out) + v->offset;
    char name[16];
    snprintf(name, sizeof name, "%d", v->index);
    snprintf(what, sizeof what, "layer %s variable %d", l->name, v->index);
    rc = h5_read_f32_checked(vg, name, dst, v->ndim, v->shape, what, path, err, err_len);
  }
  H5Gclose(vg);
  return rc;
}

int io_read_model(hid_t file, const UNet *m, float *params_out, float *state_out, const char *path, char *err,
                  size_t err_len) {
  const char *layers_name = "layers";
  if (!h5_has(file, layers_name) && h5_has(file, "_layer_checkpoint_dependencies"))
    layers_name = "_layer_checkpoint_dependencies"; /* Keras 2.13's name for the same tree */
  if (io_check_weights_file(file, path, err, err_len) != 0) return -1;
  hid_t layers = h5_open_group(file, layers_name, "/layers", path, err, err_len);
  if (layers < 0) return -1;
  int rc = 0;
  for (int li = 0; li < m->num_layers && rc == 0; li++)
    rc = read_layer(layers, m, &m->layers[li], params_out, state_out, path, err, err_len);
  /* Layers the model does not have mean the file is for another model. */
  long n = rc == 0 ? h5_count_links(layers) : 0;
  for (long i = 0; i < n && rc == 0; i++) {
    char name[256];
    ssize_t len = H5Lget_name_by_idx(layers, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i, name, sizeof name,
                                     H5P_DEFAULT);
    if (len < 0) {
      rc = h5_fail(err, err_len, path, "cannot list the layers in /layers");
    } else if (!model_has_layer(m, name)) {
      rc = h5_fail(err, err_len, path, "layer %s is not part of this model (a file for a different model?)", name);
    }
  }
  H5Gclose(layers);
  /* the checksums of what was read, in arena order (absent in Keras's files) */
  if (rc == 0)
    rc = io_verify_crc_attr(file, IO_CRC_PARAMS_ATTR, io_arena_crc32(params_out, m->num_params, 0),
                            "layer weights", path, err, err_len);
  if (rc == 0)
    rc = io_verify_crc_attr(file, IO_CRC_STATE_ATTR, io_arena_crc32(state_out, m->num_state, 0),
                            "BatchNorm statistics", path, err, err_len);
  return rc;
}

typedef struct {
  const UNet *m;
  const char *path;
} WeightsWrite;

static int write_weights_file(hid_t file, void *ctx, char *err, size_t err_len) {
  const WeightsWrite *w = ctx;
  return io_write_model(file, w->m, w->path, err, err_len);
}

int weights_save_keras(const UNet *m, const char *path, char *err, size_t err_len) {
  WeightsWrite w = {m, path};
  return h5_save_atomic(path, write_weights_file, &w, err, err_len);
}

int weights_load_keras(UNet *m, const char *path, char *err, size_t err_len) {
  H5Quiet q;
  h5_quiet_begin(&q);
  int rc = -1;
  /* Read into scratch first: the model changes only when the whole file checked out. */
  float *params = xmalloc((m->num_params + m->num_state) * sizeof(float), "weights being loaded");
  float *state = params + m->num_params;
  hid_t file = h5_open_read(path, err, err_len);
  if (file >= 0) {
    rc = io_read_model(file, m, params, state, path, err, err_len);
    H5Fclose(file);
  }
  if (rc == 0) {
    memcpy(m->params, params, m->num_params * sizeof(float));
    memcpy(m->state, state, m->num_state * sizeof(float));
  }
  xfree(params);
  h5_quiet_end(&q);
  return rc;
}

int weights_num_classes(const char *path, int *classes, char *err, size_t err_len) {
  /* The layer names and shapes come from the model itself (built small, with
   * any class count): the head is the last layer, its kernel the last 4-d
   * variable, (k, k, channels in, classes). Found once: building (and
   * initialising) the 2M-parameter probe takes tens of ms, and HDF5 callers
   * run on one thread. */
  static ModelVar head_var;
  static int head_known = 0;
  if (!head_known) {
    UNet probe;
    if (unet_create(&probe, 16, 16, 2, err, err_len) != 0) return -1;
    for (int i = probe.num_vars - 1; i >= 0 && !head_known; i--)
      if (probe.vars[i].ndim == 4) head_var = probe.vars[i], head_known = 1;
    unet_destroy(&probe);
    if (!head_known) return h5_fail(err, err_len, path, "internal error: the model has no 4-d head kernel");
  }
  const ModelVar *head = &head_var;
  H5Quiet q;
  h5_quiet_begin(&q);
  int rc = -1;
  hid_t file = h5_open_read(path, err, err_len);
  if (file >= 0) {
    char what[2 * UNET_NAME_LEN + 96], index[16];
    snprintf(what, sizeof what, "head layer %s (variable %d)", head->layer, head->index);
    snprintf(index, sizeof index, "%d", head->index);
    /* /layers/<head>/vars/<i>, one group at a time so a missing one is named */
    hid_t layers = io_check_weights_file(file, path, err, err_len) == 0
                       ? h5_open_group(file, "layers", "/layers", path, err, err_len)
                       : H5I_INVALID_HID;
    hid_t layer = layers >= 0 ? h5_open_group(layers, head->layer, what, path, err, err_len) : -1;
    hid_t vars = layer >= 0 ? h5_open_group(layer, "vars", what, path, err, err_len) : -1;
    int nd = 0;
    hsize_t dims[8];
    H5T_class_t cls;
    hid_t d = vars >= 0 ? h5_open_dataset(vars, index, &nd, dims, &cls, what, path, err, err_len) : -1;
    if (d >= 0) {
      H5Dclose(d);
      int fits = nd == 4 && cls == H5T_FLOAT && dims[3] >= 1 && dims[3] <= UNET_MAX_CLASSES;
      for (int k = 0; k < 3 && fits; k++) fits = dims[k] == (hsize_t)head->shape[k];
      if (fits) {
        *classes = (int)dims[3];
        rc = 0;
      } else {
        long long have[8], want[3] = {head->shape[0], head->shape[1], head->shape[2]};
        for (int k = 0; k < nd; k++) have[k] = (long long)dims[k];
        char hs[128], ws[128];
        h5_format_shape(hs, sizeof hs, nd, have);
        h5_format_shape(ws, sizeof ws, 3, want);
        h5_fail(err, err_len, path, "%s has shape %s; this model's head kernel is %s plus the class count", what, hs,
                ws);
      }
    }
    if (vars >= 0) H5Gclose(vars);
    if (layer >= 0) H5Gclose(layer);
    if (layers >= 0) H5Gclose(layers);
    H5Fclose(file);
  }
  h5_quiet_end(&q);
  return rc;
}
