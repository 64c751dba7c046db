/* h5_io.c - small checked HDF5 helpers and the atomic (write-then-rename)
 * save used by the weights file and the checkpoint; see io_internal.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io_internal.h"
#include "unet/util.h"

int io_fail(char *err, size_t err_len, const char *path, const char *fmt, ...) {
  if (err && err_len) {
    int n = snprintf(err, err_len, "%s: ", path);
    if (n < 0) n = 0;
    if ((size_t)n < err_len) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -1;
}

void h5_quiet_begin(H5Quiet *q) {
  q->func = NULL;
  q->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5_quiet_end(const H5Quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

void io_format_shape(char *out, size_t out_len, int ndim, const long long *dims) {
  size_t used = 0;
  int n = snprintf(out, out_len, "(");
  used = n > 0 ? (size_t)n : 0;
  for (int i = 0; i < ndim && used < out_len; i++) {
    n = snprintf(out + used, out_len - used, i ? ",%lld" : "%lld", dims[i]);
    if (n > 0) used += (size_t)n;
  }
  if (used < out_len) snprintf(out + used, out_len - used, ")");
}

/* ---- writing --------------------------------------------------------------*/

hid_t h5_create_group(hid_t loc, const char *name, const char *path, char *err, size_t err_len) {
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) io_fail(err, err_len, path, "cannot create group %s", name);
  return g;
}

static int write_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, int ndim,
                         const hsize_t *dims, const char *path, char *err, size_t err_len) {
  hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
  if (space < 0) return io_fail(err, err_len, path, "cannot create the dataspace of %s", name);
  hid_t d = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(space);
  if (d < 0) return io_fail(err, err_len, path, "cannot create dataset %s", name);
  herr_t st = H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  herr_t cl = H5Dclose(d);
  if (st < 0 || cl < 0) return io_fail(err, err_len, path, "cannot write dataset %s (disk full?)", name);
  return 0;
}

int h5_write_f32(hid_t loc, const char *name, const float *data, int ndim, const int *dims, const char *path,
                 char *err, size_t err_len) {
  hsize_t hd[4];
  for (int i = 0; i < ndim && i < 4; i++) hd[i] = (hsize_t)dims[i];
  return write_dataset(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, hd, path, err, err_len);
}

int h5_write_values(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, int count,
                    const char *path, char *err, size_t err_len) {
  hsize_t n = (hsize_t)count;
  return write_dataset(loc, name, file_type, mem_type, data, count ? 1 : 0, &n, path, err, err_len);
}

/* Writes n bytes to a new file at path; -1 with errno set on failure. */
static int write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t done = fwrite(data, 1, n, f);
  int e = done == n ? 0 : (errno ? errno : EIO);
  if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
  if (e) {
    errno = e;
    return -1;
  }
  return 0;
}

int h5_save_atomic(const char *path, H5WriteFn write_fn, void *ctx, char *err, size_t err_len) {
  H5Quiet q;
  h5_quiet_begin(&q);
  char tmp[4096];
  unet_tmp_path(tmp, sizeof tmp, path);
  /* The HDF5 file is built in memory (core driver, no backing store) and
   * written out by us: a disk error then can never leave HDF5 with a
   * half-closed file (HDF5 1.10 keeps a file whose H5Fclose failed and
   * crashes on it at exit), and every I/O error gets an errno we can report. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, (size_t)4 << 20, 0);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  int rc = -1;
  if (file < 0) {
    io_fail(err, err_len, path, "cannot create an HDF5 file in memory");
    goto done;
  }
  rc = write_fn(file, ctx, err, err_len);
  unsigned char *image = NULL;
  ssize_t size = -1;
  if (rc == 0 && H5Fflush(file, H5F_SCOPE_LOCAL) >= 0) size = H5Fget_file_image(file, NULL, 0);
  if (size > 0) {
    image = xmalloc((size_t)size, "HDF5 file image");
    if (H5Fget_file_image(file, image, (size_t)size) != size) size = -1;
  }
  if (rc == 0 && size <= 0) rc = io_fail(err, err_len, path, "cannot assemble the HDF5 file in memory");
  H5Fclose(file);
  if (rc == 0 && write_bytes(tmp, image, (size_t)size) != 0)
    rc = io_fail(err, err_len, path, "cannot write %s: %s", tmp, strerror(errno));
  if (rc == 0 && unet_commit_file(tmp, path) != 0)
    rc = io_fail(err, err_len, path, "cannot move %s into place: %s", tmp, strerror(errno));
  if (rc != 0) unlink(tmp); /* ENOENT when it was never created: fine */
  if (image) xfree(image);
done:
  h5_quiet_end(&q);
  return rc;
}

/* ---- reading --------------------------------------------------------------*/

