/* trainer.c - the training loop on every rank; see trainer.h.
 *
 * Data: the training shards form one global index space [0, N). Rank r owns
 * the contiguous slice [N*r/P, N*(r+1)/P) (whole shards when they divide
 * evenly) and trains on it; the global batch B is split into local batches
 * B/P (+1 for the first B%P ranks). Each epoch every rank shuffles its own
 * slice with a generator seeded by (seed, epoch, rank), so a resumed run
 * replays the same order. An epoch has floor(min_r slice_r / batch_r) steps:
 * every step is a full global batch, and the last partial batch is dropped.
 */
#include "unet/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bn_recalibrate.h"
#include "data_order.h"
#include "loss_setup.h"
#include "metrics_csv.h"
#include "prediction_pngs.h"
#include "run.h"
#include "stop_signal.h"
#include "unet/comm.h"
#include "unet/curves.h"
#include "unet/gradients.h"
#include "unet/rng.h"
#include "unet/run_folder.h"
#include "unet/watchdog.h"
#include "unet/weights_keras.h"
#include "validation.h"

void train_config_defaults(TrainConfig *c) {
  memset(c, 0, sizeof *c);
  c->epochs = 50;
  c->global_batch = 0; /* UNET_DEFAULT_BATCH, or the checkpoint's on --resume */
  c->lr = UNET_DEFAULT_LR;
  c->seed = -1;        /* UNET_DEFAULT_SEED, or the checkpoint's on --resume */
  c->shuffle = 1;
  c->sync_bn = 1;
  c->overlap = 1;
  c->val_images = 4;
  augment_defaults(&c->augment);
  c->lr_schedule = LR_CONSTANT;
  c->stall_timeout = -1; /* automatic: UNET_STALL_FLOOR, raised to 20 x the median step */
}

/* The "generalise" preset: what the ablation in the README showed to help on
 * ~240 training pets at 160x160 (README, "Data orders, augmentation and the
 * recipe").
 * Every piece stays a separate option that overrides it. */
int train_config_recipe(TrainConfig *c, const char *name) {
  if (!strcmp(name, "keras")) return 0;
  if (strcmp(name, "generalise") && strcmp(name, "generalize")) return -1;
  c->epochs = 60;
  c->global_batch = 8; /* 30 steps an epoch on 239 pets instead of 7: the largest single gain */
  c->lr = 2e-3;
  c->lr_schedule = LR_COSINE;
  c->warmup_epochs = 3;
  c->weight_decay = 0.05;
  c->augment.flip = c->augment.scale = c->augment.color = 1;
  c->bn_recalibrate = 6;
  c->early_stop = 20;
  c->flip_tta = 1;
  return 0;
}

static int local_batch_of(int global_batch, int size, int rank) {
  return global_batch / size + (rank < global_batch % size ? 1 : 0);
}

static void rank_slice(long n, int size, int rank, long *first, long *count) {
  long a = (long)((__int128)n * rank / size), b = (long)((__int128)n * (rank + 1) / size);
  *first = a;
  *count = b - a;
}

/* Everything that must be identical on every rank, broadcast from rank 0. */
static void broadcast_state(Run *r) {
  UNet *m = &r->model;
  comm_bcast(m->params, m->num_params * sizeof(float), 0);
  comm_bcast(m->state, m->num_state * sizeof(float), 0);
  comm_bcast(r->opt.moments, 2 * r->opt.count * sizeof(float), 0); /* m and v: one block */
  comm_bcast(&r->opt.iterations, sizeof r->opt.iterations, 0);
  double hyper[4] = {r->opt.lr, r->opt.beta1, r->opt.beta2, r->opt.epsilon};
  comm_bcast(hyper, sizeof hyper, 0);
  r->opt.lr = hyper[0], r->opt.beta1 = hyper[1], r->opt.beta2 = hyper[2], r->opt.epsilon = hyper[3];
  comm_bcast(&r->ts, sizeof r->ts, 0);
  comm_check_identical(m->params, m->num_params * sizeof(float), "model weights");
  comm_check_identical(m->state, m->num_state * sizeof(float), "BatchNorm moving statistics");
}

