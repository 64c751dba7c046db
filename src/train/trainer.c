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
#define _GNU_SOURCE
#include "unet/trainer.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unet/adam.h"
#include "unet/checkpoint.h"
#include "unet/comm.h"
#include "unet/curves.h"
#include "unet/data_loader.h"
#include "unet/image.h"
#include "unet/metrics.h"
#include "unet/model.h"
#include "unet/prefetch.h"
#include "unet/rng.h"
#include "unet/run_folder.h"
#include "unet/util.h"

extern void openblas_set_num_threads(int num_threads);

void train_config_defaults(TrainConfig *c) {
  memset(c, 0, sizeof *c);
  c->epochs = 50;
  c->global_batch = 32;
  c->lr = 1e-4;
  c->seed = 1337;
  c->shuffle = 1;
  c->sync_bn = 1;
  c->overlap = 1;
  c->val_images = 4;
  augment_defaults(&c->augment);
  c->lr_schedule = LR_CONSTANT;
}

/* The "generalise" preset: what the ablation in the README showed to help on
 * ~240 training pets at 160x160 (see README, "A recipe that generalises").
 * Every piece stays a separate option that overrides it. */
int train_config_recipe(TrainConfig *c, const char *name) {
  if (!strcmp(name, "keras")) return 0;
  if (strcmp(name, "generalise") && strcmp(name, "generalize")) return -1;
  c->epochs = 60;
  c->lr = 1e-3;
  c->lr_schedule = LR_COSINE;
  c->warmup_epochs = 3;
  c->weight_decay = 0.05;
  c->augment.flip = c->augment.scale = c->augment.color = 1;
  c->bn_recalibrate = 6;
  c->early_stop = 20;
  return 0;
}

int default_threads_per_rank(int local_ranks) {
  const char *slurm = getenv("SLURM_CPUS_PER_TASK");
  long v;
  if (slurm && unet_parse_int(slurm, &v) == 0 && v > 0) return (int)v;
  cpu_set_t set;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int mine = CPU_COUNT(&set);
    if (mine > 0 && mine < online) return mine; /* the launcher bound us: use what we got */
  }
  int t = (int)(online / (local_ranks > 0 ? local_ranks : 1));
  return t > 0 ? t : 1;
}

/* ---- signals: set a flag, act at the next step boundary -------------------- */
static volatile sig_atomic_t g_stop_signal = 0;
static void on_stop_signal(int sig) { g_stop_signal = sig; }
static void install_signal_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
}

/* ---- run state ------------------------------------------------------------- */
typedef struct {
  const TrainConfig *cfg;
  int rank, size;
  ShardSet train, val;
  long n_train;            /* samples used (after --max-train) */
  long slice_first, slice_count;
  int local_batch;
  long steps_per_epoch;
  UNet model;
  Adam opt;
  TrainState ts;
  GradSync *sync;
  BatchNormReducer bn;
  float *x;                /* [local_batch, H, W, 3] */
  uint8_t *labels;         /* [local_batch, H, W] */
  uint8_t *scratch;        /* SHARDSET_SCRATCH_BYTES: one sample being read */
  Prefetcher *prefetch;    /* the next training batch, prepared on a thread */
  LrSchedule schedule;     /* learning rate of every step */
  float *probs;            /* [local_batch, H, W, C] */
  char path_last[4096], path_best[4096], path_csv[4096], dir_pred[4096];
} Run;

static int local_batch_of(int global_batch, int size, int rank) {
  return global_batch / size + (rank < global_batch % size ? 1 : 0);
}

static void rank_slice(long n, int size, int rank, long *first, long *count) {
  long a = (long)((__int128)n * rank / size), b = (long)((__int128)n * (rank + 1) / size);
  *first = a;
  *count = b - a;
}

/* The global order: one permutation of [0, n_train) from (seed, epoch) alone,
 * the same on every rank and for every rank count. */
