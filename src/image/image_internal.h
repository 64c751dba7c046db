/* image_internal.h - private glue between the format-specific decoders of
 * src/image (not a public header: only files in src/image include it). */
#ifndef UNET_IMAGE_INTERNAL_H
#define UNET_IMAGE_INTERNAL_H
#include "unet/image.h"

/* Decode JPEG / PNG bytes to `channels` (1 or 3) 8-bit channels, with the
 * conversions TensorFlow's decode_png(channels=...) applies. 0 ok; -1 with a
 * one-line reason in err (out left empty). */
int jpeg_decode_channels(const uint8_t *data, size_t len, int channels, Image *out, char *err, size_t err_len);
/* palette_index (channels 1 only): a palette PNG gives its indices, not gray
 * levels; *was_palette (may be NULL) tells whether that happened. */
int png_decode_channels(const uint8_t *data, size_t len, int channels, int palette_index, Image *out, int *was_palette,
                        char *err, size_t err_len);

/* Largest decoded image accepted, in bytes (TensorFlow's JPEG limit, 2^29):
 * guards against hostile headers asking for gigabytes. */
#define IMAGE_MAX_DECODED_BYTES ((size_t)1 << 29)

/* libpng handlers shared by the PNG decoder and encoder: the error pointer
 * given to png_create_*_struct is a char[PNG_MESSAGE_LEN] that receives
 * libpng's message before the longjmp back to the caller; warnings are
 * dropped, as TensorFlow drops them. */
#define PNG_MESSAGE_LEN 200
struct png_struct_def;
void png_error_to_message(struct png_struct_def *png, const char *msg);
void png_warning_ignored(struct png_struct_def *png, const char *msg);

#endif
