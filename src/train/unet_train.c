/* unet_train.c - command line of the trainer: `mpirun -np N unet-train ...`
 * or `srun --mpi=pmix unet-train ...`; one process works too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/class_weights.h"
#include "unet/comm.h"
#include "unet/run_folder.h"
#include "unet/trainer.h"
#include "unet/util.h"
#include "unet/watchdog.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-train --data DIR --out DIR [options]\n"
          "  --data DIR            preprocessed shards (train-*.h5, optional val.h5) from unet-preprocess\n"
          "  --out DIR             run directory: metrics.csv, best.weights.h5, last.ckpt.h5, predictions/\n"
          "  --epochs N            total epochs (default 50)\n"
          "  --batch N             global batch, split over the ranks (default 32)\n"
          "  --lr X                Adam learning rate (default 1e-4)\n"
          "  --seed N              initialisation and data order (default 1337)\n"
          "                        (--resume continues the checkpoint's batch and seed unless given)\n"
          "  --init-weights FILE   start from a Keras .weights.h5\n"
          "  --resume              continue from OUT/last.ckpt.h5 up to --epochs in all\n"
          "  --overwrite           replace an earlier run in OUT (without it, or --resume, such a folder is refused)\n"
          "  --max-train N         use only the first N training samples (max_dataset_len)\n"
          "  --steps N             stop after N optimizer steps (writes last.ckpt.h5)\n"
          "  --no-shuffle          keep the data order of the shards every epoch\n"
          "  --no-sync-bn          BatchNorm statistics per rank (Keras' default) instead of global\n"
          "  --no-overlap          reduce gradients after backward instead of during it\n"
          "  --threads N           OpenBLAS threads per rank (default: cores per rank)\n"
          "  --val-images N        validation images drawn as prediction PNGs (default 4)\n"
          "  --bn-recalibrate K    not Keras: validate (and keep best weights) with BatchNorm statistics\n"
          "                        averaged over K training batches instead of the lagging moving averages\n"
          "  --dump-gradients FILE write the first step's averaged gradient (Keras layout) and exit\n"
          "  --evaluate            only validate the starting weights (--init-weights or --resume) and print\n"
          "  --stall-timeout S     end the job (exit 5) when no rank has made progress for S seconds,\n"
          "                        naming the stuck rank(s), step and phase; a warning at S/2; 0 = off\n"
          "                        (default: max(300, 20 x the median step time))\n"
          "  --quiet               only errors\n"
          "the recipe beyond Keras (off by default; see README):\n"
          "  --recipe keras|generalise  keras (default): the example's recipe; generalise: augmentation,\n"
          "                        batch 8, lr 2e-3 cosine with 3 warm-up epochs, weight decay 0.05,\n"
          "                        --bn-recalibrate 6, --early-stop 20, --tta flip, 60 epochs; other options\n"
          "                        override its parts\n"
          "  --data-order shard|global  shard (default): each rank shuffles its own slice; global: one\n"
          "                        permutation of the whole set per epoch, independent of the rank count\n"
          "  --augment LIST        flip,scale,color (any subset) or none: training samples only\n"
          "  --lr-schedule constant|cosine|step  (default constant; step: x0.1 at 1/2 and 3/4 of the run)\n"
          "  --warmup-epochs E     linear warm-up over E epochs (default 0)\n"
          "  --lr-scaling linear|none  linear: --lr is for a global batch of 32, scaled by batch/32\n"
          "  --weight-decay W      decoupled (AdamW) decay of the kernels (default 0 = Keras Adam)\n"
          "  --early-stop N        stop after N epochs without a new best val_loss (default 0 = off)\n"
          "  --tta flip|none       flip: validate (val_loss, metrics, best) on the mean logits of each\n"
          "                        image and its mirror image (default none)\n"
          "  --no-prefetch         read each batch on the training thread (same data, no overlap)\n"
          "users' own data (see README \"Your own data\"):\n"
          "  --class-weights auto|w0,w1,...  weigh each pixel's loss by its class: auto = median-frequency\n"
          "                        balancing from the training shards; off by default (give it again on --resume)\n"
          "  (pixels stored as ignored by unet-preprocess --ignore-value count in no loss or metric)\n"
          "exit codes: 0 done, 1 error, 2 bad command line, 3 stopped by SIGTERM/SIGUSR1 with last.ckpt.h5\n"
          "            written (resume with --resume), 4 loss became NaN/inf, 5 stalled (--stall-timeout:\n"
          "            a rank stopped making progress; not resumed automatically); OUT/status says the same\n"
          "            (under mpirun, whose own exit code is 1 after a SIGTERM, read OUT/status)\n");
}

/* A usage error: printed once (unet_set_usage_exit makes the other ranks
 * quiet); returns 1 for `bad`, and every rank then returns 2. */
