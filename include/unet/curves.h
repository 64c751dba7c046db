/* curves.h - learning curves as an SVG drawn from metrics.csv (no library:
 * any browser opens it). Left panel: training and validation loss against the
 * epoch; right panel: validation pixel accuracy and mean IoU (0..1). The best
 * epoch (the last row with best = 1) is a dashed vertical line in both panels
 * and a ring on its validation loss. Rows with empty or non-finite values
 * leave gaps (a run with --val 0 has the training loss only).
 *
 * The layout is fixed, so a screenshot can be checked pixel by pixel: the
 * picture is CURVES_WIDTH x CURVES_HEIGHT; panel p (0 loss, 1 metrics) plots
 * into x in [CURVES_PLOT_X0 + p * CURVES_PANEL_DX, ... + CURVES_PLOT_W] and
 * y in [CURVES_PLOT_Y0, CURVES_PLOT_Y0 + CURVES_PLOT_H]; epochs span the first
 * to the last epoch of the file (one epoch: e - 1 .. e + 1), the loss axis
 * 0 .. the smallest of 1, 2, 2.5, 5 x 10^k at or above the largest loss, the
 * metrics axis 0 .. 1. Legends sit above the plot areas. */
#ifndef UNET_CURVES_H
#define UNET_CURVES_H
#include <stddef.h>

enum {
  CURVES_WIDTH = 960,
  CURVES_HEIGHT = 460,
  CURVES_PLOT_X0 = 70,
  CURVES_PANEL_DX = 480,
  CURVES_PLOT_W = 380,
  CURVES_PLOT_Y0 = 80,
  CURVES_PLOT_H = 300
};

/* Series colours (SVG #rrggbb) */
#define CURVES_TRAIN_LOSS "#1f77b4"
#define CURVES_VAL_LOSS "#ff7f0e"
#define CURVES_ACCURACY "#2ca02c"
#define CURVES_MEAN_IOU "#9467bd"
#define CURVES_BEST "#d62728"

/* Reads metrics_csv (header names the columns: epoch, train_loss, val_loss,
 * val_accuracy, mean_iou, best) and writes svg_path atomically
 * (svg_path.tmp.<pid>, then rename). 0 ok; -1 with a reason naming the file
 * (unreadable, no epoch rows, a missing column, cannot write). */
int curves_write_svg(const char *metrics_csv, const char *svg_path, char *err, size_t err_len);

/* The trainer's hook, after each metrics.csv row: RUN/metrics.csv ->
 * RUN/curves.svg, removing temporaries a killed run left. A failure is a
 * warning (the curves never stop training). */
void curves_update_run(const char *run_dir);

#endif