static void save_checkpoint(Run *r) {
  char err[1024];
  if (checkpoint_save(&r->model, &r->opt, &r->ts, r->path_last, err, sizeof err) != 0)
    unet_fatal("writing checkpoint: %s", err);
}

/* Rank 0: the weights, Adam state and TrainState the run starts from. A new
 * run takes --seed and --batch (or their defaults); a resumed one continues
 * the checkpoint's, and one given on the command line replaces the
 * checkpoint's value (warned about: the data order then differs from an
 * uninterrupted run) and is recorded in the next checkpoint. --lr is the base
 * learning rate of the schedule, given (or defaulted) every run. */
static void start_state(Run *r) {
  const TrainConfig *c = r->cfg;
  UNet *m = &r->model;
  char err[1024];
  if (!c->resume) {
    r->ts.best_val_loss = INFINITY;
    r->ts.seed = c->seed >= 0 ? c->seed : UNET_DEFAULT_SEED;
    r->ts.global_batch = c->global_batch > 0 ? c->global_batch : UNET_DEFAULT_BATCH;
    r->ts.data_order = c->data_order;
    if (c->init_weights) {
      if (weights_load_keras(m, c->init_weights, err, sizeof err) != 0) unet_fatal("--init-weights: %s", err);
    } else {
      unet_init_keras(m, (uint64_t)r->ts.seed);
    }
    return;
  }
  if (checkpoint_load(m, &r->opt, &r->ts, r->path_last, err, sizeof err) != 0) unet_fatal("--resume: %s", err);
  r->opt.lr = c->lr; /* --lr may change on resume */
  if (c->global_batch > 0 && c->global_batch != r->ts.global_batch) {
    unet_warn("resuming a run trained with global batch %d at batch %d", r->ts.global_batch, c->global_batch);
    r->ts.global_batch = c->global_batch;
  }
  if (c->seed >= 0 && c->seed != r->ts.seed) {
    unet_warn("resuming a run trained with seed %lld at seed %lld: the data order differs from an uninterrupted run",
              (long long)r->ts.seed, (long long)c->seed);
    r->ts.seed = c->seed;
  }
  if (r->ts.data_order != c->data_order)
    unet_fatal("--resume: %s was trained with --data-order %s; resuming it with --data-order %s would change the "
               "run (pass --data-order %s)",
               r->path_last, r->ts.data_order == DATA_ORDER_GLOBAL ? "global" : "shard",
               c->data_order == DATA_ORDER_GLOBAL ? "global" : "shard",
               r->ts.data_order == DATA_ORDER_GLOBAL ? "global" : "shard");
  if (r->ts.world_size != r->size && r->ts.data_order == DATA_ORDER_SHARD)
    unet_warn("resuming a run written by %d rank(s) with %d: the data order differs from an uninterrupted run",
              r->ts.world_size, r->size);
  if (!c->quiet)
    unet_info("resuming from %s: epoch %lld, step %lld (%lld into the epoch), best val_loss %g", r->path_last,
              (long long)r->ts.epoch, (long long)r->ts.step, (long long)r->ts.step_in_epoch, r->ts.best_val_loss);
}

static int writes_run_folder(const TrainConfig *c) { return !c->dump_gradients && !c->evaluate_only; }

