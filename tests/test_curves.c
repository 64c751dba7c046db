/* test_curves.c - the learning-curve SVG (curves.h).
 *   test_curves          the SVG text: coordinates of every point from the
 *                        documented layout, gaps, best epoch, errors, atomic write
 *   test_curves browser  Debian's headless Chromium renders it; the screenshot
 *                        has each curve's colour at each epoch's expected pixel,
 *                        the best-epoch line at its column, and no curve in the
 *                        wrong panel (skips when chromium is absent) */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "unet/curves.h"
#include "unet/image.h"

#define EPOCHS 10
#define BEST 7

/* The data: train loss 1.9 -> 0.55, val loss falls to epoch 7 then rises, so
 * epochs 1..7 are each a new best; loss axis 0..2 (the nice ceiling of 1.9). */
static double train_loss(int e) { return 1.9 - 0.15 * (e - 1); }
static double val_loss(int e) { return e <= BEST ? 1.0 - 0.05 * (e - 1) : 0.7 + 0.05 * (e - BEST); }
static double accuracy(int e) { return 0.5 + 0.04 * (e - 1); }
static double mean_iou(int e) { return 0.2 + 0.03 * (e - 1); }
static const double LOSS_AXIS = 2.0;

static double ex(int panel, int e) {
  return CURVES_PLOT_X0 + panel * CURVES_PANEL_DX + (e - 1) / (double)(EPOCHS - 1) * CURVES_PLOT_W;
}
static double ey(double v, double axis) { return CURVES_PLOT_Y0 + (1 - v / axis) * CURVES_PLOT_H; }

static void write_csv(const char *path, int with_val, int nan_epoch) {
  FILE *f = fopen(path, "w");
  fprintf(f, "epoch,step,train_loss,val_loss,val_accuracy,iou_0,iou_1,iou_2,mean_iou,images_per_s,epoch_seconds,"
             "elapsed_seconds,best\n");
  for (int e = 1; e <= EPOCHS; e++) {
    fprintf(f, "%d,%d,", e, 7 * e);
    if (e == nan_epoch) fprintf(f, "nan,");
    else fprintf(f, "%.6f,", train_loss(e));
    if (with_val)
      fprintf(f, "%.6f,%.6f,0.1,0.2,0.3,%.6f,", val_loss(e), accuracy(e), mean_iou(e));
    else
      fprintf(f, ",,,,,,");
    fprintf(f, "12.5,3.1,%.2f,%d\n", 3.1 * e, with_val && e <= BEST);
  }
  fclose(f);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = calloc(1, (size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
  fclose(f);
  return s;
}

static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)); p++) n++;
  return n;
}

static int dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* The points of the polyline(s) stroked in colour, in order. */
static int polyline_points(const char *svg, const char *colour, double *xs, double *ys, int max, int *lines) {
  char key[64];
  snprintf(key, sizeof key, "stroke=\"%s\" stroke-width=\"2.5\" stroke-linejoin", colour);
  int n = 0;
  *lines = 0;
  for (const char *p = svg; (p = strstr(p, key)); p++) {
    (*lines)++;
    const char *q = strstr(p, "points=\"") + 8;
    while (*q != '"' && n < max) {
      char *end;
      xs[n] = strtod(q, &end);
      ys[n] = strtod(end + 1, &end);
      n++;
      q = end;
      while (*q == ' ') q++;
    }
  }
  return n;
}

static void check_series(const char *svg, const char *colour, int panel, double (*f)(int), double axis) {
  double xs[64], ys[64];
  int lines, n = polyline_points(svg, colour, xs, ys, 64, &lines);
  CHECK_MSG(n == EPOCHS && lines == 1, "%s: %d points in %d polylines", colour, n, lines);
  for (int i = 0; i < n && i < EPOCHS; i++) {
    CHECK_CLOSE(xs[i], ex(panel, i + 1), 0.01, 0);
    CHECK_CLOSE(ys[i], ey(f(i + 1), axis), 0.01, 0);
  }
}

