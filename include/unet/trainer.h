/* trainer.h - wires data, model, optimiser, communication and checkpoints
 * together. One replica per MPI rank; rank 0 owns validation, checkpoints,
 * metrics.csv and prediction PNGs. */
#ifndef UNET_TRAINER_H
#define UNET_TRAINER_H
#include <stdint.h>

#include "unet/augment.h"
#include "unet/lr_schedule.h"
#include "unet/model.h"
#include "unet/util.h"

/* Exit codes beyond util.h's 0/1/2 (documented in the README; jobs/train.sbatch relies on them). */
#define UNET_EXIT_REQUEUE 3 /* stopped by SIGTERM/SIGUSR1; last.ckpt.h5 written; resume with --resume */
#define UNET_EXIT_NONFINITE 4 /* loss became NaN or infinite */
/* UNET_EXIT_STALL (5, watchdog.h): no progress for --stall-timeout seconds */
#define UNET_STALL_FLOOR 300.0 /* the automatic --stall-timeout: max(this, 20 x the median step time) */

/* What a run takes when --batch, --seed, --lr are not given (a resumed run
 * continues the checkpoint's batch and seed; --lr is given every run). */
#define UNET_DEFAULT_BATCH 32
#define UNET_DEFAULT_LR 1e-4
#define UNET_DEFAULT_SEED 1337

typedef struct {
  const char *data_dir, *out_dir;
  const char *init_weights;   /* NULL: Keras initialisation from seed */
  const char *dump_gradients; /* NULL: train */
  int epochs;
  int global_batch; /* 0: not given (UNET_DEFAULT_BATCH, or the checkpoint's on resume) */
  double lr;        /* base learning rate of the schedule (UNET_DEFAULT_LR) */
  int64_t seed;     /* -1: not given (UNET_DEFAULT_SEED, ...) */
  long max_train; /* 0: all */
  long max_steps; /* 0: no limit */
  int shuffle, sync_bn, overlap, resume;
  int overwrite;  /* replace an earlier run in out_dir (its files are removed first) */
  int threads;    /* 0: automatic */
  int val_images; /* prediction PNGs per epoch */
  int quiet;
  int bn_recalibrate; /* >0: validate with BN statistics averaged over this many training batches */
  int evaluate_only; /* validate the starting weights, print the metrics, write nothing */
  /* the recipe beyond Keras (all off by default = the Keras example) */
  int data_order;           /* DATA_ORDER_SHARD (default) or DATA_ORDER_GLOBAL */
  AugmentConfig augment;    /* --augment: training samples only */
  LrScheduleKind lr_schedule;
  double warmup_epochs;     /* linear warm-up, in epochs (fractions allowed) */
  int lr_scaling;           /* 1: --lr is for a global batch of 32, scaled linearly to --batch */
  double weight_decay;      /* decoupled (AdamW) decay of the kernels; 0 = Keras Adam */
  int early_stop;           /* >0: stop after this many epochs without a new best val_loss */
  int no_prefetch;          /* 1: read each batch on the training thread (same data, no overlap) */
  int flip_tta;             /* --tta flip: validate on the mean logits of each image and its mirror */
  double stall_timeout;     /* --stall-timeout S: end a job stuck for S s (exit 5); 0 off; -1 automatic */
  /* users' own data: --class-weights auto|w0,w1,... (off: every pixel counts 1) */
  int class_weights_auto;
  int num_class_weights;
  float class_weights[UNET_MAX_CLASSES];
} TrainConfig;

#define DATA_ORDER_SHARD 0  /* rank r shuffles its own contiguous slice from (seed, epoch, rank) */
#define DATA_ORDER_GLOBAL 1 /* one permutation of the whole set from (seed, epoch); any rank reads any shard */

/* --recipe NAME: "keras" (the defaults) or "generalise" (see README); fills c
 * before the other options override it. 0 ok, -1 unknown name. */
int train_config_recipe(TrainConfig *c, const char *name);

void train_config_defaults(TrainConfig *c);
/* Runs on every rank (after comm_init); returns the process exit code. */
int train_run(const TrainConfig *c);

/* OpenBLAS threads for this rank: the cores it may use (its affinity set
 * when the launcher bound it, else the node's cores divided by the ranks on
 * the node, or SLURM_CPUS_PER_TASK). */
int default_threads_per_rank(int local_ranks);

#endif
