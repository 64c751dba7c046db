/* test_evaluate.c - unet-evaluate against metrics computed by hand. The
 * weights are all zero but the head's bias b, so the network's logits are b at
 * every pixel (every layer outputs 0: zero kernels, BatchNorm with gamma 0),
 * the prediction is argmax b everywhere and each pixel's loss is
 * -log softmax(b)[label]: the confusion matrix, accuracy, IoUs and the loss
 * follow from the label counts alone. The test file (written here with the
 * shard writer) has an ignore value, whose pixels must count nowhere. Run on 1
 * and on 3 ranks; the reports must be identical. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "unet/eval_report.h"
#include "unet/image.h"
#include "unet/model.h"
#include "unet/shard.h"
#include "unet/util.h"
#include "unet/weights_keras.h"

enum { H = 32, W = 32, C = 3, SAMPLES = 7 };
static char g_work[2048];

static int sh(const char *cmd) {
  char full[8192];
  snprintf(full, sizeof full, "cd '%s' && %s", g_work, cmd);
  int st = system(full);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *name) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", g_work, name);
  FILE *f = fopen(path, "r");
  if (!f) return xstrdup("");
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return xstrdup(buf);
}

int main(void) {
  snprintf(g_work, sizeof g_work, "%s/test-work/test_evaluate", UNET_BINARY_DIR);
  char cmd[4400], err[1024], path[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_work);
  if (system(cmd) != 0 || unet_mkdir_p(g_work) != 0) return 1;
  /* the test file: sample s has label (x + 2y + s) % 5 -> 0, 1, 2, 255, 255 pattern variants */
  ShardInfo info = {0};
  info.height = H, info.width = W, info.num_classes = C;
  info.mask_values[0] = 0, info.mask_values[1] = 1, info.mask_values[2] = 2;
  info.has_ignore = 1, info.ignore_value = 9;
  snprintf(info.kind, sizeof info.kind, "test");
  snprintf(path, sizeof path, "%s/test.h5", g_work);
  ShardWriter *wr = shard_writer_open(path, &info, SAMPLES, err, sizeof err);
  CHECK_MSG(wr != NULL, "%s", err);
  long count[C] = {0}, ignored = 0;
  uint8_t image[H * W * 3], mask[H * W];
  for (int s = 0; s < SAMPLES; s++) {
    for (int i = 0; i < H * W * 3; i++) image[i] = (uint8_t)(i * 13 + s);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int v = (x + 2 * y + s) % (5 + s % 2); /* 5 or 6 buckets: the class shares differ by sample */
        uint8_t id = v < 3 ? (uint8_t)v : (v == 3 ? 0 : SHARD_IGNORE_ID);
        mask[y * W + x] = id;
        if (id == SHARD_IGNORE_ID) ignored++; else count[id]++;
      }
    char name[32];
    snprintf(name, sizeof name, "s%d", s);
    CHECK(shard_writer_append(wr, image, mask, name, err, sizeof err) == 0);
  }
  CHECK(shard_writer_close(wr, err, sizeof err) == 0);
  /* the weights: zero, gamma 0, head bias b = (0.5, 2.0, -1.0): predicts class 1 */
  UNet m;
  CHECK(unet_create(&m, H, W, C, err, sizeof err) == 0);
  unet_init_keras(&m, 1);
  memset(m.params, 0, m.num_params * sizeof(float));
  const ModelVar *bias = unet_find_var(&m, "conv2d_8", 1);
  float *b = unet_var_data(&m, bias);
  b[0] = 0.5f, b[1] = 2.0f, b[2] = -1.0f;
  snprintf(path, sizeof path, "%s/w.weights.h5", g_work);
  CHECK(weights_save_keras(&m, path, err, sizeof err) == 0);
  unet_destroy(&m);

  /* by hand */
  double lse = log(exp(0.5) + exp(2.0) + exp(-1.0));
  double nll[C] = {lse - 0.5, lse - 2.0, lse + 1.0};
  long total = count[0] + count[1] + count[2];
  double loss = (count[0] * nll[0] + count[1] * nll[1] + count[2] * nll[2]) / total;
  double acc = (double)count[1] / total;
  double iou1 = (double)count[1] / total; /* tp = count1, fp = count0 + count2, fn = 0 */
  double miou = (0 + iou1 + 0) / 3;
  char want[512];
  snprintf(want, sizeof want, "%d,%ld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f", SAMPLES, total, loss, acc, miou, 0.0, iou1, 0.0);
  printf("by hand: %ld counted pixels (%ld ignored), classes %ld/%ld/%ld: %s\n", total, ignored, count[0], count[1],
         count[2], want);
  CHECK(ignored > 1000 && count[0] > 0 && count[2] > 0);

  snprintf(cmd, sizeof cmd, "%s/unet-evaluate --weights w.weights.h5 --data test.h5 --out ev1 --threads 1 > out1.txt 2> err1.txt", UNET_BINARY_DIR);
  CHECK(sh(cmd) == 0);
  snprintf(cmd, sizeof cmd, "mpirun --oversubscribe --bind-to none -np 3 %s/unet-evaluate --weights w.weights.h5 --data test.h5 "
           "--out ev3 --threads 1 --quiet > out3.txt 2> err3.txt", UNET_BINARY_DIR);
  CHECK(sh(cmd) == 0);
  char *metrics = slurp("ev1/metrics.csv");
  CHECK_MSG(strstr(metrics, want) != NULL, "metrics.csv:\n%s\nwant a row ending in %s", metrics, want);
  char row[256];
  snprintf(row, sizeof row, "0,0,%ld,\n1,0,%ld,\n2,0,%ld,", count[0], count[1], count[2]);
  char *confusion = slurp("ev1/confusion.csv");
  char rows[3][128];
  for (int t = 0; t < C; t++) {
    snprintf(rows[t], sizeof rows[t], "\n%d,0,%ld,0\n", t, count[t]);
    CHECK_MSG(strstr(confusion, rows[t]) != NULL, "confusion.csv:\n%s\nno row%s", confusion, rows[t]);
  }
  char *per_class = slurp("ev1/per_class.csv");
  snprintf(row, sizeof row, "1,%.6f,%.6f,1.000000,%ld,%ld\n", iou1, (double)count[1] / total, count[1], total);
  CHECK_MSG(strstr(per_class, row) != NULL, "per_class.csv:\n%s\nno row %s", per_class, row);
  snprintf(row, sizeof row, "0,0.000000,,0.000000,%ld,0\n", count[0]); /* never predicted: precision undefined */
  CHECK_MSG(strstr(per_class, row) != NULL, "per_class.csv:\n%s\nno row %s", per_class, row);
  char *out1 = slurp("out1.txt");
  snprintf(row, sizeof row, "loss %.6f  pixel_accuracy %.6f  mean_iou %.6f", loss, acc, miou);
  CHECK_MSG(strstr(out1, row) != NULL, "stdout: %s", out1);
  /* the 3-rank reports are the same bytes but for nothing */
  const char *files[] = {"metrics.csv", "per_class.csv", "confusion.csv", "confusion.png"};
  for (int i = 0; i < 4; i++) {
    snprintf(cmd, sizeof cmd, "cmp -s ev1/%s ev3/%s", files[i], files[i]);
    CHECK_MSG(sh(cmd) == 0, "%s differs between 1 and 3 ranks", files[i]);
  }
  /* --tta flip: this model's logits are the same at every pixel, so the mean
   * of an image's and its mirror's is too: the same numbers, recorded as flip,
   * and the same bytes on 1 and 3 ranks */
  snprintf(cmd, sizeof cmd, "%s/unet-evaluate --weights w.weights.h5 --data test.h5 --out evt1 --threads 1 --tta flip "
           "--quiet > outt1.txt 2> errt1.txt && mpirun --oversubscribe --bind-to none -np 3 %s/unet-evaluate --weights "
           "w.weights.h5 --data test.h5 --out evt3 --threads 1 --tta flip --quiet > outt3.txt 2> errt3.txt",
           UNET_BINARY_DIR, UNET_BINARY_DIR);
  CHECK(sh(cmd) == 0);
  char *metrics_tta = slurp("evt1/metrics.csv");
  char row_tta[sizeof want + 16];
  snprintf(row_tta, sizeof row_tta, "%s,\"flip\"\n", want);
  CHECK_MSG(strstr(metrics_tta, row_tta) != NULL, "--tta flip metrics.csv:\n%s\nwant a row ending in %s", metrics_tta,
            row_tta);
  CHECK_MSG(sh("cmp -s evt1/metrics.csv evt3/metrics.csv") == 0, "--tta flip: metrics.csv differs between 1 and 3 ranks");
  snprintf(cmd, sizeof cmd, "%s/unet-evaluate --weights w.weights.h5 --data test.h5 --out ev8 --tta mirror 2> err8.txt",
           UNET_BINARY_DIR);
  CHECK(sh(cmd) == 2);
  xfree(metrics_tta);
  /* the heat map: each row's whole share in column 1 */
  Image img;
  snprintf(path, sizeof path, "%s/ev1/confusion.png", g_work);
  CHECK(image_load_rgb(path, &img, err, sizeof err) == 0);
  int cell = eval_heatmap_cell(C);
  CHECK(img.width == C * cell && img.height == C * cell);
  uint8_t full[3], none[3];
  eval_heatmap_colour(1, full);
  eval_heatmap_colour(0, none);
  for (int t = 0; t < C && img.pixels; t++)
    for (int p = 0; p < C; p++) {
      const uint8_t *q = img.pixels + (((size_t)t * cell + cell / 2) * img.width + p * cell + cell / 2) * 3;
      const uint8_t *want_rgb = p == 1 ? full : none;
      CHECK_MSG(!memcmp(q, want_rgb, 3), "heat map cell (%d, %d) is %d,%d,%d", t, p, q[0], q[1], q[2]);
    }
  image_free(&img);
  /* errors: a missing file, a bad option */
  snprintf(cmd, sizeof cmd, "%s/unet-evaluate --weights w.weights.h5 --data nope.h5 --out ev9 2> err9.txt", UNET_BINARY_DIR);
  CHECK(sh(cmd) == 1);
  snprintf(cmd, sizeof cmd, "%s/unet-evaluate --weights w.weights.h5 --data test.h5 2> err9.txt", UNET_BINARY_DIR);
  CHECK(sh(cmd) == 2);
  snprintf(path, sizeof path, "%s/ev9", g_work);
  CHECK(access(path, F_OK) != 0);
  xfree(metrics); xfree(confusion); xfree(per_class); xfree(out1);
  CHECK_DONE();
}