static int usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  unet_usage_vmessage(fmt, ap);
  va_end(ap);
  return 1;
}

static int need_int(const char *opt, const char *val, long lo, long *out) {
  if (!val || unet_parse_int(val, out) != 0 || *out < lo) {
    usage_fail("%s needs an integer >= %ld, got '%s'", opt, lo, val ? val : "(nothing)");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  unet_set_progname("unet-train");
  /* the stall watchdog's thread needs MPI_THREAD_MULTIPLE; --stall-timeout 0 keeps plain MPI_Init */
  int watchdog_off = 0;
  for (int i = 1; i + 1 < argc; i++) {
    double t;
    if (!strcmp(argv[i], "--stall-timeout") && unet_parse_double(argv[i + 1], &t) == 0 && t == 0) watchdog_off = 1;
  }
  if (watchdog_off)
    comm_init(&argc, &argv);
  else
    comm_init_threaded(&argc, &argv);
  unet_set_usage_exit(comm_finalize, comm_rank() != 0);
  TrainConfig c;
  train_config_defaults(&c);
  int bad = 0;
  /* --recipe first, wherever it stands: the other options override its parts */
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--recipe") && train_config_recipe(&c, argv[i + 1]) != 0)
      bad = usage_fail("--recipe: unknown recipe '%s' (known: keras, generalise)", argv[i + 1]);
  for (int i = 1; i < argc && !bad; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long n;
    double d;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      if (comm_rank() == 0) usage(stdout);
      comm_finalize();
      return 0;
    } else if (!strcmp(a, "--data") && v) { c.data_dir = v; i++; }
    else if (!strcmp(a, "--out") && v) { c.out_dir = v; i++; }
    else if (!strcmp(a, "--init-weights") && v) { c.init_weights = v; i++; }
    else if (!strcmp(a, "--dump-gradients") && v) { c.dump_gradients = v; i++; }
    else if (!strcmp(a, "--epochs")) { bad = need_int(a, v, 1, &n); c.epochs = (int)n; i++; }
    else if (!strcmp(a, "--batch")) { bad = need_int(a, v, 1, &n); c.global_batch = (int)n; i++; }
    else if (!strcmp(a, "--seed")) { bad = need_int(a, v, 0, &n); c.seed = n; i++; }
    else if (!strcmp(a, "--max-train")) { bad = need_int(a, v, 1, &n); c.max_train = n; i++; }
    else if (!strcmp(a, "--steps")) { bad = need_int(a, v, 1, &n); c.max_steps = n; i++; }
    else if (!strcmp(a, "--threads")) { bad = need_int(a, v, 1, &n); c.threads = (int)n; i++; }
    else if (!strcmp(a, "--val-images")) { bad = need_int(a, v, 0, &n); c.val_images = (int)n; i++; }
    else if (!strcmp(a, "--bn-recalibrate")) { bad = need_int(a, v, 1, &n); c.bn_recalibrate = (int)n; i++; }
    else if (!strcmp(a, "--tta")) {
      if (v && !strcmp(v, "flip")) c.flip_tta = 1;
      else if (v && !strcmp(v, "none")) c.flip_tta = 0;
      else bad = usage_fail("--tta: unknown '%s' (known: flip, none)", v ? v : "(nothing)");
      i++;
    }
    else if (!strcmp(a, "--lr")) {
      if (!v || unet_parse_double(v, &d) != 0 || !(d > 0)) bad = usage_fail("--lr needs a positive number, got '%s'", v ? v : "(nothing)");
      c.lr = d;
      i++;
    }
    else if (!strcmp(a, "--stall-timeout")) {
      if (!v || unet_parse_double(v, &d) != 0 || !(d >= 0))
        bad = usage_fail("--stall-timeout needs seconds >= 0 (0 = off), got '%s'", v ? v : "(nothing)");
      c.stall_timeout = d;
      i++;
    }
    else if (!strcmp(a, "--recipe") && v) i++; /* applied above */
    else if (!strcmp(a, "--data-order") && v) {
      if (!strcmp(v, "shard")) c.data_order = DATA_ORDER_SHARD;
      else if (!strcmp(v, "global")) c.data_order = DATA_ORDER_GLOBAL;
      else bad = usage_fail("--data-order: '%s' is neither shard nor global", v);
      i++;
    }
    else if (!strcmp(a, "--augment") && v) {
      char e[256];
      if (augment_parse(v, &c.augment, e, sizeof e) != 0) bad = usage_fail("%s", e);
      i++;
    }
    else if (!strcmp(a, "--lr-schedule") && v) {
      if (lr_schedule_parse(v, &c.lr_schedule) != 0)
        bad = usage_fail("--lr-schedule: '%s' is not constant, cosine or step", v);
      i++;
    }
    else if (!strcmp(a, "--lr-scaling") && v) {
      if (!strcmp(v, "linear")) c.lr_scaling = 1;
      else if (!strcmp(v, "none")) c.lr_scaling = 0;
      else bad = usage_fail("--lr-scaling: '%s' is neither linear nor none", v);
      i++;
    }
    else if (!strcmp(a, "--warmup-epochs") || !strcmp(a, "--weight-decay")) {
      if (!v || unet_parse_double(v, &d) != 0 || !(d >= 0))
        bad = usage_fail("%s needs a number >= 0, got '%s'", a, v ? v : "(nothing)");
      if (!strcmp(a, "--warmup-epochs")) c.warmup_epochs = d; else c.weight_decay = d;
      i++;
    }
    else if (!strcmp(a, "--early-stop")) { bad = need_int(a, v, 0, &n); c.early_stop = (int)n; i++; }
    else if (!strcmp(a, "--class-weights") && v) {
      c.class_weights_auto = !strcmp(v, "auto");
      if (!c.class_weights_auto && class_weights_parse(v, c.class_weights, UNET_MAX_CLASSES, &c.num_class_weights) != 0)
        bad = usage_fail("--class-weights: '%s' is neither auto nor a list of positive weights such as 1,2.5,0.8", v);
      i++;
    }
    else if (!strcmp(a, "--resume")) c.resume = 1;
    else if (!strcmp(a, "--no-prefetch")) c.no_prefetch = 1;
    else if (!strcmp(a, "--overwrite")) c.overwrite = 1;
    else if (!strcmp(a, "--no-shuffle")) c.shuffle = 0;
    else if (!strcmp(a, "--no-sync-bn")) c.sync_bn = 0;
    else if (!strcmp(a, "--no-overlap")) c.overlap = 0;
    else if (!strcmp(a, "--quiet")) c.quiet = 1;
    else if (!strcmp(a, "--evaluate")) c.evaluate_only = 1;
    else bad = usage_fail("unknown or incomplete option '%s'", a);
  }
  if (!bad && (!c.data_dir || (!c.out_dir && !c.dump_gradients && !c.evaluate_only)))
    bad = usage_fail("--data and --out are required");
  if (!bad && c.resume && c.init_weights) bad = usage_fail("--resume and --init-weights exclude each other");
  if (!bad && c.resume && c.overwrite) bad = usage_fail("--resume and --overwrite exclude each other");
  if (!bad && c.evaluate_only && !c.resume && !c.init_weights)
    bad = usage_fail("--evaluate scores given weights: add --init-weights FILE or --resume (with --out RUN)");
  /* an earlier run in OUT is never replaced silently (rank 0 looks, all ranks agree) */
  if (!bad && c.out_dir && !c.resume && !c.overwrite && !c.dump_gradients && !c.evaluate_only) {
    char what[UNET_PATH_MAX] = "";
    int found = comm_rank() == 0 ? run_folder_has_run(c.out_dir, what, sizeof what) : 0;
    comm_bcast(&found, sizeof found, 0);
    if (found)
      bad = usage_fail("%s holds an earlier run (%s): continue it with --resume, or replace it with --overwrite",
                       c.out_dir, what);
  }
  if (!c.out_dir) c.out_dir = "."; /* --dump-gradients / --evaluate write nothing else */
  if (bad) {
    comm_finalize();
    return UNET_EXIT_USAGE;
  }
  int rc = train_run(&c);
  comm_finalize();
  return rc;
}
