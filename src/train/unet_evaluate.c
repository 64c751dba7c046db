/* unet_evaluate.c - `unet-evaluate --weights W --data FILE.h5 --out DIR`: score
 * saved weights on any shard file (a test split, val.h5, a training shard),
 * in parallel under mpirun, exactly as unet-train validates (evaluate.h):
 * prints pixel accuracy, mean IoU and the loss, and writes them with the
 * per-class IoU and the confusion matrix into DIR (eval_report.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/weights_keras.h"
#include "unet/comm.h"
#include "unet/data_loader.h"
#include "unet/eval_report.h"
#include "unet/evaluate.h"
#include "unet/metrics.h"
#include "unet/model.h"
#include "unet/trainer.h"
#include "unet/util.h"

extern void openblas_set_num_threads(int num_threads);

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-evaluate --weights FILE --data FILE.h5 --out DIR [options]\n"
          "       mpirun -np N unet-evaluate ... (the samples are spread over the ranks)\n"
          "  --weights FILE   best.weights.h5, last.ckpt.h5 or a Keras .weights.h5\n"
          "  --data FILE.h5   any shard file of unet-preprocess (test.h5 of --split test, val.h5, ...)\n"
          "  --out DIR        writes metrics.csv, per_class.csv, confusion.csv and confusion.png\n"
          "  --bn-recalibrate K  not Keras: score with BatchNorm statistics averaged over K batches of\n"
          "                   training samples instead of the weights' moving statistics\n"
          "  --train-data DIR the training shards for --bn-recalibrate (default: the folder of --data)\n"
          "  --batch N        global batch of the recalibration, split over the ranks (default 32)\n"
          "  --threads N      OpenBLAS threads per rank (default: the cores of the rank)\n"
          "  --tta flip       not Keras: average the logits of each image and its mirror image\n"
          "  --quiet          only errors (the metrics line is still printed on stdout)\n"
          "Pixels marked ignored at preprocessing (--ignore-value) count in no metric.\n"
          "exit codes: 0 done, 1 error, 2 bad command line\n");
}

typedef struct {
  const char *weights, *data, *out, *train_data;
  int threads, quiet, bn_recalibrate, batch, flip_tta;
} EvalOptions;

static void parse_args(int argc, char **argv, EvalOptions *o) {
  memset(o, 0, sizeof *o);
  o->batch = 32;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      if (comm_rank() == 0) usage(stdout);
      comm_finalize();
      exit(UNET_EXIT_OK);
    }
    if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
    int takes_value = !strcmp(a, "--weights") || !strcmp(a, "--data") || !strcmp(a, "--out") || !strcmp(a, "--threads") ||
                      !strcmp(a, "--bn-recalibrate") || !strcmp(a, "--train-data") || !strcmp(a, "--batch") || !strcmp(a, "--tta");
    if (!takes_value) unet_usage_error("unknown option '%s'", a);
    if (!v) unet_usage_error("%s needs a value", a);
    i++;
    if (!strcmp(a, "--weights")) o->weights = v;
    else if (!strcmp(a, "--data")) o->data = v;
    else if (!strcmp(a, "--out")) o->out = v;
    else if (!strcmp(a, "--train-data")) o->train_data = v;
    else if (!strcmp(a, "--tta")) {
      if (!strcmp(v, "flip")) o->flip_tta = 1;
      else if (strcmp(v, "none")) unet_usage_error("--tta: unknown '%s' (known: flip, none)", v);
    }
    else {
      long n;
      if (unet_parse_int(v, &n) != 0 || n < 1 || n > 1000000) unet_usage_error("%s needs a positive integer, got '%s'", a, v);
      if (!strcmp(a, "--threads")) o->threads = (int)n;
      else if (!strcmp(a, "--batch")) o->batch = (int)n;
      else o->bn_recalibrate = (int)n;
    }
  }
  if (!o->weights || !o->data || !o->out) unet_usage_error("--weights, --data and --out are required");
  if (o->train_data && !o->bn_recalibrate) unet_usage_error("--train-data is for --bn-recalibrate");
  if (o->bn_recalibrate && o->batch < comm_size())
    unet_usage_error("--batch %d is smaller than the %d ranks: every rank needs a sample per batch", o->batch, comm_size());
}

/* --bn-recalibrate K: the BatchNorm statistics become the plain mean of K
 * global batches' statistics (momentum 1 - 1/k for the k-th), synchronized over
 * the ranks as in training. Batch k is the training samples
 * [k*B, (k+1)*B) mod N in shard order, rank r computing its contiguous part, so
 * the result depends on K and B only, not on the rank count. */