/* ---- setup ------------------------------------------------------------------ */
static void setup(Run *r, const TrainConfig *c) {
  char err[1024];
  memset(r, 0, sizeof *r);
  r->cfg = c;
  r->rank = comm_rank();
  r->size = comm_size();

  const char *slurm_ntasks = getenv("SLURM_NTASKS");
  long ntasks;
  if (slurm_ntasks && unet_parse_int(slurm_ntasks, &ntasks) == 0 && ntasks != r->size &&
      !getenv("OMPI_COMM_WORLD_SIZE"))
    unet_fatal("SLURM_NTASKS=%ld but this MPI job has %d rank(s): srun started separate one-rank jobs; "
               "use 'srun --mpi=pmix' (or mpirun inside the allocation)",
               ntasks, r->size);

  int threads = c->threads > 0 ? c->threads : default_threads_per_rank(comm_local_size());
  unet_set_threads(threads);

  if (shardset_open(&r->train, c->data_dir, "train", err, sizeof err) != 0) unet_fatal("%s", err);
  if (shardset_open(&r->val, c->data_dir, "val", err, sizeof err) != 0) unet_fatal("%s", err);
  if (r->val.total > 0 && (r->val.height != r->train.height || r->val.width != r->train.width ||
                           r->val.num_classes != r->train.num_classes))
    unet_fatal("%s: validation file does not match the training shards (size or classes)", c->data_dir);
  r->n_train = r->train.total;
  if (c->max_train > 0 && c->max_train < r->n_train) r->n_train = c->max_train;
  if (unet_create(&r->model, r->train.height, r->train.width, r->train.num_classes, err, sizeof err) != 0)
    unet_fatal("%s: %s", c->data_dir, err);
  UNet *m = &r->model;
  adam_init(&r->opt, m->num_params, c->lr);

  unet_path_join(r->path_last, sizeof r->path_last, c->out_dir, "last.ckpt.h5");
  unet_path_join(r->path_best, sizeof r->path_best, c->out_dir, "best.weights.h5");
  unet_path_join(r->path_csv, sizeof r->path_csv, c->out_dir, "metrics.csv");
  unet_path_join(r->dir_pred, sizeof r->dir_pred, c->out_dir, "predictions");

  if (r->rank == 0) {
    start_state(r);
    /* the run folder appears only once data and weights are known good */
    if (writes_run_folder(c)) {
      if (unet_mkdir_output(c->out_dir) != 0)
        unet_fatal("%s: cannot create run directory: %s", c->out_dir, strerror(errno));
      const char *files[] = {"last.ckpt.h5", "best.weights.h5", "metrics.csv", "status"};
      for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unet_remove_stale_tmp(c->out_dir, files[i]);
      if (c->overwrite && run_folder_clear(c->out_dir, err, sizeof err) != 0) unet_fatal("%s", err);
    }
  }
  broadcast_state(r);
  r->ts.world_size = r->size;

  /* the batch is known now (a resumed run may continue the checkpoint's) */
  const int global_batch = r->ts.global_batch;
  if (global_batch < r->size)
    unet_fatal("global batch %d is smaller than the %d ranks: every rank needs at least one sample per step",
               global_batch, r->size);
  if (r->n_train < r->size)
    unet_fatal("%ld training samples cannot be spread over %d ranks", r->n_train, r->size);
  if (r->n_train > (long)UINT32_MAX) unet_fatal("%ld training samples: more than 2^32", r->n_train);
  rank_slice(r->n_train, r->size, r->rank, &r->slice_first, &r->slice_count);
  r->local_batch = local_batch_of(global_batch, r->size, r->rank);
  r->steps_per_epoch = -1;
  for (int q = 0; q < r->size; q++) {
    long first, count;
    rank_slice(r->n_train, r->size, q, &first, &count);
    long steps = count / local_batch_of(global_batch, r->size, q);
    if (r->steps_per_epoch < 0 || steps < r->steps_per_epoch) r->steps_per_epoch = steps;
  }
  if (r->ts.data_order == DATA_ORDER_GLOBAL) r->steps_per_epoch = r->n_train / global_batch;
  if (r->steps_per_epoch == 0)
    unet_fatal("%ld training samples over %d ranks give fewer samples per rank than the local batch (global batch "
               "%d): lower --batch or use more data",
               r->n_train, r->size, global_batch);

  /* buffers hold a training batch or a validation chunk, whichever is larger */
  int buffer_batch = r->local_batch > VAL_CHUNK ? r->local_batch : VAL_CHUNK;
  if (r->cfg->val_images > buffer_batch) buffer_batch = r->cfg->val_images;
  unet_plan(m, buffer_batch);
  size_t pix = (size_t)m->height * m->width;
  r->x = xmalloc((size_t)buffer_batch * pix * 3 * sizeof(float), "input batch");
  r->labels = xmalloc((size_t)buffer_batch * pix, "label batch");
  r->scratch = xmalloc(SHARDSET_SCRATCH_BYTES(m->height, m->width), "sample buffer");
  r->probs = xmalloc((size_t)buffer_batch * pix * m->num_classes * sizeof(float), "probabilities");

  loss_setup(r); /* ignored pixels and --class-weights */
  r->sync = gradsync_create(m->grads, m->num_params, c->overlap, 1 << 16);
  r->bn = c->sync_bn ? comm_batchnorm_reducer() : (BatchNormReducer){0};
  /* Debian's HDF5 is thread-safe; a build that is not gets the same reads
   * done synchronously (identical data, no overlap) */
  r->prefetch = prefetch_create(&r->train, r->local_batch, !c->no_prefetch && shard_library_threadsafe());
  double base_lr = c->lr_scaling ? c->lr * global_batch / 32.0 : c->lr;
  r->schedule = (LrSchedule){c->lr_schedule, base_lr, (int64_t)llround(c->warmup_epochs * r->steps_per_epoch),
                             (int64_t)c->epochs * r->steps_per_epoch, 0.1};
  if (r->rank == 0 && !c->quiet)
    unet_info("%d rank(s) x %d thread(s), %s GEMMs; %ld training samples (%ld on rank 0), %ld validation; "
              "global batch %d (%d on rank 0), %ld steps per epoch; model %dx%d, %d classes, %zu parameters; "
              "activations %.0f MB",
              r->size, threads, unet_gemm_backend(), r->n_train, r->slice_count, r->val.total, global_batch,
              r->local_batch, r->steps_per_epoch, m->height, m->width, m->num_classes, unet_param_count_total(m),
              unet_activation_bytes(m) / 1048576.0);
}

