/* h5_io.h - the project's one HDF5 layer (src/io/h5_io.c), used by the shard
 * format (src/data/shard.c), the Keras weights file, the training checkpoint,
 * the gradient dump and unet-predict's probabilities (src/io).
 *
 * Conventions:
 *  - Every function returns 0 / a valid hid_t on success and -1 /
 *    H5I_INVALID_HID on failure, with one message in err naming the file and
 *    the object at fault ("<path>: <message>").
 *  - Error policy: HDF5 prints nothing. Every public function of a module
 *    that uses this layer runs its HDF5 calls inside h5_quiet_begin/end, so the
 *    user sees only our message and a host program's own HDF5 error handler
 *    comes back afterwards.
 *  - Output is atomic (H5Out): a file is built as "<path>.tmp.<pid>", made
 *    durable and renamed over <path> only when complete; any failure removes
 *    the temporary and leaves an existing <path> untouched.
 *  - HDF5 is used from one thread (the Debian build is not thread safe). */
#ifndef UNET_H5_IO_H
#define UNET_H5_IO_H
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "unet/util.h"

/* Formats "<path>: <message>" (just the message when path is NULL) into err;
 * returns -1 so callers can `return h5_fail(...)`. */
int h5_fail(char *err, size_t err_len, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Silence HDF5's automatic error printing; restore the previous handler after. */
typedef struct {
  H5E_auto2_t func;
  void *data;
} H5Quiet;
void h5_quiet_begin(H5Quiet *q);
void h5_quiet_end(const H5Quiet *q);

/* 1 when a message on HDF5's current error stack contains needle (ASCII case
 * ignored), e.g. "checksum" after a read failed in the Fletcher-32 filter.
 * Call it right after the failing call: the next HDF5 call clears the stack. */
int h5_error_stack_mentions(const char *needle);

/* "(3,3,64,128)"; ndim 0 gives "()". */
void h5_format_shape(char *out, size_t out_len, int ndim, const long long *dims);

/* ---- atomic output ----------------------------------------------------------
 * H5_OUT_MEMORY assembles the file in memory (core driver, no backing store)
 * and writes its bytes ourselves at h5_out_finish: a disk error then can never
 * leave HDF5 with a half-closed file (HDF5 1.10 keeps a file whose H5Fclose
 * failed and crashes on it at exit), and every I/O error has an errno to
 * report. For weights, checkpoints and predictions.
 * H5_OUT_DISK streams into the temporary (for shards, too large to hold twice
 * in memory); HDF5's exit-time cleanup is switched off (H5dont_atexit, when
 * this is the process's first use of HDF5), and the caller closes every
 * object before h5_out_finish. */
typedef enum { H5_OUT_MEMORY, H5_OUT_DISK } H5OutMode;
typedef struct {
  char path[UNET_PATH_MAX];
  char tmp[UNET_TMP_PATH_MAX];
  hid_t file; /* the file being written; H5I_INVALID_HID once closed */
  H5OutMode mode;
  int finished;
} H5Out;
/* Creates the temporary (probed with open(2) first, so an unwritable place
 * gets errno's reason) and the HDF5 file in o->file. size_hint: expected
 * bytes (memory mode grows its buffer in steps of about a tenth of it). */
int h5_out_create(H5Out *o, const char *path, H5OutMode mode, size_t size_hint, char *err, size_t err_len);
/* Completes and closes the temporary (flushed to disk); o stays valid. */
int h5_out_finish(H5Out *o, char *err, size_t err_len);
/* Renames the finished temporary over path (fsync, rename, directory fsync);
 * on failure the temporary is removed. */
int h5_out_commit(H5Out *o, char *err, size_t err_len);
/* Closes what is open and removes the temporary; safe at any stage. */
void h5_out_abort(H5Out *o);

/* The whole cycle for a file written by one function: create (memory mode),
 * write_fn(file, ctx), finish, commit; abort on any failure. Quiet. */
typedef int (*H5WriteFn)(hid_t file, void *ctx, char *err, size_t err_len);
int h5_save_atomic(const char *path, H5WriteFn write_fn, void *ctx, char *err, size_t err_len);

/* ---- writing ----------------------------------------------------------------*/
hid_t h5_create_group(hid_t loc, const char *name, const char *path, char *err, size_t err_len);
/* float32 (little-endian IEEE, as numpy/h5py write it) dataset of shape dims[ndim]; ndim 0 = scalar. */
int h5_write_f32(hid_t loc, const char *name, const float *data, int ndim, const int *dims, const char *path,
                 char *err, size_t err_len);
/* Scalar (count 0) or 1-D dataset of count elements with the given file/memory types. */
int h5_write_values(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, int count,
                    const char *path, char *err, size_t err_len);
/* Attributes on obj: scalar (count 0) or 1-D values; a variable-length UTF-8 string. */
int h5_write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *data, int count);
int h5_write_attr_string(hid_t obj, const char *name, const char *value);
/* The variable-length UTF-8 string type (close with H5Tclose). */
hid_t h5_string_type(void);

/* ---- reading ----------------------------------------------------------------*/
/* Checks the file is there, readable and HDF5, then opens it read-only
 * (strong close: H5Fclose releases every object left open). */
hid_t h5_open_read(const char *path, char *err, size_t err_len);
/* 1 if loc has a link `name`, 0 if not (or on error). Single path component only. */
int h5_has(hid_t loc, const char *name);
/* Opens group `name` under loc; what describes it for the message ("/train"). */
hid_t h5_open_group(hid_t loc, const char *name, const char *what, const char *path, char *err, size_t err_len);
/* Opens dataset `name` and returns its rank and dims (up to 8) and type class;
 * the messages say "missing <what>", "<what> is not a dataset". */
hid_t h5_open_dataset(hid_t loc, const char *name, int *ndim, hsize_t dims[8], H5T_class_t *cls, const char *what,
                      const char *path, char *err, size_t err_len);
/* Reads a float dataset whose shape must equal want_dims[want_ndim]; `what`
 * names it in messages ("layer conv2d variable 0"). */
int h5_read_f32_checked(hid_t loc, const char *name, float *out, int want_ndim, const int *want_dims,
                        const char *what, const char *path, char *err, size_t err_len);
/* Reads a scalar (count 0) or 1-D dataset of exactly count elements, converting to mem_type. */
int h5_read_values(hid_t loc, const char *name, hid_t mem_type, void *out, int count, const char *what,
                   const char *path, char *err, size_t err_len);
/* Number of links in group loc, -1 on error. */
long h5_count_links(hid_t loc);
/* Integer attribute of obj: scalar (count 0) or exactly count elements. */
int h5_read_attr_ints(hid_t obj, const char *name, hid_t mem_type, void *out, int count, const char *path, char *err,
                      size_t err_len);
/* String attribute (fixed or variable length) into out (truncated to out_len). */
int h5_read_attr_string(hid_t obj, const char *name, char *out, size_t out_len, const char *path, char *err,
                        size_t err_len);
/* Element i of a 1-D string dataset (fixed or variable length) into out. */
int h5_read_string_at(hid_t dataset, long i, char *out, size_t out_len);

#endif
