/* resized-rgb --size HxW --out FILE.u8 IMAGE...: the images as unet-predict
 * feeds them (decoded by content, resized bilinear to HxW, rounded to uint8),
 * concatenated raw [N,H,W,3], so another runtime can be given the very same
 * pixels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet/image.h"
#include "unet/resize.h"
#include "unet/util.h"

int main(int argc, char **argv) {
  unet_set_progname("resized-rgb");
  int h = 0, w = 0;
  if (argc < 6 || strcmp(argv[1], "--size") || unet_parse_size(argv[2], &h, &w) || strcmp(argv[3], "--out")) {
    fprintf(stderr, "usage: resized-rgb --size HxW --out FILE.u8 IMAGE...\n");
    return 2;
  }
  char tmp[4200], err[512];
  unet_tmp_path(tmp, sizeof tmp, argv[4]);
  FILE *f = fopen(tmp, "wb");
  if (!f) unet_fatal("%s: cannot create", tmp);
  uint8_t *rgb = xmalloc((size_t)h * w * 3, "resized image");
  for (int i = 5; i < argc; i++) {
    Image img;
    if (image_load_rgb(argv[i], &img, err, sizeof err) != 0) {
      fclose(f);
      remove(tmp);
      unet_fatal("%s: %s", argv[i], err);
    }
    resize_bilinear_u8(img.pixels, img.height, img.width, 3, rgb, h, w);
    image_free(&img);
    if (fwrite(rgb, 1, (size_t)h * w * 3, f) != (size_t)h * w * 3) unet_fatal("%s: write failed", tmp);
  }
  xfree(rgb);
  if (fclose(f) != 0 || unet_commit_file(tmp, argv[4]) != 0) unet_fatal("%s: write failed", argv[4]);
  return 0;
}