static void teardown(Run *r) {
  gradsync_free(r->sync);
  xfree(r->x);
  xfree(r->labels);
  xfree(r->scratch);
  prefetch_free(r->prefetch);
  xfree(r->probs);
  adam_free(&r->opt);
  unet_destroy(&r->model);
  shardset_close(&r->train);
  shardset_close(&r->val);
}

/* ---- the stall watchdog ------------------------------------------------------ */
/* What its thread needs to write RUN/status when it ends the job: set once
 * before it starts, the epoch updated as the run goes (an atomic: two threads). */
static struct {
  const char *out_dir;
  int writes_status;
  _Atomic int64_t epoch;
} g_stall;

static void on_stall(int64_t step, void *ctx) {
  (void)ctx;
  if (g_stall.writes_status) run_status_write(g_stall.out_dir, "stalled", UNET_EXIT_STALL, step, atomic_load(&g_stall.epoch));
}

static void start_watchdog(const Run *r) {
  const TrainConfig *c = r->cfg;
  g_stall.out_dir = c->out_dir;
  /* rank 0 writes it, or rank 1 when it is rank 0 that stalled */
  g_stall.writes_status = r->rank <= 1 && writes_run_folder(c);
  atomic_store(&g_stall.epoch, r->ts.epoch);
  WatchdogConfig w = {c->stall_timeout < 0 ? UNET_STALL_FLOOR : c->stall_timeout, c->stall_timeout < 0, on_stall, NULL,
                      c->quiet};
  watchdog_start(&w);
}

/* ---- RUN/status on a fatal error ------------------------------------------------ */
/* A rank that fails (a corrupt sample, an unwritable checkpoint) writes
 * `failed 1 step S epoch E` before MPI_Abort ends the job, so that a wrapper
 * reading RUN/status never sees `running` for a job that is gone. Any rank may
 * be the one that fails; it writes only where RUN/status already exists (the
 * run started and this rank sees the folder). Armed once the loop begins. */
static struct {
  const char *out_dir;
  _Atomic int armed;
  _Atomic int64_t step;
} g_failure;

