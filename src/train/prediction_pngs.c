/* prediction_pngs.c - see prediction_pngs.h */
#include "prediction_pngs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "unet/image.h"
#include "unet/metrics.h"

void write_prediction_pngs(Run *r) {
  UNet *m = &r->model;
  int H = m->height, W = m->width, C = m->num_classes;
  int k = r->cfg->val_images;
  if (k > r->val.total) k = (int)r->val.total;
  if (k <= 0) return;
  if (unet_mkdir_p(r->dir_pred) != 0) {
    unet_warn("cannot create %s: %s", r->dir_pred, strerror(errno));
    return;
  }
  uint8_t *images = xmalloc((size_t)k * H * W * 3, "prediction images");
  uint8_t *pred = xmalloc((size_t)H * W, "prediction ids");
  uint8_t *panel = xmalloc((size_t)H * W * 9, "prediction panel");
  char err[1024], name[UNET_PATH_MAX], (*sample)[SHARD_NAME_MAX] = xcalloc(k, sizeof *sample, "sample names");
  for (int i = 0; i < k; i++) {
    if (shardset_read(&r->val, i, images + (size_t)i * H * W * 3, r->labels + (size_t)i * H * W, sample[i],
                      sizeof sample[i], err, sizeof err) != 0)
      unet_fatal("validation data: %s", err);
  }
  unet_bytes_to_floats(r->x, images, (size_t)k * H * W * 3);
  if (r->cfg->flip_tta) { /* the PNGs show what validation scored */
    float *x_mirror = xmalloc((size_t)k * H * W * 3 * sizeof(float), "mirrored prediction images");
    float *logits = xmalloc((size_t)k * H * W * C * sizeof(float), "averaged logits");
    unet_predict_flip_average(m, r->x, k, r->probs, x_mirror, logits);
    xfree(x_mirror);
    xfree(logits);
  } else {
    unet_predict(m, r->x, k, r->probs);
  }
  for (int i = 0; i < k; i++) {
    argmax_classes(pred, r->probs + (size_t)i * H * W * C, (long)H * W, C);
    render_prediction_panel(panel, images + (size_t)i * H * W * 3, r->labels + (size_t)i * H * W, pred, H, W);
    if (snprintf(name, sizeof name, "%s/val_%02d_%s.png", r->dir_pred, i, sample[i]) >= (int)sizeof name)
      unet_warn("%s/val_%02d_%s.png: path too long, not written", r->dir_pred, i, sample[i]);
    else if (image_write_png(name, panel, 3 * W, H, 3, err, sizeof err) != 0)
      unet_warn("%s: %s", name, err);
  }
  xfree(sample);
  xfree(images);
  xfree(pred);
  xfree(panel);
}