static void global_epoch_order(const Run *r, int64_t epoch, long *order) {
  for (long i = 0; i < r->n_train; i++) order[i] = i;
  if (!r->cfg->shuffle) return;
  UnetRng g;
  rng_seed(&g, (uint64_t)r->cfg->seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull) ^ 0x676c6f62ull);
  for (long i = r->n_train; i > 1; i--) {
    long j = (long)rng_below(&g, (uint32_t)i);
    long t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
}

static void epoch_order(const Run *r, int64_t epoch, long *order) {
  if (r->cfg->data_order == DATA_ORDER_GLOBAL) {
    global_epoch_order(r, epoch, order);
    return;
  }
  for (long i = 0; i < r->slice_count; i++) order[i] = i;
  if (!r->cfg->shuffle) return;
  UnetRng g;
  rng_seed(&g, (uint64_t)r->cfg->seed * 1000003ull ^ ((uint64_t)epoch << 20) ^ (uint64_t)r->rank);
  for (long i = r->slice_count; i > 1; i--) {
    long j = (long)(rng_uniform(&g) * i);
    if (j >= i) j = i - 1;
    long t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
}

/* The global sample indices of this rank's part of step s of an epoch.
 * Shard order: the next local_batch of the rank's own shuffled slice.
 * Global order: step s takes order[s*B, (s+1)*B) of the global permutation and
 * rank r computes its contiguous part [offset_r, offset_r + local_batch_r). */
static void batch_indices(const Run *r, const long *order, long s, long *index) {
  if (r->cfg->data_order == DATA_ORDER_GLOBAL) {
    int B = r->cfg->global_batch, P = r->size, q = r->rank;
    long offset = (long)q * (B / P) + (q < B % P ? q : B % P);
    for (int i = 0; i < r->local_batch; i++) index[i] = order[s * B + offset + i];
    return;
  }
  for (int i = 0; i < r->local_batch; i++) index[i] = r->slice_first + order[s * r->local_batch + i];
}

/* Everything that must be identical on every rank, broadcast from rank 0. */
static void broadcast_state(Run *r) {
  UNet *m = &r->model;
  comm_bcast(m->params, m->num_params * sizeof(float), 0);
  comm_bcast(m->state, m->num_state * sizeof(float), 0);
  comm_bcast(r->opt.m, 2 * r->opt.count * sizeof(float), 0);
  comm_bcast(&r->opt.iterations, sizeof r->opt.iterations, 0);
  comm_bcast(&r->ts, sizeof r->ts, 0);
  comm_check_identical(m->params, m->num_params * sizeof(float), "model weights");
  comm_check_identical(m->state, m->num_state * sizeof(float), "BatchNorm moving statistics");
}

static void save_checkpoint(Run *r) {
  char err[1024];
  if (checkpoint_save(&r->model, &r->opt, &r->ts, r->path_last, err, sizeof err) != 0)
    unet_fatal("writing checkpoint: %s", err);
}

/* ---- validation: spread over the ranks, reduced in a fixed order ----------- */
typedef struct {
  double loss;
  double accuracy, mean_iou;
  double iou[256];
} ValResult;

/* Validation images go through the network in chunks of VAL_CHUNK, chunk j
 * on rank j % P: every chunk is computed exactly the same way whatever the
 * rank count (GEMM results can depend on the matrix height), so the metrics
 * are identical for any P. */
#define VAL_CHUNK 4

static void validate(Run *r, ValResult *out) {
  UNet *m = &r->model;
  int C = m->num_classes;
  long V = r->val.total, chunks = (V + VAL_CHUNK - 1) / VAL_CHUNK;
  long pixels = (long)m->height * m->width;
  double *losses = xmalloc((V + 1) * sizeof(double), "validation losses");
  int64_t *confusion = xcalloc((size_t)C * C, sizeof(int64_t), "confusion matrix");
  long index[VAL_CHUNK];
  long mine = 0;
  char err[1024];
  for (long j = r->rank; j < chunks; j += r->size) {
    long first = j * VAL_CHUNK;
    int n = (int)(V - first < VAL_CHUNK ? V - first : VAL_CHUNK);
    for (int i = 0; i < n; i++) index[i] = first + i;
    if (shardset_read_batch(&r->val, index, n, NULL, 0, 0, r->x, r->labels, r->scratch, err, sizeof err) != 0)
      unet_fatal("validation data: %s", err);
    unet_predict(m, r->x, n, r->probs);
    per_image_xent(losses + mine, unet_last_logits(m), r->labels, n, pixels, C);
    confusion_add(confusion, r->probs, r->labels, n * pixels, C);
    mine += n;
  }
  /* per-image losses gathered on rank 0, put back in sample order and summed
   * there: the same sum whatever the rank count; confusion counts are integers */
  double *gathered = r->rank == 0 ? xmalloc((V + 1) * sizeof(double), "validation losses") : NULL;
  comm_gather_doubles(losses, (int)mine, gathered, 0);
  comm_allreduce_sum_i64(confusion, C * C);
  if (r->rank == 0) {
    long pos = 0;
    for (int q = 0; q < r->size; q++)
      for (long j = q; j < chunks; j += r->size) {
        long first = j * VAL_CHUNK;
        long n = V - first < VAL_CHUNK ? V - first : VAL_CHUNK;
        memcpy(losses + first, gathered + pos, n * sizeof(double));
        pos += n;
      }
    double sum = 0;
    for (long i = 0; i < V; i++) sum += losses[i];
    out->loss = sum / ((double)V * pixels);
    out->accuracy = confusion_accuracy(confusion, C);
    out->mean_iou = confusion_mean_iou(confusion, C);
    for (int k = 0; k < C; k++) out->iou[k] = confusion_iou(confusion, C, k);
  }
  xfree(gathered);
  xfree(losses);
  xfree(confusion);
}

static void write_prediction_pngs(Run *r) {
  UNet *m = &r->model;
  int H = m->height, W = m->width, C = m->num_classes;
  int k = r->cfg->val_images;
  if (k > r->val.total) k = (int)r->val.total;
  if (k <= 0) return;
  if (unet_mkdir_p(r->dir_pred) != 0) {
    unet_warn("cannot create %s: %s", r->dir_pred, strerror(errno));
    return;
  }
  uint8_t *images = xmalloc((size_t)k * H * W * 3, "prediction images");
  uint8_t *pred = xmalloc((size_t)H * W, "prediction ids");
  uint8_t *panel = xmalloc((size_t)H * W * 9, "prediction panel");
  char err[1024], name[4400], (*sample)[128] = xcalloc(k, sizeof *sample, "sample names");
  for (int i = 0; i < k; i++) {
    if (shardset_read(&r->val, i, images + (size_t)i * H * W * 3, r->labels + (size_t)i * H * W, sample[i],
                      sizeof sample[i], err, sizeof err) != 0)
      unet_fatal("validation data: %s", err);
    for (size_t j = 0; j < (size_t)H * W * 3; j++) r->x[(size_t)i * H * W * 3 + j] = images[(size_t)i * H * W * 3 + j];
  }
  unet_predict(m, r->x, k, r->probs);
  for (int i = 0; i < k; i++) {
    argmax_classes(pred, r->probs + (size_t)i * H * W * C, (long)H * W, C);
    render_prediction_panel(panel, images + (size_t)i * H * W * 3, r->labels + (size_t)i * H * W, pred, H, W);
    snprintf(name, sizeof name, "%s/val_%02d_%s.png", r->dir_pred, i, sample[i]);
    if (image_write_png(name, panel, 3 * W, H, 3, err, sizeof err) != 0) unet_warn("%s: %s", name, err);
  }
  xfree(sample);
  xfree(images);
  xfree(pred);
  xfree(panel);
}

/* Replaces the BN moving statistics by the average batch statistics of
 * cfg->bn_recalibrate training batches of this epoch's order (momentum
 * 1 - 1/k for the k-th batch: a plain mean), synchronized over the ranks like
 * training. Returns the previous (Keras) statistics for the caller to put back. */
static float *recalibrate_batchnorm(Run *r, const long *order) {
  UNet *m = &r->model;
  float *saved = xmalloc(m->num_state * sizeof(float), "BatchNorm statistics");
  memcpy(saved, m->state, m->num_state * sizeof(float));
  long *index = xmalloc(r->local_batch * sizeof(long), "batch index");
  char err[1024];
  float momentum = m->bn_momentum;
  for (int k = 1; k <= r->cfg->bn_recalibrate; k++) {
    batch_indices(r, order, (k - 1) % r->steps_per_epoch, index);
    /* not augmented: the statistics are those of the images validation sees */
    if (shardset_read_batch(&r->train, index, r->local_batch, NULL, 0, 0, r->x, r->labels, r->scratch, err,
                            sizeof err) != 0)
      unet_fatal("training data: %s", err);
    m->bn_momentum = 1.0f - 1.0f / (float)k;
    unet_update_batch_stats(m, r->x, r->local_batch, r->bn);
  }
  m->bn_momentum = momentum;
  xfree(index);
  return saved;
}

/* ---- metrics.csv ------------------------------------------------------------- */
static void csv_header(FILE *f, int C) {
  fprintf(f, "epoch,step,train_loss,val_loss,val_accuracy");
  for (int k = 0; k < C; k++) fprintf(f, ",iou_%d", k);
  fprintf(f, ",mean_iou,images_per_s,epoch_seconds,elapsed_seconds,best,lr,data_wait_seconds\n");
}

/* New run: header only. Resume from epoch k: keep the header and rows of
 * epochs <= k (a row written after the checkpoint would otherwise repeat). */
static void csv_prepare(Run *r) {
  int C = r->model.num_classes;
  char tmp[4200];
  unet_tmp_path(tmp, sizeof tmp, r->path_csv);
  FILE *out = fopen(tmp, "w");
  if (!out) unet_fatal("%s: cannot write: %s", tmp, strerror(errno));
  csv_header(out, C);
  FILE *in = r->cfg->resume ? fopen(r->path_csv, "r") : NULL;
  if (in) {
    char line[8192];
    int first = 1;
    while (fgets(line, sizeof line, in)) {
      if (first) { first = 0; continue; }
      long epoch = strtol(line, NULL, 10);
      if (epoch >= 1 && epoch <= r->ts.epoch) fputs(line, out);
    }
    fclose(in);
  }
  if (fclose(out) != 0 || unet_commit_file(tmp, r->path_csv) != 0) {
    remove(tmp);
    unet_fatal("%s: cannot write: %s", r->path_csv, strerror(errno));
  }
}

static void csv_append(Run *r, double train_loss, const ValResult *v, int have_val, double ips, double epoch_s,
                       double elapsed, int best, double lr, double data_wait) {
  FILE *f = fopen(r->path_csv, "a");
  if (!f) unet_fatal("%s: cannot append: %s", r->path_csv, strerror(errno));
  int C = r->model.num_classes;
  fprintf(f, "%lld,%lld,%.6f,", (long long)r->ts.epoch, (long long)r->ts.step, train_loss);
  if (have_val) {
    fprintf(f, "%.6f,%.6f", v->loss, v->accuracy);
    for (int k = 0; k < C; k++) fprintf(f, ",%.6f", v->iou[k]);
    fprintf(f, ",%.6f", v->mean_iou);
  } else {
    fprintf(f, ",");
    for (int k = 0; k < C; k++) fprintf(f, ",");
  }
  fprintf(f, ",%.3f,%.2f,%.2f,%d,%.9g,%.3f\n", ips, epoch_s, elapsed, best, lr, data_wait);
  if (fclose(f) != 0) unet_fatal("%s: write failed: %s", r->path_csv, strerror(errno));
}

/* A run killed during a write (kill -9, node failure) leaves its temporary
 * behind; the committed files are intact. Remove such leftovers. */
static void remove_stale_temporaries(const char *out_dir) {
  const char *names[] = {"last.ckpt.h5", "best.weights.h5", "metrics.csv", "status"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/%s.tmp.*", out_dir, names[i]);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) == 0) {
      for (size_t k = 0; k < g.gl_pathc; k++) remove(g.gl_pathv[k]);
      globfree(&g);
    }
  }
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
  openblas_set_num_threads(threads);

  if (shardset_open(&r->train, c->data_dir, "train", err, sizeof err) != 0) unet_fatal("%s", err);
  if (shardset_open(&r->val, c->data_dir, "val", err, sizeof err) != 0) unet_fatal("%s", err);
  if (r->val.total > 0 && (r->val.height != r->train.height || r->val.width != r->train.width ||
                           r->val.num_classes != r->train.num_classes))
    unet_fatal("%s: validation file does not match the training shards (size or classes)", c->data_dir);
  r->n_train = r->train.total;
  if (c->max_train > 0 && c->max_train < r->n_train) r->n_train = c->max_train;
  if (c->global_batch < r->size)
    unet_fatal("global batch %d is smaller than the %d ranks: every rank needs at least one sample per step",
               c->global_batch, r->size);
  if (r->n_train < r->size)
    unet_fatal("%ld training samples cannot be spread over %d ranks", r->n_train, r->size);
  rank_slice(r->n_train, r->size, r->rank, &r->slice_first, &r->slice_count);
  r->local_batch = local_batch_of(c->global_batch, r->size, r->rank);
  r->steps_per_epoch = -1;
  for (int q = 0; q < r->size; q++) {
    long first, count;
    rank_slice(r->n_train, r->size, q, &first, &count);
    long steps = count / local_batch_of(c->global_batch, r->size, q);
    if (r->steps_per_epoch < 0 || steps < r->steps_per_epoch) r->steps_per_epoch = steps;
  }
  if (c->data_order == DATA_ORDER_GLOBAL) r->steps_per_epoch = r->n_train / c->global_batch;
  if (r->steps_per_epoch == 0)
    unet_fatal("%ld training samples over %d ranks give fewer samples per rank than the local batch (global batch "
               "%d): lower --batch or use more data",
               r->n_train, r->size, c->global_batch);

  if (unet_create(&r->model, r->train.height, r->train.width, r->train.num_classes, err, sizeof err) != 0)
    unet_fatal("%s: %s", c->data_dir, err);
  UNet *m = &r->model;
  /* buffers hold a training batch or a validation chunk, whichever is larger */
  int buffer_batch = r->local_batch > VAL_CHUNK ? r->local_batch : VAL_CHUNK;
  if (r->cfg->val_images > buffer_batch) buffer_batch = r->cfg->val_images;
  unet_plan(m, buffer_batch);
  adam_init(&r->opt, m->num_params, c->lr);
  size_t pix = (size_t)m->height * m->width;
  r->x = xmalloc((size_t)buffer_batch * pix * 3 * sizeof(float), "input batch");
  r->labels = xmalloc((size_t)buffer_batch * pix, "label batch");
  r->scratch = xmalloc(SHARDSET_SCRATCH_BYTES(m->height, m->width), "sample buffer");
  r->probs = xmalloc((size_t)buffer_batch * pix * m->num_classes * sizeof(float), "probabilities");

  unet_path_join(r->path_last, sizeof r->path_last, c->out_dir, "last.ckpt.h5");
  unet_path_join(r->path_best, sizeof r->path_best, c->out_dir, "best.weights.h5");
  unet_path_join(r->path_csv, sizeof r->path_csv, c->out_dir, "metrics.csv");
  unet_path_join(r->dir_pred, sizeof r->dir_pred, c->out_dir, "predictions");

  r->ts.best_val_loss = INFINITY;
  r->ts.seed = c->seed;
  rng_seed(&r->ts.rng, (uint64_t)c->seed);
  r->ts.global_batch = c->global_batch;
  r->ts.lr = (float)c->lr;
  r->ts.data_order = c->data_order;
  if (r->rank == 0) {
    if (c->resume) {
      if (checkpoint_load(m, &r->opt, &r->ts, r->path_last, err, sizeof err) != 0)
        unet_fatal("--resume: %s", err);
      if (r->ts.global_batch != c->global_batch)
        unet_warn("resuming a run trained with global batch %d at batch %d", r->ts.global_batch, c->global_batch);
      if (r->ts.data_order != c->data_order)
        unet_fatal("--resume: %s was trained with --data-order %s; resuming it with --data-order %s would change the "
                   "run (pass --data-order %s)",
                   r->path_last, r->ts.data_order == DATA_ORDER_GLOBAL ? "global" : "shard",
                   c->data_order == DATA_ORDER_GLOBAL ? "global" : "shard",
                   r->ts.data_order == DATA_ORDER_GLOBAL ? "global" : "shard");
      if (r->ts.world_size != r->size && c->data_order == DATA_ORDER_SHARD)
        unet_warn("resuming a run written by %d rank(s) with %d: the data order differs from an uninterrupted run",
                  r->ts.world_size, r->size);
      r->opt.lr = c->lr; /* --lr may change on resume */
      r->ts.lr = (float)c->lr;
      if (!c->quiet)
        unet_info("resuming from %s: epoch %lld, step %lld (%lld into the epoch), best val_loss %g", r->path_last,
                  (long long)r->ts.epoch, (long long)r->ts.step, (long long)r->ts.step_in_epoch, r->ts.best_val_loss);
    } else if (c->init_weights) {
      if (weights_load_keras(m, c->init_weights, err, sizeof err) != 0) unet_fatal("--init-weights: %s", err);
    } else {
      unet_init_keras(m, (uint64_t)c->seed);
    }
    /* the run folder appears only once data and weights are known good */
    if (writes_run_folder(c)) {
      if (unet_mkdir_output(c->out_dir) != 0)
        unet_fatal("%s: cannot create run directory: %s", c->out_dir, strerror(errno));
      remove_stale_temporaries(c->out_dir);
      if (c->overwrite && run_folder_clear(c->out_dir, err, sizeof err) != 0) unet_fatal("%s", err);
    }
  }
  broadcast_state(r);
  r->ts.world_size = r->size;
  r->sync = gradsync_create(m->grads, m->num_params, c->overlap, 1 << 16);
  r->bn = c->sync_bn ? comm_batchnorm_reducer() : (BatchNormReducer){0};
  /* Debian's HDF5 is thread-safe; a build that is not gets the same reads
   * done synchronously (identical data, no overlap) */
  r->prefetch = prefetch_create(&r->train, r->local_batch, !c->no_prefetch && shard_library_threadsafe());
  double base_lr = c->lr_scaling ? c->lr * c->global_batch / 32.0 : c->lr;
  r->schedule = (LrSchedule){c->lr_schedule, base_lr, (int64_t)llround(c->warmup_epochs * r->steps_per_epoch),
                             (int64_t)c->epochs * r->steps_per_epoch, 0.1};
  if (r->rank == 0 && !c->quiet)
    unet_info("%d rank(s) x %d thread(s); %ld training samples (%ld on rank 0), %ld validation; global batch %d "
              "(%d on rank 0), %ld steps per epoch; model %dx%d, %d classes, %zu parameters; activations %.0f MB",
              r->size, threads, r->n_train, r->slice_count, r->val.total, c->global_batch, r->local_batch,
              r->steps_per_epoch, m->height, m->width, m->num_classes, unet_param_count_total(m),
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

/* ---- the loop ------------------------------------------------------------------ */
int train_run(const TrainConfig *c) {
  Run run, *r = &run;
  setup(r, c);
  UNet *m = &r->model;
  const double global_pixels = (double)c->global_batch * m->height * m->width;
  const float loss_scale = (float)(1.0 / global_pixels);
  int is_root = r->rank == 0, tty = isatty(2) && !c->quiet;
  long *order = xmalloc((r->n_train + 1) * sizeof(long), "epoch order");
  long *index = xmalloc(r->local_batch * sizeof(long), "batch index");
  char err[1024];
  int exit_code = UNET_EXIT_OK;
  double run_start = unet_now();

  install_signal_handlers();
  if (c->evaluate_only) {
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
    csv_prepare(r);
    run_status_write(c->out_dir, "running", -1, r->ts.step, r->ts.epoch);
  }

  while (r->ts.epoch < c->epochs) {
    epoch_order(r, r->ts.epoch, order);
    double epoch_start = unet_now(), loss_sum = 0, data_wait = 0, lr = 0;
    long steps_run = 0;
    int stop = 0;
    const AugmentConfig *aug = augment_enabled(&c->augment) ? &c->augment : NULL;
    if (r->ts.step_in_epoch < r->steps_per_epoch) {
      batch_indices(r, order, r->ts.step_in_epoch, index);
      prefetch_submit(r->prefetch, index, r->local_batch, aug, (uint64_t)c->seed, r->ts.epoch);
    }
    for (long s = r->ts.step_in_epoch; s < r->steps_per_epoch; s++) {
      float *x;
      uint8_t *labels;
      double waited;
      if (prefetch_take(r->prefetch, &x, &labels, &waited, err, sizeof err) != 0) unet_fatal("training data: %s", err);
      data_wait += waited;
      if (s + 1 < r->steps_per_epoch) { /* the next batch is read while this step computes */
        batch_indices(r, order, s + 1, index);
        prefetch_submit(r->prefetch, index, r->local_batch, aug, (uint64_t)c->seed, r->ts.epoch);
      }
      memset(m->grads, 0, m->num_params * sizeof(float));
      gradsync_begin(r->sync);
      double local_loss = unet_train_step(m, x, labels, r->local_batch, loss_scale, r->bn, gradsync_ready, r->sync);
      gradsync_finish(r->sync);
      /* one small allreduce: the global loss and whether any rank got a stop signal */
      double agree[2] = {local_loss, g_stop_signal ? 1.0 : 0.0};
      comm_allreduce_sum_double(agree, 2);
      double step_loss = agree[0] / global_pixels;
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
      r->ts.step_in_epoch = s + 1;
      loss_sum += step_loss;
      steps_run++;
      if (tty && is_root) {
        double el = unet_now() - epoch_start;
        fprintf(stderr, "\repoch %lld/%d  step %ld/%ld  loss %.4f  %.1f img/s   ", (long long)r->ts.epoch + 1,
                c->epochs, s + 1, r->steps_per_epoch, loss_sum / steps_run, steps_run * c->global_batch / el);
      }
      if (agree[1] > 0) stop = 1;
      if (c->max_steps > 0 && r->ts.step >= c->max_steps) stop = 2;
      if (stop) break;
    }
    prefetch_drain(r->prefetch); /* a stop leaves the next batch requested */
    if (tty && is_root) fputc('\n', stderr);
    double train_seconds = unet_now() - epoch_start;
    if (stop) {
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
    double ips = steps_run > 0 ? steps_run * c->global_batch / train_seconds : 0;
    double train_loss = steps_run > 0 ? loss_sum / steps_run : NAN;

    ValResult v;
    memset(&v, 0, sizeof v);
    int have_val = r->val.total > 0;
    /* --bn-recalibrate: evaluate (and keep as best weights) with BN statistics
     * recomputed over training batches; the Keras moving statistics come back
     * before the checkpoint, so training itself stays the Keras recipe */
    float *keras_stats = NULL;
    if (have_val && c->bn_recalibrate > 0) keras_stats = recalibrate_batchnorm(r, order);
    if (have_val) validate(r, &v);
    int best = 0;
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
      csv_append(r, train_loss, &v, have_val, ips, train_seconds, elapsed, best, lr, data_wait);
      curves_update_run(c->out_dir);
      if (!c->quiet) {
        char ious[512] = "";
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
    if (comm_allreduce_max_int(g_stop_signal ? 1 : 0)) {
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
  xfree(order);
  xfree(index);
  teardown(r);
  return exit_code;
}
