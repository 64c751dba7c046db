/* curves.c - metrics.csv -> curves.svg (curves.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unet/curves.h"
#include "unet/util.h"

/* ---- metrics.csv ---------------------------------------------------------------- */

enum { COL_EPOCH, COL_TRAIN_LOSS, COL_VAL_LOSS, COL_ACCURACY, COL_MEAN_IOU, COL_BEST, NUM_COLS };
static const char *const col_names[NUM_COLS] = {"epoch", "train_loss", "val_loss", "val_accuracy", "mean_iou", "best"};

typedef struct {
  int rows;
  double *v[NUM_COLS]; /* [rows]; NaN where empty */
} Metrics;

static void metrics_free(Metrics *mt) {
  for (int c = 0; c < NUM_COLS; c++) free(mt->v[c]);
  memset(mt, 0, sizeof *mt);
}

/* Splits line in place at commas (keeping empty fields); returns the count. */
static int split_csv(char *line, char **fields, int max) {
  int n = 0;
  line[strcspn(line, "\r\n")] = 0;
  for (char *p = line; n < max;) {
    fields[n++] = p;
    char *comma = strchr(p, ',');
    if (!comma) break;
    *comma = 0;
    p = comma + 1;
  }
  return n;
}

static double parse_field(const char *s) {
  while (*s == ' ') s++;
  if (!*s) return NAN;
  char *end;
  double v = strtod(s, &end);
  return end == s ? NAN : v;
}

static int read_metrics(const char *path, Metrics *mt, char *err, size_t err_len) {
  memset(mt, 0, sizeof *mt);
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_len, "%.900s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  char line[8192];
  char *fields[256];
  int idx[NUM_COLS];
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    snprintf(err, err_len, "%.900s: empty (no header)", path);
    return -1;
  }
  int nf = split_csv(line, fields, 256);
  for (int c = 0; c < NUM_COLS; c++) {
    idx[c] = -1;
    for (int i = 0; i < nf; i++)
      if (!strcmp(fields[i], col_names[c])) idx[c] = i;
    if (idx[c] < 0) {
      fclose(f);
      snprintf(err, err_len, "%.900s: no column '%s' in the header", path, col_names[c]);
      return -1;
    }
  }
  int cap = 0;
  while (fgets(line, sizeof line, f)) {
    nf = split_csv(line, fields, 256);
    if (nf == 1 && !fields[0][0]) continue; /* blank line */
    if (mt->rows == cap) {
      cap = cap ? 2 * cap : 64;
      for (int c = 0; c < NUM_COLS; c++) {
        double *p = realloc(mt->v[c], (size_t)cap * sizeof(double));
        if (!p) unet_fatal("out of memory reading %s", path);
        mt->v[c] = p;
      }
    }
    for (int c = 0; c < NUM_COLS; c++) mt->v[c][mt->rows] = idx[c] < nf ? parse_field(fields[idx[c]]) : NAN;
    if (isfinite(mt->v[COL_EPOCH][mt->rows])) mt->rows++;
  }
  fclose(f);
  if (mt->rows == 0) {
    metrics_free(mt);
    snprintf(err, err_len, "%.900s: no epoch rows yet", path);
    return -1;
  }
  return 0;
}

/* ---- SVG text ------------------------------------------------------------------ */

typedef struct {
  char *s;
  size_t len, cap;
} Buf;

