/* eval_report.h - what unet-evaluate writes into its output folder, from the
 * confusion matrix and the loss of a scored shard file:
 *   metrics.csv     one row: weights, data, bn_statistics, samples, counted
 *                   pixels, loss, pixel_accuracy, mean_iou, iou_0..iou_{C-1}, tta
 *   per_class.csv   class, iou, precision, recall, true_pixels, predicted_pixels
 *                   (empty fields where a value is undefined: a class absent and
 *                   never predicted)
 *   confusion.csv   the C x C pixel counts, rows = true class, columns = predicted
 *   confusion.png   heat map of the row-normalised matrix (each true class's
 *                   pixels spread over the predictions): white 0 .. dark blue 1,
 *                   one square cell per pair, row 0 at the top, column 0 left
 * Every file is written to NAME.tmp.<pid> and renamed. */
#ifndef UNET_EVAL_REPORT_H
#define UNET_EVAL_REPORT_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int num_classes;
  const int64_t *confusion; /* [C * C], confusion[true * C + predicted] */
  double loss;              /* mean over the counted (not ignored) pixels */
  long samples;
  const char *weights, *data; /* for the record in metrics.csv */
  const char *bn_statistics;  /* "moving", or how they were recomputed */
  const char *tta;            /* test-time augmentation: "none" or "flip" */
} EvalSummary;

/* Side of one heat-map cell in pixels for C classes. */
int eval_heatmap_cell(int num_classes);
/* The heat map's colour for a share v in [0, 1]. */
void eval_heatmap_colour(double v, uint8_t rgb[3]);

/* 0 ok; -1 with the file at fault in err (nothing half-written is left). */
int eval_report_write(const char *dir, const EvalSummary *e, char *err, size_t err_len);

#endif
