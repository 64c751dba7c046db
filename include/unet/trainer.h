/* trainer.h - wires data, model, optimiser, communication and checkpoints
 * together. One replica per MPI rank; rank 0 owns validation, checkpoints,
 * metrics.csv and prediction PNGs. */
#ifndef UNET_TRAINER_H
#define UNET_TRAINER_H
#include <stdint.h>

#include "unet/util.h"

/* Exit codes beyond util.h's 0/1/2 (documented in the README; jobs/train.sbatch relies on them). */
#define UNET_EXIT_REQUEUE 3 /* stopped by SIGTERM/SIGUSR1; last.ckpt.h5 written; resume with --resume */
#define UNET_EXIT_NONFINITE 4 /* loss became NaN or infinite */

typedef struct {
  const char *data_dir, *out_dir;
  const char *init_weights;   /* NULL: Keras initialisation from seed */
  const char *dump_gradients; /* NULL: train */
  int epochs, global_batch;
  double lr;
  int64_t seed;
  long max_train; /* 0: all */
  long max_steps; /* 0: no limit */
  int shuffle, sync_bn, overlap, resume;
  int overwrite;  /* replace an earlier run in out_dir (its files are removed first) */
  int threads;    /* 0: automatic */
  int val_images; /* prediction PNGs per epoch */
  int quiet;
  int bn_recalibrate; /* >0: validate with BN statistics averaged over this many training batches */
  int evaluate_only; /* validate the starting weights, print the metrics, write nothing */
} TrainConfig;

void train_config_defaults(TrainConfig *c);
/* Runs on every rank (after comm_init); returns the process exit code. */
int train_run(const TrainConfig *c);

/* OpenBLAS threads for this rank: the cores it may use (its affinity set
 * when the launcher bound it, else the node's cores divided by the ranks on
 * the node, or SLURM_CPUS_PER_TASK). */
int default_threads_per_rank(int local_ranks);

#endif
