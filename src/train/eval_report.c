/* eval_report.c - see eval_report.h */
#include "unet/eval_report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "unet/image.h"
#include "unet/metrics.h"
#include "unet/util.h"

int eval_heatmap_cell(int c) {
  int s = 384 / (c > 0 ? c : 1);
  return s < 4 ? 4 : s > 48 ? 48 : s;
}

void eval_heatmap_colour(double v, uint8_t rgb[3]) {
  if (!(v >= 0)) v = 0; /* NaN: an empty row */
  if (v > 1) v = 1;
  rgb[0] = (uint8_t)lround(255 - 247 * v);
  rgb[1] = (uint8_t)lround(255 - 207 * v);
  rgb[2] = (uint8_t)lround(255 - 148 * v);
}

/* A CSV field: quoted, with embedded quotes doubled. */
static void csv_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static void csv_number(FILE *f, double v) {
  if (!isnan(v)) fprintf(f, "%.6f", v);
}

typedef void (*TextWriter)(FILE *f, const EvalSummary *e);

static int write_text(const char *dir, const char *name, TextWriter fn, const EvalSummary *e, char *err, size_t err_len) {
  char path[4300], tmp[4400];
  unet_path_join(path, sizeof path, dir, name);
  unet_tmp_path(tmp, sizeof tmp, path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, err_len, "%s: cannot create: %s", tmp, strerror(errno));
    return -1;
  }
  fn(f, e);
  int bad = ferror(f);
  if (fclose(f) != 0) bad = 1;
  if (bad || unet_commit_file(tmp, path) != 0) {
    snprintf(err, err_len, "%s: write failed: %s", path, strerror(errno ? errno : EIO));
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int64_t pixels_of(const EvalSummary *e) {
  int64_t n = 0;
  for (int i = 0; i < e->num_classes * e->num_classes; i++) n += e->confusion[i];
  return n;
}

static void metrics_csv(FILE *f, const EvalSummary *e) {
  int c = e->num_classes;
  fprintf(f, "weights,data,bn_statistics,samples,pixels,loss,pixel_accuracy,mean_iou");
  for (int k = 0; k < c; k++) fprintf(f, ",iou_%d", k);
  fprintf(f, ",tta\n"); /* last: the columns before it keep their places */
  csv_string(f, e->weights);
  fputc(',', f);
  csv_string(f, e->data);
  fputc(',', f);
  csv_string(f, e->bn_statistics ? e->bn_statistics : "moving");
  fprintf(f, ",%ld,%lld,", e->samples, (long long)pixels_of(e));
  csv_number(f, e->loss);
  fputc(',', f);
  csv_number(f, confusion_accuracy(e->confusion, c));
  fputc(',', f);
  csv_number(f, confusion_mean_iou(e->confusion, c));
  for (int k = 0; k < c; k++) {
    fputc(',', f);
    csv_number(f, confusion_iou(e->confusion, c, k));
  }
  fputc(',', f);
  csv_string(f, e->tta ? e->tta : "none");
  fprintf(f, "\n");
}

static void per_class_csv(FILE *f, const EvalSummary *e) {
  int c = e->num_classes;
  fprintf(f, "class,iou,precision,recall,true_pixels,predicted_pixels\n");
  for (int k = 0; k < c; k++) {
    int64_t t = 0, p = 0;
    for (int j = 0; j < c; j++) t += e->confusion[k * c + j], p += e->confusion[j * c + k];
    int64_t tp = e->confusion[k * c + k];
    fprintf(f, "%d,", k);
    csv_number(f, confusion_iou(e->confusion, c, k));
    fputc(',', f);
    csv_number(f, p ? (double)tp / (double)p : NAN);
    fputc(',', f);
    csv_number(f, t ? (double)tp / (double)t : NAN);
    fprintf(f, ",%lld,%lld\n", (long long)t, (long long)p);
  }
}

static void confusion_csv(FILE *f, const EvalSummary *e) {
  int c = e->num_classes;
  fprintf(f, "true\\predicted");
  for (int k = 0; k < c; k++) fprintf(f, ",%d", k);
  fprintf(f, "\n");
  for (int t = 0; t < c; t++) {
    fprintf(f, "%d", t);
    for (int p = 0; p < c; p++) fprintf(f, ",%lld", (long long)e->confusion[t * c + p]);
    fprintf(f, "\n");
  }
}

static int write_heatmap(const char *dir, const EvalSummary *e, char *err, size_t err_len) {
  int c = e->num_classes, s = eval_heatmap_cell(c), side = c * s;
  uint8_t *px = xmalloc((size_t)side * side * 3, "heat map");
  for (int t = 0; t < c; t++) {
    int64_t row = 0;
    for (int p = 0; p < c; p++) row += e->confusion[t * c + p];
    for (int p = 0; p < c; p++) {
      uint8_t rgb[3];
      eval_heatmap_colour(row ? (double)e->confusion[t * c + p] / (double)row : NAN, rgb);
      for (int y = t * s; y < (t + 1) * s; y++)
        for (int x = p * s; x < (p + 1) * s; x++) {
          /* a one-pixel grey grid between cells once they are large enough to see it */
          int edge = s >= 8 && (y == t * s || x == p * s);
          uint8_t *q = px + ((size_t)y * side + x) * 3;
          for (int k = 0; k < 3; k++) q[k] = edge ? 200 : rgb[k];
        }
    }
  }
  char path[4300], msg[1024];
  unet_path_join(path, sizeof path, dir, "confusion.png");
  int rc = image_write_png(path, px, side, side, 3, msg, sizeof msg);
  if (rc != 0) snprintf(err, err_len, "%s: %s", path, msg);
  xfree(px);
  return rc;
}

int eval_report_write(const char *dir, const EvalSummary *e, char *err, size_t err_len) {
  static const char *const names[] = {"metrics.csv", "per_class.csv", "confusion.csv"};
  static const TextWriter writers[] = {metrics_csv, per_class_csv, confusion_csv};
  int written = 0, rc = 0;
  for (int i = 0; i < 3 && rc == 0; i++) {
    rc = write_text(dir, names[i], writers[i], e, err, err_len);
    if (rc == 0) written++;
  }
  if (rc == 0) rc = write_heatmap(dir, e, err, err_len);
  for (int i = 0; i < written && rc != 0; i++) { /* all or nothing: the reports already written go again */
    char path[4300];
    unet_path_join(path, sizeof path, dir, names[i]);
    unlink(path);
  }
  return rc;
}
