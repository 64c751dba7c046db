/* checkpoint.c - training checkpoint: the Keras weights layout
 * (weights_keras.c) plus the Adam state as Keras 3 stores it and our /train
 * group. Written atomically; loaded all-or-nothing.
 *
 * /optimizer/vars, verified in keras-team/keras:
 *  - saving_lib._walk_saveable visits the model attribute "optimizer" after
 *    "layers"; BaseOptimizer.save_own_variables writes
 *    store[str(i)] = variable for i, variable in enumerate(self.variables).
 *  - BaseOptimizer.__init__ creates "iteration" (dtype "int": int64 on the
 *    TensorFlow backend) and then "learning_rate" (floatx, float32) as the
 *    first two tracked variables, both scalars.
 *  - Adam.build adds, per trainable variable in model.trainable_variables order
 *    (= our params arena order), a "momentum" and a "velocity" of the same
 *    shape, INTERLEAVED: m0, v0, m1, v1, ... (Keras 3.0 - 3.9 loop in
 *    adam.py; add_optimizer_variables keeps that order since keras PR #21247,
 *    "Interleave optimizer variable creation to restore backward-compatibility").
 *  So /optimizer/vars/0 = iterations (int64, scalar), /1 = learning_rate
 *  (float32, scalar), /(2+2k) = m of trainable variable k, /(3+2k) = v of it,
 *  in Keras shapes. Keras's Optimizer.load_own_variables loads them when the
 *  count matches its own (compiled and built model), else it warns and skips.
 *
 * /train (ours; Keras never looks at it), scalar datasets:
 *   format_version int32 (2), epoch, step, step_in_epoch, seed int64,
 *   best_val_loss float64 (inf when none), world_size, global_batch int32,
 *   adam_learning_rate, adam_beta_1, adam_beta_2, adam_epsilon float64 (the
 *   exact Adam hyper-parameters; Keras keeps only a float32 learning rate),
 *   data_order int32, best_epoch int64 (both optional on reading: a checkpoint
 *   written before they existed used the shard order, best epoch unknown = epoch).
 * Root attributes: those of the weights file (weights_keras.c) and
 * unet_crc32_adam, the CRC-32 of the Adam m then v arenas (arena_crc.c),
 * checked on loading when present.
 * Version 1 also stored rng_state uint64[4] and lr float32: a generator never
 * drawn from and a third copy of the learning rate. Version 1 files load (the
 * two are ignored). */
#include <stdio.h>
#include <string.h>

#include "io_internal.h"
#include "unet/checkpoint.h"
#include "unet/util.h"

#define CHECKPOINT_FORMAT_VERSION 2

typedef struct {
  const UNet *m;
  const Adam *opt;
  const TrainState *ts;
  const char *path;
} CheckpointWrite;

static int write_optimizer(hid_t file, const UNet *m, const Adam *opt, const char *path, char *err, size_t err_len) {
  hid_t og = h5_create_group(file, "optimizer", path, err, err_len);
  if (og < 0) return -1;
  hid_t vg = h5_create_group(og, "vars", path, err, err_len);
  H5Gclose(og);
  if (vg < 0) return -1;
  int64_t iterations = opt->iterations;
  float lr = (float)opt->lr;
  int rc = h5_write_values(vg, "0", H5T_STD_I64LE, H5T_NATIVE_INT64, &iterations, 0, path, err, err_len);
  if (rc == 0) rc = h5_write_values(vg, "1", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &lr, 0, path, err, err_len);
  int slot = 2;
  for (int i = 0; i < m->num_vars && rc == 0; i++) {
    const ModelVar *v = &m->vars[i];
    if (!v->trainable) continue;
    char name[16];
    snprintf(name, sizeof name, "%d", slot++);
    rc = h5_write_f32(vg, name, opt->m + v->offset, v->ndim, v->shape, path, err, err_len);
    if (rc != 0) break;
    snprintf(name, sizeof name, "%d", slot++);
    rc = h5_write_f32(vg, name, opt->v + v->offset, v->ndim, v->shape, path, err, err_len);
  }
  H5Gclose(vg);
  return rc;
}

