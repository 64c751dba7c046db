/* class_weights.h - --class-weights auto: median-frequency balancing (Eigen &
 * Fergus 2015, as SegNet weights CamVid's classes):
 *   freq(c) = pixels of class c / pixels of the images in which c occurs
 *   w(c)    = median over the occurring classes of freq / freq(c)
 * so a rare class weighs more than a common one and the median class 1.
 * A class that never occurs gets weight 1 (it adds nothing to the loss).
 * Ignored pixels (class id 255) count for nothing. */
#ifndef UNET_CLASS_WEIGHTS_H
#define UNET_CLASS_WEIGHTS_H
#include <stddef.h>
#include <stdint.h>

/* class_pixels[c], image_pixels[c] (the pixels of the images containing c)
 * -> w[c]. Returns the number of classes that occur. */
int class_weights_median_frequency(const int64_t *class_pixels, const int64_t *image_pixels, int c, float *w);

/* Adds one mask's counts: every class occurring in mask[pixels] adds its pixel
 * count to class_pixels and the mask's counted pixels to image_pixels. */
void class_weights_count(const uint8_t *mask, long pixels, int c, int64_t *class_pixels, int64_t *image_pixels);

/* "0.5,1,2.25" -> w[0..n); 0 ok, -1 on a malformed list or a weight <= 0. */
int class_weights_parse(const char *s, float *w, int max, int *n);

#endif