static int unit(const char *dir) {
  char csv[512], svg[512], err[1024];
  snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
  snprintf(svg, sizeof svg, "%s/curves.svg", dir);
  write_csv(csv, 1, 0);
  CHECK(curves_write_svg(csv, svg, err, sizeof err) == 0);
  char *s = slurp(svg);
  CHECK(s && strstr(s, "<svg") && strstr(s, "</svg>"));
  if (!s) return 1;
  check_series(s, CURVES_TRAIN_LOSS, 0, train_loss, LOSS_AXIS);
  check_series(s, CURVES_VAL_LOSS, 0, val_loss, LOSS_AXIS);
  check_series(s, CURVES_ACCURACY, 1, accuracy, 1.0);
  check_series(s, CURVES_MEAN_IOU, 1, mean_iou, 1.0);
  CHECK(strstr(s, "best epoch 7: val loss 0.7000"));
  CHECK(count(s, "stroke=\"" CURVES_BEST "\" stroke-width=\"2\" stroke-dasharray") == 2); /* both panels */
  char ring[128];
  snprintf(ring, sizeof ring, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"7\"", ex(0, BEST), ey(val_loss(BEST), LOSS_AXIS));
  CHECK_MSG(strstr(s, ring), "no ring %s", ring);
  CHECK(strstr(s, ">train loss<") && strstr(s, ">val loss<") && strstr(s, ">pixel accuracy<") &&
        strstr(s, ">mean IoU<") && strstr(s, ">epoch<") && strstr(s, ">2<")); /* legend, axis, loss axis top */
  CHECK_MSG(dir_entries(dir) == 2, "temporaries left in %s", dir);
  free(s);

  /* --val 0: training loss only; a non-finite value breaks the line */
  write_csv(csv, 0, 4);
  CHECK(curves_write_svg(csv, svg, err, sizeof err) == 0);
  s = slurp(svg);
  double xs[64], ys[64];
  int lines, n = polyline_points(s, CURVES_TRAIN_LOSS, xs, ys, 64, &lines);
  CHECK_MSG(n == EPOCHS - 1 && lines == 2, "gap: %d points in %d lines", n, lines);
  CHECK(polyline_points(s, CURVES_VAL_LOSS, xs, ys, 64, &lines) == 0);
  CHECK(strstr(s, "no validation data") &&
        count(s, "stroke=\"" CURVES_BEST "\" stroke-width=\"2\" stroke-dasharray") == 0); /* no best epoch */
  free(s);

  /* errors name the file and the reason; nothing is written */
  char missing[600];
  snprintf(missing, sizeof missing, "%s/none.csv", dir);
  CHECK(curves_write_svg(missing, svg, err, sizeof err) == -1 && strstr(err, "none.csv") && strstr(err, "cannot read"));
  FILE *f = fopen(csv, "w");
  fprintf(f, "epoch,step,train_loss,val_loss,val_accuracy,best\n1,1,1,1,1,1\n");
  fclose(f);
  CHECK(curves_write_svg(csv, svg, err, sizeof err) == -1 && strstr(err, "'mean_iou'"));
  f = fopen(csv, "w");
  fprintf(f, "epoch,step,train_loss,val_loss,val_accuracy,mean_iou,best\n");
  fclose(f);
  CHECK(curves_write_svg(csv, svg, err, sizeof err) == -1 && strstr(err, "no epoch rows"));
  write_csv(csv, 1, 0);
  char bad[600];
  snprintf(bad, sizeof bad, "%s/no/such/dir/curves.svg", dir);
  CHECK(curves_write_svg(csv, bad, err, sizeof err) == -1 && strstr(err, "cannot create"));
  printf("err: %s\n", err);
  CHECK_MSG(dir_entries(dir) == 2, "temporaries left in %s", dir);
  CHECK_DONE();
}

/* ---- the browser ------------------------------------------------------------ */

static const Image *shot;

static int near_colour(int x, int y, const char *hex, int radius, int tol) {
  unsigned r, g, b;
  sscanf(hex + 1, "%02x%02x%02x", &r, &g, &b);
  for (int dy = -radius; dy <= radius; dy++)
    for (int dx = -radius; dx <= radius; dx++) {
      int xx = x + dx, yy = y + dy;
      if (xx < 0 || yy < 0 || xx >= shot->width || yy >= shot->height) continue;
      const unsigned char *p = shot->pixels + ((size_t)yy * shot->width + xx) * 3;
      if (abs(p[0] - (int)r) + abs(p[1] - (int)g) + abs(p[2] - (int)b) <= tol) return 1;
    }
  return 0;
}

/* pixels of the colour inside panel's plot area */
static int in_panel(int panel, const char *hex) {
  int n = 0;
  for (int y = CURVES_PLOT_Y0 + 2; y < CURVES_PLOT_Y0 + CURVES_PLOT_H - 1; y++)
    for (int x = CURVES_PLOT_X0 + panel * CURVES_PANEL_DX + 2; x < CURVES_PLOT_X0 + panel * CURVES_PANEL_DX + CURVES_PLOT_W - 1; x++)
      n += near_colour(x, y, hex, 0, 30);
  return n;
}

