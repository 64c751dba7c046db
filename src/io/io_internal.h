/* io_internal.h - the model part shared by the Keras weights file
 * (weights_keras.c), the training checkpoint (checkpoint.c) and the gradient
 * dump (gradients.c), on top of the HDF5 layer (include/unet/h5_io.h). */
#ifndef UNET_IO_INTERNAL_H
#define UNET_IO_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

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

/* ---- arena checksums (arena_crc.c) ------------------------------------------
 * Root attributes (uint32) of the files the trainer writes: the CRC-32 of the
 * float32 bytes of an arena in the model's order. */
#define IO_CRC_PARAMS_ATTR "unet_crc32_params" /* m->params [num_params] */
#define IO_CRC_STATE_ATTR "unet_crc32_state"   /* m->state [num_state]: BatchNorm moving statistics */
#define IO_CRC_ADAM_ATTR "unet_crc32_adam"     /* Adam m [num_params] then v [num_params] (checkpoints) */
/* zlib's crc32 of a's bytes continuing from crc (0 to start). */
uint32_t io_arena_crc32(const float *a, size_t n, uint32_t crc);
int io_write_crc_attr(hid_t file, const char *attr, uint32_t crc, const char *path, char *err, size_t err_len);
/* 0 when file has no attribute attr (a Keras-written file) or it equals
 * computed; else -1 with "<path>: is corrupt: the <what> read from it have
 * CRC-32 ..., but the file's <attr> says ...". */
int io_verify_crc_attr(hid_t file, const char *attr, uint32_t computed, const char *what, const char *path,
                       char *err, size_t err_len);

#endif
