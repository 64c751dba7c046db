/* image.h - decode JPEG/PNG by content (not by extension) and encode PNG.
 * Shared by unet-preprocess, unet-train (prediction PNGs) and unet-predict. */
#ifndef UNET_IMAGE_H
#define UNET_IMAGE_H
#include <stddef.h>
#include <stdint.h>

typedef enum { IMAGE_FORMAT_UNKNOWN = 0, IMAGE_FORMAT_JPEG, IMAGE_FORMAT_PNG, IMAGE_FORMAT_GIF,
               IMAGE_FORMAT_BMP, IMAGE_FORMAT_WEBP, IMAGE_FORMAT_TIFF } ImageFormat;

/* Pixels, row-major, channels interleaved. Free with image_free. */
typedef struct {
  int width, height, channels; /* channels: 1 (gray / mask) or 3 (RGB) */
  uint8_t *pixels;             /* height * width * channels bytes */
} Image;

/* Sniff the magic bytes. */
ImageFormat image_sniff(const uint8_t *data, size_t len);
const char *image_format_name(ImageFormat f);

/* Decode to RGB8: grayscale, CMYK/YCCK, palette, RGBA (alpha dropped) and
 * 16-bit inputs (high byte kept, as TF) all become 3-channel 8-bit. EXIF
 * orientation is ignored, as TensorFlow's decoder ignores it. Returns 0 on
 * success; on failure returns -1 and writes a one-line reason (e.g.
 * "truncated or corrupt JPEG (...)", "unsupported format GIF (...)") into err.
 * JPEG follows TF's decoder: IFAST DCT, fancy upsampling, CMYK -> RGB as
 * R = K*C/255 with an Adobe marker (inverted), (255-K)(255-C)/255 without. */
int image_decode_rgb(const uint8_t *data, size_t len, Image *out, char *err, size_t err_len);

/* Decode to 1-channel 8-bit, as TF's decode_png(channels=1): gray images
 * keep their stored values (Oxford trimaps 1/2/3, membrane masks 0/255);
 * alpha is dropped; 16-bit keeps the high byte; RGB and palette images become
 * gray via libpng's (9797 R + 19234 G + 3737 B) >> 15, truncated
 * (png_set_rgb_to_gray(.299, .587)), R == G == B pixels unchanged;
 * JPEGs decode to luma (Y). Same return convention as image_decode_rgb. */
int image_decode_gray(const uint8_t *data, size_t len, Image *out, char *err, size_t err_len);

/* Decode a segmentation mask: image_decode_gray, except that a palette PNG
 * keeps its palette indices as the values (the class ids of PASCAL VOC style
 * masks, as PIL, torchvision and the VOC tools read them; TensorFlow's
 * decode_png(channels=1) would turn them into luminance). The one deliberate
 * difference from TensorFlow's decoder; gray masks (Oxford trimaps) and images
 * are unaffected. *was_palette (may be NULL) is set to 1 for such a mask. */
int image_decode_mask(const uint8_t *data, size_t len, Image *out, int *was_palette, char *err, size_t err_len);

/* 1 when a file name ends in an image extension (.jpg .jpeg .jpe .png .gif .bmp
 * .tif .tiff .webp .ppm .pgm, any case): what a folder listing takes as an
 * image file. The content, not the name, then decides the decoder. */
int image_name_has_image_extension(const char *name);

/* Read a whole file; 0 ok, -1 with reason in err. Free *data with free(). */
int read_file_bytes(const char *path, uint8_t **data, size_t *len, char *err, size_t err_len);

/* Decode a file; convenience wrappers over the two above. */
int image_load_rgb(const char *path, Image *out, char *err, size_t err_len);
int image_load_gray(const char *path, Image *out, char *err, size_t err_len);

/* Write an 8-bit PNG (channels 1 or 3) atomically (temp file + rename).
 * 0 ok, -1 with reason in err. */
int image_write_png(const char *path, const uint8_t *pixels, int width, int height, int channels, char *err,
                    size_t err_len);

/* Write a baseline JPEG (RGB) atomically; quality 1..100. Used by unet-synth. */
int image_write_jpeg(const char *path, const uint8_t *rgb, int width, int height, int quality, char *err,
                     size_t err_len);

void image_free(Image *img);

#endif