static void out(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(Buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (b->s && (size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? 2 * b->cap : 16384;
    while (cap < b->len + (size_t)n + 1) cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) unet_fatal("out of memory drawing curves");
    b->s = p;
    b->cap = cap;
  }
}

/* the smallest of 1, 2, 2.5, 5 x 10^k at or above v, and a tick step for it */
static double nice_ceil(double v, double *step) {
  if (!(v > 0)) v = 1;
  double p = pow(10, floor(log10(v)));
  static const double mult[] = {1, 2, 2.5, 5, 10}, steps[] = {0.2, 0.5, 0.5, 1, 2};
  for (int i = 0; i < 5; i++)
    if (mult[i] * p >= v * (1 - 1e-12)) {
      *step = steps[i] * p;
      return mult[i] * p;
    }
  *step = 2 * p;
  return 10 * p;
}

typedef struct {
  double x0, y0;        /* plot area top-left */
  double e_lo, e_hi;    /* epoch range */
  double y_hi;          /* value range 0..y_hi */
} Axes;

static double px(const Axes *a, double e) { return a->x0 + (e - a->e_lo) / (a->e_hi - a->e_lo) * CURVES_PLOT_W; }
static double py(const Axes *a, double v) { return a->y0 + (1 - v / a->y_hi) * CURVES_PLOT_H; }

static void draw_axes(Buf *b, const Axes *a, double y_step, const char *ylabel, const char *title) {
  double x1 = a->x0 + CURVES_PLOT_W, y1 = a->y0 + CURVES_PLOT_H;
  out(b, "<text x=\"%.1f\" y=\"30\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">%s</text>\n",
      a->x0 + CURVES_PLOT_W / 2.0, title);
  /* horizontal grid and value ticks */
  for (int i = 0;; i++) {
    double v = i * y_step;
    if (v > a->y_hi * (1 + 1e-9)) break;
    double y = py(a, v);
    out(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n", a->x0, y, x1, y);
    out(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%g</text>\n", a->x0 - 6, y + 4, v);
  }
  /* epoch ticks: 1, 2, 5 x 10^k so that at most 8 intervals show */
  double span = a->e_hi - a->e_lo, step = 1;
  for (double p = 1;; p *= 10) {
    if (span / p <= 8) { step = p; break; }
    if (span / (2 * p) <= 8) { step = 2 * p; break; }
    if (span / (5 * p) <= 8) { step = 5 * p; break; }
  }
  for (double e = ceil(a->e_lo / step) * step; e <= a->e_hi + 1e-9; e += step) {
    if (e < a->e_lo - 1e-9 || e < 0) continue;
    double x = px(a, e);
    out(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n", x, a->y0, x, y1);
    out(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%g</text>\n", x, y1 + 18, e);
  }
  out(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333333\"/>\n", a->x0, a->y0,
      CURVES_PLOT_W, CURVES_PLOT_H);
  out(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">epoch</text>\n",
      a->x0 + CURVES_PLOT_W / 2.0, y1 + 38);
  out(b,
      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 %.1f %.1f)\">%s"
      "</text>\n",
      a->x0 - 46, a->y0 + CURVES_PLOT_H / 2.0, a->x0 - 46, a->y0 + CURVES_PLOT_H / 2.0, ylabel);
}

/* One series as polylines broken at missing values, with a marker per point. */
static void draw_series(Buf *b, const Axes *a, const Metrics *mt, int col, const char *colour) {
  int open = 0, markers = mt->rows <= 100;
  for (int r = 0; r < mt->rows; r++) {
    double v = mt->v[col][r];
    if (!isfinite(v)) {
      if (open) out(b, "\"/>\n");
      open = 0;
      continue;
    }
    if (!open)
      out(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" stroke-linejoin=\"round\" points=\"", colour);
    out(b, "%s%.2f,%.2f", open ? " " : "", px(a, mt->v[COL_EPOCH][r]), py(a, v));
    open = 1;
  }
  if (open) out(b, "\"/>\n");
  for (int r = 0; markers && r < mt->rows; r++) {
    double v = mt->v[col][r];
    if (isfinite(v)) out(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"%s\"/>\n", px(a, mt->v[COL_EPOCH][r]), py(a, v), colour);
  }
}

/* Legend entries in a row above the plot area. */
static void draw_legend(Buf *b, const Axes *a, int n, const char *const *labels, const char *const *colours,
                        const int *dashed) {
  double x = a->x0;
  for (int i = 0; i < n; i++) {
    out(b, "<line x1=\"%.1f\" y1=\"58\" x2=\"%.1f\" y2=\"58\" stroke=\"%s\" stroke-width=\"3\"%s/>\n", x, x + 24,
        colours[i], dashed[i] ? " stroke-dasharray=\"6 4\"" : "");
    out(b, "<text x=\"%.1f\" y=\"62\" font-size=\"13\">%s</text>\n", x + 30, labels[i]);
    x += 46 + 7.5 * (double)strlen(labels[i]);
  }
}

static void best_marker(Buf *b, const Axes *a, double epoch) {
  double x = px(a, epoch);
  out(b,
      "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"" CURVES_BEST
      "\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n",
      x, CURVES_PLOT_Y0, x, CURVES_PLOT_Y0 + CURVES_PLOT_H);
}

static char *render(const Metrics *mt) {
  Buf b = {0};
  double e_lo = mt->v[COL_EPOCH][0], e_hi = e_lo;
  double loss_max = 0;
  int best = -1, have_val = 0;
  for (int r = 0; r < mt->rows; r++) {
    double e = mt->v[COL_EPOCH][r];
    if (e < e_lo) e_lo = e;
    if (e > e_hi) e_hi = e;
    for (int c = COL_TRAIN_LOSS; c <= COL_VAL_LOSS; c++)
      if (isfinite(mt->v[c][r]) && mt->v[c][r] > loss_max) loss_max = mt->v[c][r];
    if (isfinite(mt->v[COL_VAL_LOSS][r])) have_val = 1;
    if (mt->v[COL_BEST][r] == 1) best = r;
  }
  if (e_hi == e_lo) {
    e_lo -= 1;
    e_hi += 1;
  }
  double loss_step, loss_hi = nice_ceil(loss_max, &loss_step);
  Axes loss = {CURVES_PLOT_X0, CURVES_PLOT_Y0, e_lo, e_hi, loss_hi};
  Axes metric = {CURVES_PLOT_X0 + CURVES_PANEL_DX, CURVES_PLOT_Y0, e_lo, e_hi, 1.0};

  out(&b,
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\" fill=\"#222222\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
      CURVES_WIDTH, CURVES_HEIGHT, CURVES_WIDTH, CURVES_HEIGHT);
  draw_axes(&b, &loss, loss_step, "loss (cross-entropy)", "Loss");
  draw_axes(&b, &metric, 0.2, "validation metric", "Validation pixel accuracy and mean IoU");
  if (best >= 0) {
    best_marker(&b, &loss, mt->v[COL_EPOCH][best]);
    best_marker(&b, &metric, mt->v[COL_EPOCH][best]);
  }
  draw_series(&b, &loss, mt, COL_TRAIN_LOSS, CURVES_TRAIN_LOSS);
  draw_series(&b, &loss, mt, COL_VAL_LOSS, CURVES_VAL_LOSS);
  draw_series(&b, &metric, mt, COL_ACCURACY, CURVES_ACCURACY);
  draw_series(&b, &metric, mt, COL_MEAN_IOU, CURVES_MEAN_IOU);
  if (best >= 0 && isfinite(mt->v[COL_VAL_LOSS][best])) {
    double x = px(&loss, mt->v[COL_EPOCH][best]), y = py(&loss, mt->v[COL_VAL_LOSS][best]);
    out(&b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"7\" fill=\"none\" stroke=\"" CURVES_BEST "\" stroke-width=\"2.5\"/>\n",
        x, y);
  }
  {
    const char *labels[] = {"train loss", "val loss", "best epoch"};
    const char *colours[] = {CURVES_TRAIN_LOSS, CURVES_VAL_LOSS, CURVES_BEST};
    const int dashed[] = {0, 0, 1};
    draw_legend(&b, &loss, best >= 0 ? 3 : 2, labels, colours, dashed);
  }
  {
    const char *labels[] = {"pixel accuracy", "mean IoU", "best epoch"};
    const char *colours[] = {CURVES_ACCURACY, CURVES_MEAN_IOU, CURVES_BEST};
    const int dashed[] = {0, 0, 1};
    draw_legend(&b, &metric, best >= 0 ? 3 : 2, labels, colours, dashed);
  }
  /* summary line */
  if (best >= 0)
    out(&b,
        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">%d epochs; best epoch %g: val loss %.4f, "
        "pixel accuracy %.4f, mean IoU %.4f</text>\n",
        CURVES_WIDTH / 2, CURVES_HEIGHT - 12, mt->rows, mt->v[COL_EPOCH][best], mt->v[COL_VAL_LOSS][best],
        mt->v[COL_ACCURACY][best], mt->v[COL_MEAN_IOU][best]);
  else
    out(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">%d epochs%s</text>\n", CURVES_WIDTH / 2,
        CURVES_HEIGHT - 12, mt->rows, have_val ? "" : "; no validation data (--val 0)");
  out(&b, "</svg>\n");
  return b.s;
}

int curves_write_svg(const char *metrics_csv, const char *svg_path, char *err, size_t err_len) {
  Metrics mt;
  if (read_metrics(metrics_csv, &mt, err, err_len) != 0) return -1;
  char *svg = render(&mt);
  metrics_free(&mt);
  int rc = unet_write_file_atomic(svg_path, svg, strlen(svg), err, err_len);
  free(svg);
  return rc;
}

void curves_update_run(const char *run_dir) {
  char csv[UNET_PATH_MAX], svg[UNET_PATH_MAX], err[1024];
  if (unet_path_join(csv, sizeof csv, run_dir, "metrics.csv") != 0 ||
      unet_path_join(svg, sizeof svg, run_dir, "curves.svg") != 0) {
    unet_warn("%s: path too long for curves.svg", run_dir);
    return;
  }
  unet_remove_stale_tmp(run_dir, "curves.svg"); /* left by a killed run */
  if (curves_write_svg(csv, svg, err, sizeof err) != 0) unet_warn("learning curves not updated: %s", err);
}
