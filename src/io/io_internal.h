/* io_internal.h - HDF5 plumbing shared by the Keras weights file
 * (weights_keras.c) and the training checkpoint (checkpoint.c).
 *
 * Every function returns 0 / a valid hid_t on success and -1 / H5I_INVALID_HID
 * on failure with one message in err that names the file and the object at
 * fault. HDF5's own error stack printing is switched off for the duration of
 * a public call (h5_quiet_begin/end) so the user sees only our message. */
#ifndef UNET_IO_INTERNAL_H
#define UNET_IO_INTERNAL_H
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "unet/model.h"

/* Formats "<path>: <message>" into err; returns -1 so callers can `return io_fail(...)`. */
int io_fail(char *err, size_t err_len, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Silence HDF5's automatic error printing; restore the previous handler after. */
typedef struct {
  H5E_auto2_t func;
  void *data;
} H5Quiet;
void h5_quiet_begin(H5Quiet *q);
void h5_quiet_end(const H5Quiet *q);

/* "(3,3,64,128)"; ndim 0 gives "()". */
void io_format_shape(char *out, size_t out_len, int ndim, const long long *dims);

/* ---- writing --------------------------------------------------------------*/
hid_t h5_create_group(hid_t loc, const char *name, const char *path, char *err, size_t err_len);
/* float32 (little-endian IEEE, as numpy/h5py write it) dataset of shape dims[ndim]; ndim 0 = scalar. */
int h5_write_f32(hid_t loc, const char *name, const float *data, int ndim, const int *dims, const char *path,
                 char *err, size_t err_len);
/* Scalar or 1-D dataset of count elements (count 0 = scalar) with the given file/memory types. */
int h5_write_values(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, int count,
                    const char *path, char *err, size_t err_len);

/* Atomic save: create path's temporary (unet_tmp_path), call write_fn(file, ctx),
 * close, then unet_commit_file. On any failure the temporary is removed and the
 * old file at path is untouched. */
typedef int (*H5WriteFn)(hid_t file, void *ctx, char *err, size_t err_len);
int h5_save_atomic(const char *path, H5WriteFn write_fn, void *ctx, char *err, size_t err_len);

/* ---- reading --------------------------------------------------------------*/
hid_t h5_open_read(const char *path, char *err, size_t err_len);
/* 1 if loc has a link `name`, 0 if not (or on error). Single path component only. */
int h5_has(hid_t loc, const char *name);
/* Opens group `name` under loc; what describes it for the message ("/train"). */
hid_t h5_open_group(hid_t loc, const char *name, const char *what, const char *path, char *err, size_t err_len);
/* Reads a float dataset whose shape must equal want_dims[want_ndim]; `what`
 * names it in messages ("layer conv2d variable 0"). */
int h5_read_f32_checked(hid_t loc, const char *name, float *out, int want_ndim, const int *want_dims,
                        const char *what, const char *path, char *err, size_t err_len);
/* Reads a scalar (count 0) or 1-D dataset of exactly count elements, converting to mem_type. */
int h5_read_values(hid_t loc, const char *name, hid_t mem_type, void *out, int count, const char *what,
                   const char *path, char *err, size_t err_len);
/* Number of links in group loc, -1 on error. */
long h5_count_links(hid_t loc);

/* ---- the model part shared by weights file and checkpoint ---------------- */
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