static void on_fatal(int code) {
  if (atomic_load(&g_failure.armed)) {
    char path[UNET_PATH_MAX];
    unet_path_join(path, sizeof path, g_failure.out_dir, "status");
    if (access(path, F_OK) == 0)
      run_status_write(g_failure.out_dir, "failed", code, atomic_load(&g_failure.step), atomic_load(&g_stall.epoch));
  }
  comm_abort(code);
}

static void arm_failure_status(const Run *r) {
  if (!writes_run_folder(r->cfg)) return;
  g_failure.out_dir = r->cfg->out_dir;
  atomic_store(&g_failure.step, r->ts.step);
  atomic_store(&g_failure.armed, 1);
  unet_set_fatal_hook(on_fatal);
}

/* ---- the loop ------------------------------------------------------------------ */
int train_run(const TrainConfig *c) {
  Run run, *r = &run;
  setup(r, c);
  UNet *m = &r->model;
  const int global_batch = r->ts.global_batch;
  const double global_pixels = (double)global_batch * m->height * m->width;
  int is_root = r->rank == 0, tty = isatty(2) && !c->quiet;
  uint32_t *order = xmalloc((r->n_train + 1) * sizeof *order, "epoch order");
  long *index = xmalloc(r->local_batch * sizeof(long), "batch index");
  char err[1024];
  int exit_code = UNET_EXIT_OK;
  double run_start = unet_now();

  stop_signal_install();
  start_watchdog(r);
  if (c->evaluate_only) {
    watchdog_phase(r->ts.step, WD_VALIDATING);
    ValResult v;
    memset(&v, 0, sizeof v);
    if (r->val.total == 0) unet_fatal("%s: --evaluate needs a validation file (val.h5)", c->data_dir);
    if (c->bn_recalibrate > 0) {
      epoch_order(r, r->ts.epoch, order);
      xfree(recalibrate_batchnorm(r, order));
    }
    validate(r, &v);
    if (is_root) {
      printf("val_loss %.9f  accuracy %.9f  mean_iou %.9f  IoU", v.loss, v.accuracy, v.mean_iou);
      for (int k = 0; k < m->num_classes; k++) printf(" %.9f", v.iou[k]);
      printf("\n");
    }
    goto done;
  }
  if (is_root && !c->dump_gradients) {
    metrics_csv_start(r->path_csv, m->num_classes, c->resume ? r->ts.epoch : 0);
    run_status_write(c->out_dir, "running", -1, r->ts.step, r->ts.epoch);
  }
  arm_failure_status(r);

  while (r->ts.epoch < c->epochs) {
    atomic_store(&g_stall.epoch, r->ts.epoch);
    epoch_order(r, r->ts.epoch, order);
    double epoch_start = unet_now(), loss_sum = 0, data_wait = 0, lr = 0;
    long steps_run = 0;
    int stop = 0;
    const AugmentConfig *aug = augment_enabled(&c->augment) ? &c->augment : NULL;
    if (r->ts.step_in_epoch < r->steps_per_epoch) {
      batch_indices(r, order, r->ts.step_in_epoch, index);
      prefetch_submit(r->prefetch, index, r->local_batch, aug, (uint64_t)r->ts.seed, r->ts.epoch);
    }
    for (long s = r->ts.step_in_epoch; s < r->steps_per_epoch; s++) {
      float *x;
      uint8_t *labels;
      double waited;
      watchdog_phase(r->ts.step + 1, WD_READING);
      if (prefetch_take(r->prefetch, &x, &labels, &waited, err, sizeof err) != 0) unet_fatal("training data: %s", err);
      data_wait += waited;
      if (s + 1 < r->steps_per_epoch) { /* the next batch is read while this step computes */
        batch_indices(r, order, s + 1, index);
        prefetch_submit(r->prefetch, index, r->local_batch, aug, (uint64_t)r->ts.seed, r->ts.epoch);
      }
      /* the mean over the counted pixels of the global batch (all of them for the Keras loss) */
      const double global_weight = loss_global_weight(r, labels, global_pixels);
      const float loss_scale = global_weight > 0 ? (float)(1.0 / global_weight) : 0.0f;
      memset(m->grads, 0, m->num_params * sizeof(float));
      watchdog_phase(r->ts.step + 1, WD_COMPUTING);
      gradsync_begin(r->sync);
      double local_loss = unet_train_step(m, x, labels, r->local_batch, loss_scale, r->bn, gradsync_ready, r->sync);
      watchdog_phase(r->ts.step + 1, WD_REDUCING);
      gradsync_finish(r->sync);
      /* one small allreduce: the global loss and whether any rank got a stop signal */
      double agree[2] = {local_loss, stop_signal_pending() ? 1.0 : 0.0};
      comm_allreduce_sum_double(agree, 2);
      double step_loss = global_weight > 0 ? agree[0] / global_weight : 0; /* a batch of only ignored pixels: 0 */
      if (!isfinite(step_loss)) {
        if (is_root)
          unet_error("loss is %s at step %lld (epoch %lld, batch %ld): stopping; lower --lr or check the data",
                     isnan(step_loss) ? "NaN" : "infinite", (long long)r->ts.step + 1, (long long)r->ts.epoch + 1,
                     s + 1);
        exit_code = UNET_EXIT_NONFINITE;
        goto done;
      }
      if (c->dump_gradients) {
        if (is_root && gradients_save_keras(m, c->dump_gradients, err, sizeof err) != 0)
          unet_fatal("--dump-gradients: %s", err);
        if (is_root && !c->quiet)
          unet_info("wrote the gradient of step 1 (loss %.6f) to %s", step_loss, c->dump_gradients);
        goto done;
      }
      lr = lr_at_step(&r->schedule, r->opt.iterations);
      r->opt.lr = lr;
      if (c->weight_decay > 0) /* kernels only: biases and BatchNorm are not decayed */
        for (int k = 0; k < m->num_vars; k++)
          if (m->vars[k].trainable && m->vars[k].ndim > 1)
            adam_decay_weights(m->params, m->vars[k].offset, m->vars[k].size, lr, c->weight_decay);
      adam_step(&r->opt, m->params, m->grads);
      r->ts.step++;
      atomic_store(&g_failure.step, r->ts.step);
      r->ts.step_in_epoch = s + 1;
      loss_sum += step_loss;
      steps_run++;
      if (tty && is_root) {
        double el = unet_now() - epoch_start;
        fprintf(stderr, "\repoch %lld/%d  step %ld/%ld  loss %.4f  %.1f img/s   ", (long long)r->ts.epoch + 1,
                c->epochs, s + 1, r->steps_per_epoch, loss_sum / steps_run, steps_run * global_batch / el);
      }
      if (agree[1] > 0) stop = 1;
      if (c->max_steps > 0 && r->ts.step >= c->max_steps) stop = 2;
      if (stop) break;
    }
    prefetch_drain(r->prefetch); /* a stop leaves the next batch requested */
    if (tty && is_root) fputc('\n', stderr);
    double train_seconds = unet_now() - epoch_start;
    if (stop) {
      watchdog_phase(r->ts.step, is_root ? WD_CHECKPOINT : WD_WAIT_ROOT);
      if (is_root) {
        save_checkpoint(r);
        unet_info("%s after step %lld: wrote %s", stop == 1 ? "stop signal" : "--steps reached",
                  (long long)r->ts.step, r->path_last);
      }
      comm_barrier();
      exit_code = stop == 1 ? UNET_EXIT_REQUEUE : UNET_EXIT_OK;
      goto done;
    }
    r->ts.epoch++;
    r->ts.step_in_epoch = 0;
    double ips = steps_run > 0 ? steps_run * global_batch / train_seconds : 0;
    double train_loss = steps_run > 0 ? loss_sum / steps_run : NAN;

    ValResult v;
    memset(&v, 0, sizeof v);
    int have_val = r->val.total > 0;
    /* --bn-recalibrate: evaluate (and keep as best weights) with BN statistics
     * recomputed over training batches; the Keras moving statistics come back
     * before the checkpoint, so training itself stays the Keras recipe */
    float *keras_stats = NULL;
    watchdog_phase(r->ts.step, WD_VALIDATING);
    if (have_val && c->bn_recalibrate > 0) keras_stats = recalibrate_batchnorm(r, order);
    if (have_val) validate(r, &v);
    int best = 0;
    watchdog_phase(r->ts.step, is_root ? WD_CHECKPOINT : WD_WAIT_ROOT);
    if (is_root) {
      if (have_val && v.loss < r->ts.best_val_loss) {
        r->ts.best_val_loss = v.loss;
        r->ts.best_epoch = r->ts.epoch;
        best = 1;
        if (weights_save_keras(m, r->path_best, err, sizeof err) != 0) unet_fatal("writing best weights: %s", err);
      }
      if (have_val) write_prediction_pngs(r);
    }
    if (keras_stats) {
      memcpy(m->state, keras_stats, m->num_state * sizeof(float));
      xfree(keras_stats);
    }
    if (is_root) {
      save_checkpoint(r);
      double elapsed = unet_now() - run_start;
      EpochRow row = {r->ts.epoch, r->ts.step, train_loss, have_val ? &v : NULL, ips, train_seconds, elapsed, best,
                      lr, data_wait};
      metrics_csv_append(r->path_csv, m->num_classes, &row);
      curves_update_run(c->out_dir);
      if (!c->quiet) {
        char ious[UNET_MAX_CLASSES * 8] = "";
        size_t used = 0;
        for (int k = 0; k < m->num_classes && used < sizeof ious - 16; k++)
          used += snprintf(ious + used, sizeof ious - used, "%s%.3f", k ? " " : "", v.iou[k]);
        if (have_val)
          unet_info("epoch %lld/%d  loss %.4f  val_loss %.4f  acc %.4f  IoU [%s]  mIoU %.4f  %.2f img/s  data wait "
                    "%.2fs  lr %.3g  %.1fs%s",
                    (long long)r->ts.epoch, c->epochs, train_loss, v.loss, v.accuracy, ious, v.mean_iou, ips,
                    data_wait, lr, elapsed, best ? "  (best)" : "");
        else
          unet_info("epoch %lld/%d  loss %.4f  %.2f img/s  %.1fs", (long long)r->ts.epoch, c->epochs, train_loss, ips,
                    elapsed);
      }
    }
    comm_bcast(&r->ts.best_val_loss, sizeof r->ts.best_val_loss, 0);
    comm_bcast(&r->ts.best_epoch, sizeof r->ts.best_epoch, 0);
    if (c->early_stop > 0 && r->val.total > 0 && r->ts.epoch - r->ts.best_epoch >= c->early_stop &&
        r->ts.epoch < c->epochs) {
      if (is_root && !c->quiet)
        unet_info("early stop after epoch %lld: no new best val_loss for %d epochs (best %.4f at epoch %lld)",
                  (long long)r->ts.epoch, c->early_stop, r->ts.best_val_loss, (long long)r->ts.best_epoch);
      break;
    }
    if (comm_allreduce_max_int(stop_signal_pending() ? 1 : 0)) {
      /* signal arrived during validation: the epoch checkpoint is written */
      if (is_root)
        unet_info("stop signal after step %lld (end of epoch %lld): %s is current", (long long)r->ts.step,
                  (long long)r->ts.epoch, r->path_last);
      exit_code = UNET_EXIT_REQUEUE;
      goto done;
    }
  }
  if (is_root && !c->quiet) unet_info("done: %s", c->out_dir);
done:
  if (is_root && writes_run_folder(c)) {
    const char *state = exit_code == UNET_EXIT_REQUEUE ? "stopped" : exit_code == UNET_EXIT_NONFINITE ? "nonfinite" : "done";
    run_status_write(c->out_dir, state, exit_code, r->ts.step, r->ts.epoch);
  }
  watchdog_stop();
  xfree(order);
  xfree(index);
  teardown(r);
  return exit_code;
}
