/* unet_curves.c - `unet-curves --metrics RUN/metrics.csv --out curves.svg`:
 * the learning curves the trainer draws each epoch (curves.h), for any
 * metrics.csv (an older run, a copy). */
#include <stdio.h>
#include <string.h>

#include "unet/curves.h"
#include "unet/trainer.h"
#include "unet/util.h"

int main(int argc, char **argv) {
  unet_set_progname("unet-curves");
  const char *csv = NULL, *svg = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: unet-curves --metrics metrics.csv --out curves.svg\n");
      return UNET_EXIT_OK;
    } else if (!strcmp(a, "--metrics") && v) { csv = v; i++; }
    else if (!strcmp(a, "--out") && v) { svg = v; i++; }
    else { unet_error("unknown or incomplete option '%s' (see --help)", a); return UNET_EXIT_USAGE; }
  }
  if (!csv || !svg) {
    fprintf(stderr, "usage: unet-curves --metrics metrics.csv --out curves.svg\n");
    return UNET_EXIT_USAGE;
  }
  char err[1024];
  if (curves_write_svg(csv, svg, err, sizeof err) != 0) {
    unet_error("%s", err);
    return UNET_EXIT_ERROR;
  }
  return UNET_EXIT_OK;
}
