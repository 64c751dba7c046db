/* resize.h - resizing exactly as the Keras example's tf.image.resize does.
 * Images: bilinear, half-pixel centres, no antialiasing.
 * Masks:  nearest, TF2 rule src = min(floor((dst + 0.5) * in / out), in - 1). */
#ifndef UNET_RESIZE_H
#define UNET_RESIZE_H
#include <stdint.h>

/* src [ih, iw, c] uint8 -> dst [oh, ow, c] float (unrounded, as TF returns). */
void resize_bilinear_f32(const uint8_t *src, int ih, int iw, int c, float *dst, int oh, int ow);
/* Same, stored as uint8 rounded to nearest (ties away from zero), clamped 0..255. */
void resize_bilinear_u8(const uint8_t *src, int ih, int iw, int c, uint8_t *dst, int oh, int ow);
/* src [ih, iw, c] -> dst [oh, ow, c], nearest with the TF2 rule. */
void resize_nearest_u8(const uint8_t *src, int ih, int iw, int c, uint8_t *dst, int oh, int ow);

/* Class probabilities [ih, iw, c] float, upsampled bilinearly to [oh, ow] by
 * the same rule (half-pixel centres, in float32), then argmax per output pixel
 * (the lowest class on a tie) into ids [oh, ow]. The upsampled probabilities
 * are never stored, so a 4000x3000 photo needs no gigabyte buffer. */
void resize_bilinear_argmax(const float *probs, int ih, int iw, int c, uint8_t *ids, int oh, int ow);

#endif