static void recalibrate(UNet *m, const EvalOptions *o, const ShardSet *data) {
  char dir[UNET_PATH_MAX], err[2048];
  if (o->train_data) {
    snprintf(dir, sizeof dir, "%s", o->train_data);
  } else {
    snprintf(dir, sizeof dir, "%s", o->data);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
  }
  ShardSet train;
  if (shardset_open(&train, dir, "train", err, sizeof err) != 0)
    unet_fatal("--bn-recalibrate needs training shards: %s (give --train-data DIR)", err);
  if (train.height != data->height || train.width != data->width || train.num_classes != data->num_classes)
    unet_fatal("--train-data %s: %dx%d with %d classes, but --data is %dx%d with %d", dir, train.height, train.width,
               train.num_classes, data->height, data->width, data->num_classes);
  int P = comm_size(), rank = comm_rank(), B = o->batch;
  int local = B / P + (rank < B % P), offset = rank * (B / P) + (rank < B % P ? rank : B % P);
  unet_plan(m, local > EVAL_CHUNK ? local : EVAL_CHUNK);
  size_t pix = (size_t)m->height * m->width;
  float *x = xmalloc((size_t)local * pix * 3 * sizeof(float), "recalibration batch");
  uint8_t *labels = xmalloc((size_t)local * pix, "recalibration labels");
  uint8_t *scratch = xmalloc(SHARDSET_SCRATCH_BYTES(m->height, m->width), "read buffer");
  long *index = xmalloc(sizeof(long) * (size_t)local, "batch index");
  for (int k = 1; k <= o->bn_recalibrate; k++) {
    for (int i = 0; i < local; i++) index[i] = (long)(((int64_t)(k - 1) * B + offset + i) % train.total);
    if (shardset_read_batch(&train, index, local, NULL, 0, 0, x, labels, scratch, err, sizeof err) != 0)
      unet_fatal("training data: %s", err);
    unet_average_batch_stats(m, x, local, k, comm_batchnorm_reducer());
  }
  if (rank == 0 && !o->quiet)
    unet_info("BatchNorm statistics recomputed over %d batch(es) of %d training samples of %s (not Keras)",
              o->bn_recalibrate, B, dir);
  xfree(x); xfree(labels); xfree(scratch); xfree(index);
  shardset_close(&train);
}

int main(int argc, char **argv) {
  unet_set_progname("unet-evaluate");
  comm_init(&argc, &argv);
  int rank = comm_rank();
  unet_set_usage_exit(comm_finalize, rank != 0);
  EvalOptions o;
  parse_args(argc, argv, &o);
  openblas_set_num_threads(o.threads > 0 ? o.threads : default_threads_per_rank(comm_local_size()));
  double t0 = unet_now();

  char err[2048];
  ShardSet set;
  if (shardset_open_file(&set, o.data, err, sizeof err) != 0) unet_fatal("--data: %s", err);
  if (set.total == 0) unet_fatal("--data: %s holds no samples", o.data);
  UNet m;
  if (unet_create(&m, set.height, set.width, set.num_classes, err, sizeof err) != 0) unet_fatal("--data %s: %s", o.data, err);
  if (weights_load_keras(&m, o.weights, err, sizeof err) != 0) unet_fatal("--weights: %s", err);
  if (o.bn_recalibrate) recalibrate(&m, &o, &set);
  unet_plan(&m, EVAL_CHUNK);
  size_t pix = (size_t)m.height * m.width;
  float *x = xmalloc(EVAL_CHUNK * pix * 3 * sizeof(float), "input batch");
  uint8_t *labels = xmalloc(EVAL_CHUNK * pix, "labels");
  float *probs = xmalloc(EVAL_CHUNK * pix * m.num_classes * sizeof(float), "probabilities");
  uint8_t *scratch = xmalloc(SHARDSET_SCRATCH_BYTES(m.height, m.width), "read buffer");
  LossSpec spec = {NULL, set.has_ignore ? SHARD_IGNORE_ID : -1};
  EvalResult res;
  (o.flip_tta ? evaluate_set_flip_tta : evaluate_set)(&m, &set, &spec, x, labels, probs, scratch, &res);

  int rc = UNET_EXIT_OK;
  if (rank == 0) {
    int C = m.num_classes;
    int64_t counted = 0;
    for (int i = 0; i < C * C; i++) counted += res.confusion[i];
    printf("loss %.6f  pixel_accuracy %.6f  mean_iou %.6f  IoU", res.loss, res.accuracy, res.mean_iou);
    for (int k = 0; k < C; k++) printf(" %.6f", confusion_iou(res.confusion, C, k));
    printf("\n");
    fflush(stdout);
    char stats[128] = "moving";
    if (o.bn_recalibrate) snprintf(stats, sizeof stats, "recalibrated over %d x %d training samples", o.bn_recalibrate, o.batch);
    EvalSummary sum = {C, res.confusion, res.loss, res.samples, o.weights, o.data, stats, o.flip_tta ? "flip" : "none"};
    if (unet_mkdir_output(o.out) != 0) {
      unet_error("%s: cannot create: %s", o.out, strerror(errno));
      rc = UNET_EXIT_ERROR;
    } else if (eval_report_write(o.out, &sum, err, sizeof err) != 0) {
      unet_error("%s", err);
      unet_remove_created_dirs();
      rc = UNET_EXIT_ERROR;
    } else if (!o.quiet) {
      unet_info("%ld samples, %lld counted pixels%s, %dx%d, %d classes, %d rank(s), %.1f s: %s/metrics.csv, "
                "per_class.csv, confusion.csv, confusion.png",
                res.samples, (long long)counted, set.has_ignore ? " (ignored ones left out)" : "", m.height, m.width, C,
                comm_size(), unet_now() - t0, o.out);
    }
  }
  comm_bcast(&rc, sizeof rc, 0);
  eval_result_free(&res);
  xfree(x); xfree(labels); xfree(probs); xfree(scratch);
  unet_destroy(&m);
  shardset_close(&set);
  comm_finalize();
  return rc;
}
