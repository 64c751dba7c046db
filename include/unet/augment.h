/* augment.h - training-time data augmentation, opt in (--augment LIST).
 *
 * Every random draw is a pure function of (seed, epoch, sample index): the
 * same sample gets the same transform on any rank count, in any thread and
 * after a resume. The geometric part is applied identically to image and mask
 * (bilinear for the image, nearest for the mask, over the same source window),
 * so they stay aligned pixel for pixel; the colour part touches the image only.
 * Validation data is never augmented (the trainer only calls this for training).
 */
#ifndef UNET_AUGMENT_H
#define UNET_AUGMENT_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int flip;          /* horizontal flip with probability 1/2 */
  int scale;         /* zoom in by z ~ U[1, scale_max], crop a random HxW/z window, resize back */
  int color;         /* brightness, contrast, saturation jitter (image only) */
  float scale_max;   /* 1.5 */
  float brightness;  /* factor ~ U[1-b, 1+b]; 0.2 */
  float contrast;    /* factor ~ U[1-c, 1+c] around the image mean; 0.2 */
  float saturation;  /* factor ~ U[1-s, 1+s] around each pixel's grey; 0.2 */
} AugmentConfig;

/* All off, with the documented ranges filled in. */
void augment_defaults(AugmentConfig *a);
/* "flip,scale,color" (any subset, comma separated; "none" = off). 0 ok, -1 with reason. */
int augment_parse(const char *list, AugmentConfig *a, char *err, size_t err_len);
int augment_enabled(const AugmentConfig *a);
/* "flip,scale,color" or "none" into buf. */
void augment_describe(const AugmentConfig *a, char *buf, size_t len);

/* The transform of one sample: image [H,W,3] and mask [H,W] (uint8) into
 * out_image [H,W,3] and out_mask [H,W]. In and out must not overlap. */
void augment_sample(const AugmentConfig *a, uint64_t seed, int64_t epoch, int64_t sample, const uint8_t *image,
                    const uint8_t *mask, int H, int W, uint8_t *out_image, uint8_t *out_mask);

/* The draws behind that transform (for tests): the source window
 * [x0, x0+cw) x [y0, y0+ch) in pixels, the flip bit and the colour factors;
 * augment.c states the exact pixel map. */
typedef struct {
  int flip;
  double x0, y0, cw, ch; /* source window in pixels */
  float brightness, contrast, saturation;
} AugmentDraw;
void augment_draw(const AugmentConfig *a, uint64_t seed, int64_t epoch, int64_t sample, int H, int W, AugmentDraw *d);

#endif