static int write_train(hid_t file, const Adam *opt, const TrainState *ts, const char *path, char *err,
                       size_t err_len) {
  hid_t g = h5_create_group(file, "train", path, err, err_len);
  if (g < 0) return -1;
  int32_t version = CHECKPOINT_FORMAT_VERSION;
  int64_t epoch = ts->epoch, step = ts->step, step_in_epoch = ts->step_in_epoch, seed = ts->seed;
  int32_t world_size = ts->world_size, global_batch = ts->global_batch;
  struct {
    const char *name;
    hid_t file_type, mem_type;
    const void *data;
    int count;
  } items[] = {
      {"format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version, 0},
      {"epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, &epoch, 0},
      {"step", H5T_STD_I64LE, H5T_NATIVE_INT64, &step, 0},
      {"step_in_epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, &step_in_epoch, 0},
      {"best_val_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &ts->best_val_loss, 0},
      {"seed", H5T_STD_I64LE, H5T_NATIVE_INT64, &seed, 0},
      {"world_size", H5T_STD_I32LE, H5T_NATIVE_INT32, &world_size, 0},
      {"global_batch", H5T_STD_I32LE, H5T_NATIVE_INT32, &global_batch, 0},
      {"adam_learning_rate", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &opt->lr, 0},
      {"adam_beta_1", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &opt->beta1, 0},
      {"adam_beta_2", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &opt->beta2, 0},
      {"adam_epsilon", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &opt->epsilon, 0},
      {"data_order", H5T_STD_I32LE, H5T_NATIVE_INT32, &ts->data_order, 0},
      {"best_epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, &ts->best_epoch, 0},
  };
  int rc = 0;
  for (size_t i = 0; i < sizeof items / sizeof items[0] && rc == 0; i++)
    rc = h5_write_values(g, items[i].name, items[i].file_type, items[i].mem_type, items[i].data, items[i].count, path,
                         err, err_len);
  H5Gclose(g);
  return rc;
}

static int write_checkpoint_file(hid_t file, void *ctx, char *err, size_t err_len) {
  const CheckpointWrite *w = ctx;
  if (io_write_model(file, w->m, w->path, err, err_len) != 0) return -1;
  uint32_t adam_crc = io_arena_crc32(w->opt->v, w->m->num_params, io_arena_crc32(w->opt->m, w->m->num_params, 0));
  if (io_write_crc_attr(file, IO_CRC_ADAM_ATTR, adam_crc, w->path, err, err_len) != 0) return -1;
  if (write_optimizer(file, w->m, w->opt, w->path, err, err_len) != 0) return -1;
  return write_train(file, w->opt, w->ts, w->path, err, err_len);
}

int checkpoint_save(const UNet *m, const Adam *opt, const TrainState *ts, const char *path, char *err,
                    size_t err_len) {
  if (opt->count != m->num_params)
    return h5_fail(err, err_len, path, "Adam holds %zu values but the model has %zu parameters", opt->count,
                   m->num_params);
  CheckpointWrite w = {m, opt, ts, path};
  return h5_save_atomic(path, write_checkpoint_file, &w, err, err_len);
}

/* ---- loading ---------------------------------------------------------------*/

/* Reads /optimizer/vars into iterations, lr, m_out, v_out after checking every
 * entry (count, shapes). */
static int read_optimizer(hid_t file, const UNet *m, int64_t *iterations, float *lr, float *m_out, float *v_out,
                          const char *path, char *err, size_t err_len) {
  if (!h5_has(file, "optimizer")) return h5_fail(err, err_len, path, "not a training checkpoint (no /optimizer group)");
  hid_t og = h5_open_group(file, "optimizer", "/optimizer", path, err, err_len);
  if (og < 0) return -1;
  hid_t vg = h5_open_group(og, "vars", "/optimizer/vars", path, err, err_len);
  H5Gclose(og);
  if (vg < 0) return -1;
  long trainable = 0;
  for (int i = 0; i < m->num_vars; i++) trainable += m->vars[i].trainable;
  long expected = 2 + 2 * trainable, count = h5_count_links(vg);
  int rc = 0;
  if (count != expected)
    rc = h5_fail(err, err_len, path,
                 "/optimizer/vars has %ld entries, Adam for this model has %ld (iterations, learning_rate, then m and v "
                 "for each of %ld trainable variables)",
                 count, expected, trainable);
  if (rc == 0)
    rc = h5_read_values(vg, "0", H5T_NATIVE_INT64, iterations, 0, "/optimizer/vars/0 (iterations)", path, err, err_len);
  if (rc == 0)
    rc = h5_read_values(vg, "1", H5T_NATIVE_FLOAT, lr, 0, "/optimizer/vars/1 (learning_rate)", path, err, err_len);
  int slot = 2;
  for (int i = 0; i < m->num_vars && rc == 0; i++) {
    const ModelVar *v = &m->vars[i];
    if (!v->trainable) continue;
    for (int k = 0; k < 2 && rc == 0; k++, slot++) {
      char name[16], what[192];
      snprintf(name, sizeof name, "%d", slot);
      snprintf(what, sizeof what, "/optimizer/vars/%d (Adam %s of layer %s variable %d)", slot,
               k == 0 ? "momentum" : "velocity", v->layer, v->index);
      rc = h5_read_f32_checked(vg, name, (k == 0 ? m_out : v_out) + v->offset, v->ndim, v->shape, what, path, err,
                               err_len);
    }
  }
  H5Gclose(vg);
  return rc;
}

typedef struct {
  double lr, beta1, beta2, epsilon;
} AdamHyper;

static int read_train(hid_t file, TrainState *ts, AdamHyper *hyper, const char *path, char *err, size_t err_len) {
  if (!h5_has(file, "train")) return h5_fail(err, err_len, path, "not a training checkpoint (no /train group)");
  hid_t g = h5_open_group(file, "train", "/train", path, err, err_len);
  if (g < 0) return -1;
  int32_t version = 0;
  int rc = h5_read_values(g, "format_version", H5T_NATIVE_INT32, &version, 0, "/train/format_version", path, err,
                          err_len);
  if (rc == 0 && (version < 1 || version > CHECKPOINT_FORMAT_VERSION))
    rc = h5_fail(err, err_len, path, "checkpoint format version %d, this program reads version %d", (int)version,
                 CHECKPOINT_FORMAT_VERSION);
  int64_t epoch = 0, step = 0, step_in_epoch = 0, seed = 0;
  int32_t world_size = 0, global_batch = 0;
  struct {
    const char *name;
    hid_t mem_type;
    void *data;
    int count;
  } items[] = {
      {"epoch", H5T_NATIVE_INT64, &epoch, 0},
      {"step", H5T_NATIVE_INT64, &step, 0},
      {"step_in_epoch", H5T_NATIVE_INT64, &step_in_epoch, 0},
      {"best_val_loss", H5T_NATIVE_DOUBLE, &ts->best_val_loss, 0},
      {"seed", H5T_NATIVE_INT64, &seed, 0},
      {"world_size", H5T_NATIVE_INT32, &world_size, 0},
      {"global_batch", H5T_NATIVE_INT32, &global_batch, 0},
      {"adam_learning_rate", H5T_NATIVE_DOUBLE, &hyper->lr, 0},
      {"adam_beta_1", H5T_NATIVE_DOUBLE, &hyper->beta1, 0},
      {"adam_beta_2", H5T_NATIVE_DOUBLE, &hyper->beta2, 0},
      {"adam_epsilon", H5T_NATIVE_DOUBLE, &hyper->epsilon, 0},
  };
  for (size_t i = 0; i < sizeof items / sizeof items[0] && rc == 0; i++) {
    char what[64];
    snprintf(what, sizeof what, "/train/%s", items[i].name);
    rc = h5_read_values(g, items[i].name, items[i].mem_type, items[i].data, items[i].count, what, path, err, err_len);
  }
  ts->data_order = 0;
  ts->best_epoch = epoch;
  if (rc == 0 && h5_has(g, "data_order"))
    rc = h5_read_values(g, "data_order", H5T_NATIVE_INT32, &ts->data_order, 0, "/train/data_order", path, err, err_len);
  if (rc == 0 && h5_has(g, "best_epoch"))
    rc = h5_read_values(g, "best_epoch", H5T_NATIVE_INT64, &ts->best_epoch, 0, "/train/best_epoch", path, err, err_len);
  H5Gclose(g);
  ts->epoch = epoch;
  ts->step = step;
  ts->step_in_epoch = step_in_epoch;
  ts->seed = seed;
  ts->world_size = world_size;
  ts->global_batch = global_batch;
  return rc;
}

int checkpoint_load(UNet *m, Adam *opt, TrainState *ts, const char *path, char *err, size_t err_len) {
  if (opt->count != m->num_params)
    return h5_fail(err, err_len, path, "Adam holds %zu values but the model has %zu parameters", opt->count,
                   m->num_params);
  H5Quiet q;
  h5_quiet_begin(&q);
  /* Everything goes to scratch first; model, optimizer and train state change
   * only when the whole file checked out. */
  size_t np = m->num_params, ns = m->num_state;
  float *scratch = xmalloc((3 * np + ns) * sizeof(float), "checkpoint being loaded");
  float *params = scratch, *state = scratch + np, *mom = state + ns, *vel = mom + np;
  int64_t iterations = 0;
  float keras_lr = 0.0f;
  TrainState new_ts;
  memset(&new_ts, 0, sizeof new_ts);
  AdamHyper hyper = {0, 0, 0, 0};
  int rc = -1;
  hid_t file = h5_open_read(path, err, err_len);
  if (file >= 0) {
    rc = io_read_model(file, m, params, state, path, err, err_len);
    if (rc == 0) rc = read_optimizer(file, m, &iterations, &keras_lr, mom, vel, path, err, err_len);
    if (rc == 0)
      rc = io_verify_crc_attr(file, IO_CRC_ADAM_ATTR, io_arena_crc32(vel, np, io_arena_crc32(mom, np, 0)),
                              "Adam moments (m, v)", path, err, err_len);
    if (rc == 0) rc = read_train(file, &new_ts, &hyper, path, err, err_len);
    if (rc == 0 && iterations < 0) rc = h5_fail(err, err_len, path, "negative Adam iterations (%lld)", (long long)iterations);
    H5Fclose(file);
  }
  if (rc == 0) {
    memcpy(m->params, params, np * sizeof(float));
    memcpy(m->state, state, ns * sizeof(float));
    memcpy(opt->m, mom, np * sizeof(float));
    memcpy(opt->v, vel, np * sizeof(float));
    opt->iterations = iterations;
    /* The exact double from /train; /optimizer/vars/1 is its float32 copy for Keras. */
    opt->lr = hyper.lr;
    opt->beta1 = hyper.beta1;
    opt->beta2 = hyper.beta2;
    opt->epsilon = hyper.epsilon;
    *ts = new_ts;
  }
  xfree(scratch);
  h5_quiet_end(&q);
  return rc;
}