static void check_drawn(const char *name, const char *hex, int panel, double (*f)(int), double axis) {
  int hits = 0;
  for (int e = 1; e <= EPOCHS; e++) hits += near_colour((int)(ex(panel, e) + 0.5), (int)(ey(f(e), axis) + 0.5), hex, 2, 30);
  int own = in_panel(panel, hex), other = in_panel(1 - panel, hex);
  CHECK_MSG(hits == EPOCHS && own > 200 && other == 0, "%s %s: at %d of %d epochs, %d pixels in its panel, %d in the other",
            name, hex, hits, EPOCHS, own, other);
  printf("%s %s: at all %d epochs, %d pixels in its panel, %d in the other\n", name, hex, hits, own, other);
}

static int browser(const char *dir) {
  if (system("command -v chromium > /dev/null 2>&1") != 0) SKIP("chromium not installed (jobs/run-tests.sh installs it)");
  char csv[512], svg[512], png[512], profile[512], cmd[4096], err[1024];
  snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
  snprintf(svg, sizeof svg, "%s/curves.svg", dir);
  snprintf(png, sizeof png, "%s/curves.png", dir);
  snprintf(profile, sizeof profile, "%s/profile", dir);
  write_csv(csv, 1, 0);
  CHECK(curves_write_svg(csv, svg, err, sizeof err) == 0);
  snprintf(cmd, sizeof cmd,
           "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking "
           "--disable-component-update --disable-sync --no-first-run --user-data-dir=%s --hide-scrollbars "
           "--force-device-scale-factor=1 --window-size=%d,%d --screenshot=%s file://%s > %s/chromium.log 2>&1",
           profile, CURVES_WIDTH, CURVES_HEIGHT, png, svg, dir);
  int rc = system(cmd);
  Image img = {0};
  if (rc != 0 || image_load_rgb(png, &img, err, sizeof err) != 0) {
    snprintf(cmd, sizeof cmd, "tail -5 %s/chromium.log >&2", dir);
    if (system(cmd) != 0) { /* the log is only for the reader */ }
    CHECK_MSG(0, "chromium exited %d, screenshot: %s", rc, err);
    CHECK_DONE();
  }
  shot = &img;
  CHECK_MSG(img.width == CURVES_WIDTH && img.height == CURVES_HEIGHT, "screenshot %dx%d", img.width, img.height);
  long ink = 0;
  for (size_t i = 0; i < (size_t)img.width * img.height; i++) {
    const unsigned char *p = img.pixels + i * 3;
    ink += p[0] + p[1] + p[2] < 3 * 235;
  }
  double share = (double)ink / ((double)img.width * img.height);
  printf("screenshot %dx%d, %.1f%% of pixels drawn\n", img.width, img.height, 100 * share);
  CHECK_MSG(share > 0.03 && share < 0.5, "drawn share %.3f", share);
  check_drawn("train loss", CURVES_TRAIN_LOSS, 0, train_loss, LOSS_AXIS);
  check_drawn("val loss", CURVES_VAL_LOSS, 0, val_loss, LOSS_AXIS);
  check_drawn("pixel accuracy", CURVES_ACCURACY, 1, accuracy, 1.0);
  check_drawn("mean IoU", CURVES_MEAN_IOU, 1, mean_iou, 1.0);
  /* the dashed best-epoch line: red in most rows of its column, in both panels */
  for (int panel = 0; panel < 2; panel++) {
    int rows = 0, x = (int)(ex(panel, BEST) + 0.5);
    for (int y = CURVES_PLOT_Y0; y < CURVES_PLOT_Y0 + CURVES_PLOT_H; y++) rows += near_colour(x, y, CURVES_BEST, 1, 40);
    CHECK_MSG(rows > CURVES_PLOT_H / 3, "best-epoch line in panel %d: %d red rows", panel, rows);
    printf("best epoch %d in panel %d: red in %d of %d rows of column %d\n", BEST, panel, rows, CURVES_PLOT_H, x);
  }
  if (getenv("UNET_KEEP_SCREENSHOT")) {
    snprintf(cmd, sizeof cmd, "cp %s %s", png, getenv("UNET_KEEP_SCREENSHOT"));
    CHECK(system(cmd) == 0);
  }
  image_free(&img);
  CHECK_DONE();
}

int main(int argc, char **argv) {
  char dir[] = "/tmp/unet-curves.XXXXXX";
  if (!mkdtemp(dir)) return 1;
  int rc = argc > 1 && !strcmp(argv[1], "browser") ? browser(dir) : unit(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return rc;
}
