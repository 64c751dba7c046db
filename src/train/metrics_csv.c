/* metrics_csv.c - see metrics_csv.h */
#include "metrics_csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/util.h"

static void csv_header(FILE *f, int C) {
  fprintf(f, "epoch,step,train_loss,val_loss,val_accuracy");
  for (int k = 0; k < C; k++) fprintf(f, ",iou_%d", k);
  fprintf(f, ",mean_iou,images_per_s,epoch_seconds,elapsed_seconds,best,lr,data_wait_seconds\n");
}

void metrics_csv_start(const char *path, int num_classes, int64_t keep_epochs) {
  char tmp[UNET_TMP_PATH_MAX];
  unet_tmp_path(tmp, sizeof tmp, path);
  FILE *out = fopen(tmp, "w");
  if (!out) unet_fatal("%s: cannot write: %s", tmp, strerror(errno));
  csv_header(out, num_classes);
  FILE *in = keep_epochs > 0 ? fopen(path, "r") : NULL;
  if (in) {
    char line[8192];
    int first = 1;
    while (fgets(line, sizeof line, in)) {
      if (first) { first = 0; continue; }
      long epoch = strtol(line, NULL, 10);
      if (epoch >= 1 && epoch <= keep_epochs) fputs(line, out);
    }
    fclose(in);
  }
  if (fclose(out) != 0 || unet_commit_file(tmp, path) != 0) {
    remove(tmp);
    unet_fatal("%s: cannot write: %s", path, strerror(errno));
  }
}

void metrics_csv_append(const char *path, int num_classes, const EpochRow *row) {
  FILE *f = fopen(path, "a");
  if (!f) unet_fatal("%s: cannot append: %s", path, strerror(errno));
  const ValResult *v = row->val;
  fprintf(f, "%lld,%lld,%.6f,", (long long)row->epoch, (long long)row->step, row->train_loss);
  if (v) {
    fprintf(f, "%.6f,%.6f", v->loss, v->accuracy);
    for (int k = 0; k < num_classes; k++) fprintf(f, ",%.6f", v->iou[k]);
    fprintf(f, ",%.6f", v->mean_iou);
  } else { /* the same C + 3 fields, empty */
    fprintf(f, ",,");
    for (int k = 0; k < num_classes; k++) fprintf(f, ",");
  }
  fprintf(f, ",%.3f,%.2f,%.2f,%d,%.9g,%.3f\n", row->images_per_s, row->epoch_seconds, row->elapsed_seconds, row->best,
          row->lr, row->data_wait_seconds);
  if (fclose(f) != 0) unet_fatal("%s: write failed: %s", path, strerror(errno));
}