hid_t h5_open_read(const char *path, char *err, size_t err_len) {
  if (access(path, R_OK) != 0) {
    io_fail(err, err_len, path, "cannot open: %s", strerror(errno));
    return H5I_INVALID_HID;
  }
  if (H5Fis_hdf5(path) <= 0) {
    io_fail(err, err_len, path, "not an HDF5 file");
    return H5I_INVALID_HID;
  }
  /* strong close: H5Fclose releases everything even if an object was left open */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  /* the same file already open in this process (e.g. a data shard given as
   * weights) only opens with the close degree it has: retry with the default */
  if (f < 0) f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) io_fail(err, err_len, path, "cannot open as HDF5 (damaged or truncated?)");
  return f;
}

int h5_has(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

hid_t h5_open_group(hid_t loc, const char *name, const char *what, const char *path, char *err, size_t err_len) {
  if (!h5_has(loc, name)) {
    io_fail(err, err_len, path, "missing %s", what);
    return H5I_INVALID_HID;
  }
  hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
  if (g < 0) io_fail(err, err_len, path, "%s is not a group", what);
  return g;
}

long h5_count_links(hid_t loc) {
  H5G_info_t info;
  if (H5Gget_info(loc, &info) < 0) return -1;
  return (long)info.nlinks;
}

/* Opens dataset name and returns its rank and dims (up to 8); -1 with a message otherwise. */
static hid_t open_dataset(hid_t loc, const char *name, int *ndim, hsize_t dims[8], H5T_class_t *cls,
                          const char *what, const char *path, char *err, size_t err_len) {
  if (!h5_has(loc, name)) {
    io_fail(err, err_len, path, "missing %s", what);
    return H5I_INVALID_HID;
  }
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) {
    io_fail(err, err_len, path, "%s is not a dataset", what);
    return H5I_INVALID_HID;
  }
  hid_t space = H5Dget_space(d);
  int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (nd < 0 || nd > 8 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    io_fail(err, err_len, path, "%s has an unreadable shape", what);
    return H5I_INVALID_HID;
  }
  H5Sclose(space);
  hid_t type = H5Dget_type(d);
  *cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
  if (type >= 0) H5Tclose(type);
  *ndim = nd;
  return d;
}

int h5_read_f32_checked(hid_t loc, const char *name, float *out, int want_ndim, const int *want_dims,
                        const char *what, const char *path, char *err, size_t err_len) {
  int nd;
  hsize_t dims[8];
  H5T_class_t cls;
  hid_t d = open_dataset(loc, name, &nd, dims, &cls, what, path, err, err_len);
  if (d < 0) return -1;
  int same = nd == want_ndim;
  for (int i = 0; same && i < nd; i++) same = dims[i] == (hsize_t)want_dims[i];
  if (!same) {
    long long have[8], want[8];
    for (int i = 0; i < nd; i++) have[i] = (long long)dims[i];
    for (int i = 0; i < want_ndim; i++) want[i] = want_dims[i];
    char hs[128], ws[128];
    io_format_shape(hs, sizeof hs, nd, have);
    io_format_shape(ws, sizeof ws, want_ndim, want);
    H5Dclose(d);
    return io_fail(err, err_len, path, "%s has shape %s, the model expects %s", what, hs, ws);
  }
  if (cls != H5T_FLOAT) {
    H5Dclose(d);
    return io_fail(err, err_len, path, "%s is not a floating-point dataset", what);
  }
  herr_t st = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Dclose(d);
  if (st < 0) return io_fail(err, err_len, path, "cannot read %s (damaged file?)", what);
  return 0;
}

int h5_read_values(hid_t loc, const char *name, hid_t mem_type, void *out, int count, const char *what,
                   const char *path, char *err, size_t err_len) {
  int nd;
  hsize_t dims[8];
  H5T_class_t cls;
  hid_t d = open_dataset(loc, name, &nd, dims, &cls, what, path, err, err_len);
  if (d < 0) return -1;
  int ok = count == 0 ? (nd == 0) : (nd == 1 && dims[0] == (hsize_t)count);
  if (!ok) {
    H5Dclose(d);
    if (count == 0) return io_fail(err, err_len, path, "%s is not a scalar", what);
    return io_fail(err, err_len, path, "%s does not hold exactly %d values", what, count);
  }
  H5T_class_t want_cls = H5Tget_class(mem_type);
  if (cls != want_cls) {
    H5Dclose(d);
    return io_fail(err, err_len, path, "%s has the wrong type (%s expected)", what,
                   want_cls == H5T_FLOAT ? "floating point" : "integer");
  }
  herr_t st = H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Dclose(d);
  if (st < 0) return io_fail(err, err_len, path, "cannot read %s (damaged file?)", what);
  return 0;
}
