/* weights_info.c - the training size attribute and weights_read_info; see
 * weights_info.h. */
#include "unet/weights_info.h"

#include <stdio.h>
#include <string.h>

#include "io_internal.h"
#include "unet/weights_keras.h"

int io_write_input_size(hid_t file, const UNet *m, const char *path, char *err, size_t err_len) {
  int32_t size[2] = {m->height, m->width};
  if (h5_write_attr(file, UNET_INPUT_SIZE_ATTR, H5T_STD_I32LE, H5T_NATIVE_INT32, size, 2) != 0)
    return h5_fail(err, err_len, path, "cannot write the attribute %s", UNET_INPUT_SIZE_ATTR);
  return 0;
}

/* Reads the attribute if present: 1 found, 0 absent, -1 malformed. */
static int read_input_size(hid_t file, int *height, int *width) {
  if (H5Aexists(file, UNET_INPUT_SIZE_ATTR) <= 0) return 0;
  int32_t size[2] = {0, 0};
  if (h5_read_attr_ints(file, UNET_INPUT_SIZE_ATTR, H5T_NATIVE_INT32, size, 2, NULL, NULL, 0) != 0) return -1;
  if (size[0] <= 0 || size[1] <= 0) return -1;
  *height = size[0], *width = size[1];
  return 1;
}

int weights_read_info(const char *path, WeightsInfo *info, char *err, size_t err_len) {
  H5Quiet q;
  h5_quiet_begin(&q);
  memset(info, 0, sizeof *info);
  int rc = -1;
  hid_t file = h5_open_read(path, err, err_len);
  if (file < 0) goto done;
  if (io_check_weights_file(file, path, err, err_len) != 0) goto close;
  /* the class count from the model definition's head layer (weights_keras.c) */
  rc = weights_num_classes(path, &info->num_classes, err, err_len);
  if (rc != 0) goto close;
  if (read_input_size(file, &info->height, &info->width) < 0) {
    rc = h5_fail(err, err_len, path, "attribute %s is not two positive integers (height, width)", UNET_INPUT_SIZE_ATTR);
    info->height = info->width = 0;
  }
close:
  H5Fclose(file);
done:
  h5_quiet_end(&q);
  return rc;
}

/* Lists the top-level names of file into out ("images, masks, names"). */
static void top_level_names(hid_t file, char *out, size_t len) {
  out[0] = 0;
  long n = h5_count_links(file);
  size_t used = 0;
  for (long i = 0; i < n && i < 8 && used + 1 < len; i++) {
    char name[128];
    if (H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i, name, sizeof name, H5P_DEFAULT) < 0)
      break;
    int k = snprintf(out + used, len - used, "%s%s", used ? ", " : "", name);
    if (k > 0) used += (size_t)k;
  }
  if (n > 8 && used + 1 < len) snprintf(out + used, len - used, ", ...");
}

int io_check_weights_file(hid_t file, const char *path, char *err, size_t err_len) {
  if (h5_has(file, "layers") || h5_has(file, "_layer_checkpoint_dependencies")) return 0;
  char names[512];
  top_level_names(file, names, sizeof names);
  int shard = h5_has(file, "images") && h5_has(file, "masks");
  return h5_fail(err, err_len, path, "is an HDF5 file but not a weights file: no /layers group (it holds: %s)%s",
                 names[0] ? names : "nothing",
                 shard ? "; this is a unet-preprocess data shard, give a .weights.h5 or last.ckpt.h5" : "");
}
