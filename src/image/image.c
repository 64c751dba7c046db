/* image.c - format sniffing by magic bytes, dispatch to the JPEG / PNG
 * decoders, whole-file reading and the load_* convenience wrappers.
 * The format is decided by content, never by file extension: the Oxford pet
 * set ships a GIF named Abyssinian_34.jpg, which must be reported as GIF. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image_internal.h"
#include "unet/util.h"

ImageFormat image_sniff(const uint8_t *d, size_t n) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return IMAGE_FORMAT_JPEG;
  if (n >= 8 && memcmp(d, png_sig, 8) == 0) return IMAGE_FORMAT_PNG;
  if (n >= 4 && memcmp(d, "GIF8", 4) == 0) return IMAGE_FORMAT_GIF;
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return IMAGE_FORMAT_BMP;
  if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return IMAGE_FORMAT_WEBP;
  if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) return IMAGE_FORMAT_TIFF;
  return IMAGE_FORMAT_UNKNOWN;
}

const char *image_format_name(ImageFormat f) {
  switch (f) {
  case IMAGE_FORMAT_JPEG: return "JPEG";
  case IMAGE_FORMAT_PNG: return "PNG";
  case IMAGE_FORMAT_GIF: return "GIF";
  case IMAGE_FORMAT_BMP: return "BMP";
  case IMAGE_FORMAT_WEBP: return "WEBP";
  case IMAGE_FORMAT_TIFF: return "TIFF";
  default: return "unknown";
  }
}

/* Common front end of both decode entry points: empty input, sniffing and
 * the "unsupported format X" message. */
static int decode_channels(const uint8_t *data, size_t len, int channels, int palette_index, Image *out,
                           int *was_palette, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  if (was_palette) *was_palette = 0;
  if (!data || len == 0) {
    snprintf(err, err_len, "empty file (0 bytes)");
    return -1;
  }
  ImageFormat f = image_sniff(data, len);
  switch (f) {
  case IMAGE_FORMAT_JPEG: return jpeg_decode_channels(data, len, channels, out, err, err_len);
  case IMAGE_FORMAT_PNG: return png_decode_channels(data, len, channels, palette_index, out, was_palette, err, err_len);
  case IMAGE_FORMAT_UNKNOWN: {
    /* Show the first bytes: it tells an HTML error page or a text file apart
     * from a damaged image at a glance. */
    char hex[3 * 8 + 1] = "";
    size_t shown = len < 8 ? len : 8;
    for (size_t i = 0; i < shown; i++) snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", data[i]);
    if (shown) hex[3 * shown - 1] = 0;
    snprintf(err, err_len, "unsupported format unknown (not JPEG or PNG; first bytes %s)", hex);
    return -1;
  }
  default:
    snprintf(err, err_len, "unsupported format %s (only JPEG and PNG are decoded)", image_format_name(f));
    return -1;
  }
}

int image_decode_rgb(const uint8_t *data, size_t len, Image *out, char *err, size_t err_len) {
  return decode_channels(data, len, 3, 0, out, NULL, err, err_len);
}

int image_decode_gray(const uint8_t *data, size_t len, Image *out, char *err, size_t err_len) {
  return decode_channels(data, len, 1, 0, out, NULL, err, err_len);
}

int image_decode_mask(const uint8_t *data, size_t len, Image *out, int *was_palette, char *err, size_t err_len) {
  return decode_channels(data, len, 1, 1, out, was_palette, err, err_len);
}

int image_name_has_image_extension(const char *name) {
  static const char *const exts[] = {"jpg", "jpeg", "jpe", "png", "gif", "bmp", "tif", "tiff", "webp", "ppm", "pgm"};
  const char *dot = strrchr(name, '.');
  if (!dot) return 0;
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (!strcasecmp(dot + 1, exts[i])) return 1;
  return 0;
}

int read_file_bytes(const char *path, uint8_t **data, size_t *len, char *err, size_t err_len) {
  *data = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_len, "cannot open: %s", strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, err_len, "not a regular file");
    fclose(f);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  /* +1 so an empty file still gets a valid (non-NULL) buffer to free */
  uint8_t *buf = malloc(size + 1);
  if (!buf) {
    snprintf(err, err_len, "out of memory reading %zu bytes", size);
    fclose(f);
    return -1;
  }
  size_t got = fread(buf, 1, size, f);
  int read_error = ferror(f);
  fclose(f);
  if (got != size || read_error) {
    snprintf(err, err_len, "read error after %zu of %zu bytes", got, size);
    free(buf);
    return -1;
  }
  *data = buf;
  *len = size;
  return 0;
}

static int load_channels(const char *path, int channels, Image *out, char *err, size_t err_len) {
  uint8_t *data;
  size_t len;
  memset(out, 0, sizeof *out);
  if (read_file_bytes(path, &data, &len, err, err_len) != 0) return -1;
  int rc = decode_channels(data, len, channels, 0, out, NULL, err, err_len);
  free(data);
  return rc;
}

int image_load_rgb(const char *path, Image *out, char *err, size_t err_len) {
  return load_channels(path, 3, out, err, err_len);
}

int image_load_gray(const char *path, Image *out, char *err, size_t err_len) {
  return load_channels(path, 1, out, err, err_len);
}

void image_free(Image *img) {
  if (!img) return;
  free(img->pixels);
  img->pixels = NULL;
  img->width = img->height = img->channels = 0;
}
