/* io_internal.h - the model part shared by the Keras weights file
 * (weights_keras.c), the training checkpoint (checkpoint.c) and the gradient
 * dump (gradients.c), on top of the HDF5 layer (include/unet/h5_io.h). */
#ifndef UNET_IO_INTERNAL_H
#define UNET_IO_INTERNAL_H
#include <stddef.h>

#include "unet/h5_io.h"
#include "unet/model.h"

/* Writes /layers/<name>/vars/<i> for every layer and the empty top-level /vars. */
int io_write_model(hid_t file, const UNet *m, const char *path, char *err, size_t err_len);
/* Same layout with other values in the arenas' layout (e.g. the gradients);
 * non_trainable NULL leaves the non-trainable variables out. */
int io_write_model_values(hid_t file, const UNet *m, const float *trainable, const float *non_trainable,
                          const char *path, char *err, size_t err_len);
/* The root attribute unet_input_size = (height, width) of m (weights_info.h). */
int io_write_input_size(hid_t file, const UNet *m, const char *path, char *err, size_t err_len);
/* 0 when file has the weights tree (/layers, or Keras 2.13's name for it);
 * else -1 with a message saying what the HDF5 file holds instead. */
int io_check_weights_file(hid_t file, const char *path, char *err, size_t err_len);
/* Validates every layer and variable of the file against m and reads them into
 * params_out [m->num_params] and state_out [m->num_state] (same layout as the
 * model's arenas). m itself is not modified. */
int io_read_model(hid_t file, const UNet *m, float *params_out, float *state_out, const char *path, char *err,
                  size_t err_len);

#endif
