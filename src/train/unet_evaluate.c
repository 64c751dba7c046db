/* unet_evaluate.c - `unet-evaluate --weights W --data FILE.h5 --out DIR`: score
 * saved weights on any shard file (a test split, val.h5, a training shard),
 * in parallel under mpirun, exactly as unet-train validates (evaluate.h):
 * prints pixel accuracy, mean IoU and the loss, and writes them with the
 * per-class IoU and the confusion matrix into DIR (eval_report.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/checkpoint.h"
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
          "  --threads N      OpenBLAS threads per rank (default: the cores of the rank)\n"
          "  --quiet          only errors (the metrics line is still printed on stdout)\n"
          "Pixels marked ignored at preprocessing (--ignore-value) count in no metric.\n"
          "exit codes: 0 done, 1 error, 2 bad command line\n");
}

typedef struct {
  const char *weights, *data, *out;
  int threads, quiet;
} EvalOptions;

static void parse_args(int argc, char **argv, EvalOptions *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      if (comm_rank() == 0) usage(stdout);
      comm_finalize();
      exit(UNET_EXIT_OK);
    }
    if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
    int takes_value = !strcmp(a, "--weights") || !strcmp(a, "--data") || !strcmp(a, "--out") || !strcmp(a, "--threads");
    if (!takes_value) unet_usage_error("unknown option '%s'", a);
    if (!v) unet_usage_error("%s needs a value", a);
    i++;
    if (!strcmp(a, "--weights")) o->weights = v;
    else if (!strcmp(a, "--data")) o->data = v;
    else if (!strcmp(a, "--out")) o->out = v;
    else {
      long n;
      if (unet_parse_int(v, &n) != 0 || n < 1 || n > 4096) unet_usage_error("--threads needs a positive integer, got '%s'", v);
      o->threads = (int)n;
    }
  }
  if (!o->weights || !o->data || !o->out) unet_usage_error("--weights, --data and --out are required");
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
  unet_plan(&m, EVAL_CHUNK);
  size_t pix = (size_t)m.height * m.width;
  float *x = xmalloc(EVAL_CHUNK * pix * 3 * sizeof(float), "input batch");
  uint8_t *labels = xmalloc(EVAL_CHUNK * pix, "labels");
  float *probs = xmalloc(EVAL_CHUNK * pix * m.num_classes * sizeof(float), "probabilities");
  uint8_t *scratch = xmalloc(SHARDSET_SCRATCH_BYTES(m.height, m.width), "read buffer");
  LossSpec spec = {NULL, set.has_ignore ? SHARD_IGNORE_ID : -1};
  EvalResult res;
  evaluate_set(&m, &set, &spec, x, labels, probs, scratch, &res);

  int rc = UNET_EXIT_OK;
  if (rank == 0) {
    int C = m.num_classes;
    int64_t counted = 0;
    for (int i = 0; i < C * C; i++) counted += res.confusion[i];
    printf("loss %.6f  pixel_accuracy %.6f  mean_iou %.6f  IoU", res.loss, res.accuracy, res.mean_iou);
    for (int k = 0; k < C; k++) printf(" %.6f", confusion_iou(res.confusion, C, k));
    printf("\n");
    fflush(stdout);
    EvalSummary sum = {C, res.confusion, res.loss, res.samples, o.weights, o.data};
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
