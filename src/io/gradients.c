/* gradients.c - --dump-gradients: the gradient arena in the Keras weights
 * layout, so any other framework's gradients can be compared by name. */
#include "io_internal.h"
#include "unet/gradients.h"

static int write_gradients(hid_t file, void *ctx, char *err, size_t err_len) {
  const UNet *m = ctx;
  return io_write_model_values(file, m, m->grads, NULL, "", err, err_len);
}

int gradients_save_keras(const UNet *m, const char *path, char *err, size_t err_len) {
  return h5_save_atomic(path, write_gradients, (void *)m, err, err_len);
}
