/* h5_io.c - the project's HDF5 layer: checked open/read/write helpers, the
 * quiet error policy and the atomic (write-then-rename) output; see
 * include/unet/h5_io.h. */
#include "unet/h5_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* strstr ignoring ASCII case (strcasestr is a GNU extension). */
static const char *strcasestr_ascii(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0) return hay;
  return NULL;
}

int h5_fail(char *err, size_t err_len, const char *path, const char *fmt, ...) {
  if (err && err_len) {
    int n = path ? snprintf(err, err_len, "%s: ", path) : 0;
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

static herr_t mentions_fn(unsigned n, const H5E_error2_t *e, void *ctx) {
  (void)n;
  const char **needle = ctx;
  if (e->desc && strcasestr_ascii(e->desc, *needle)) *needle = NULL; /* found: stop looking */
  return 0;
}

int h5_error_stack_mentions(const char *needle) {
  const char *look = needle;
  if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, mentions_fn, &look) < 0) return 0;
  return look == NULL;
}

void h5_format_shape(char *out, size_t out_len, int ndim, const long long *dims) {
  size_t used = 0;
  int n = snprintf(out, out_len, "(");
  used = n > 0 ? (size_t)n : 0;
  for (int i = 0; i < ndim && used < out_len; i++) {
    n = snprintf(out + used, out_len - used, i ? ",%lld" : "%lld", dims[i]);
    if (n > 0) used += (size_t)n;
  }
  if (used < out_len) snprintf(out + used, out_len - used, ")");
}

/* ---- atomic output ------------------------------------------------------------*/

int h5_out_create(H5Out *o, const char *path, H5OutMode mode, size_t size_hint, char *err, size_t err_len) {
  /* After a failed H5Fclose (disk full) HDF5's own exit-time cleanup crashes
   * on the half-closed file; disk writers close every file explicitly, so it
   * is not needed. Takes effect only before HDF5's first use: hence first. */
  if (mode == H5_OUT_DISK) H5dont_atexit();
  memset(o, 0, sizeof *o);
  o->file = H5I_INVALID_HID;
  o->mode = mode;
  if (snprintf(o->path, sizeof o->path, "%s", path) >= (int)sizeof o->path)
    return h5_fail(err, err_len, path, "path too long");
  unet_tmp_path(o->tmp, sizeof o->tmp, path);
  /* Probe with open(2) first: HDF5's failure gives no errno-quality reason
   * ("Permission denied", "No space left on device", "Not a directory"). */
  int fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    h5_fail(err, err_len, NULL, "cannot create %s: %s", o->tmp, strerror(errno));
    o->tmp[0] = 0; /* nothing of ours to remove */
    return -1;
  }
  close(fd);
  H5Quiet q;
  h5_quiet_begin(&q);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  if (mode == H5_OUT_MEMORY) {
    size_t step = size_hint / 10;
    if (step < ((size_t)4 << 20)) step = (size_t)4 << 20;
    H5Pset_fapl_core(fapl, step, 0);
  }
  o->file = H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  h5_quiet_end(&q);
  if (o->file < 0) {
    if (mode == H5_OUT_MEMORY)
      h5_fail(err, err_len, o->path, "cannot create an HDF5 file in memory");
    else
      h5_fail(err, err_len, NULL, "cannot create HDF5 file %s", o->tmp);
    unlink(o->tmp);
    o->tmp[0] = 0;
    return -1;
  }
  return 0;
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

int h5_out_finish(H5Out *o, char *err, size_t err_len) {
  if (o->finished) return 0;
  if (o->file < 0) return h5_fail(err, err_len, o->tmp, "no open file to finish");
  int rc = 0;
  if (o->mode == H5_OUT_MEMORY) {
    unsigned char *image = NULL;
    ssize_t size = -1;
    if (H5Fflush(o->file, H5F_SCOPE_LOCAL) >= 0) size = H5Fget_file_image(o->file, NULL, 0);
    if (size > 0) {
      image = xmalloc((size_t)size, "HDF5 file image");
      if (H5Fget_file_image(o->file, image, (size_t)size) != size) size = -1;
    }
    H5Fclose(o->file);
    o->file = H5I_INVALID_HID;
    if (size <= 0)
      rc = h5_fail(err, err_len, o->path, "cannot assemble the HDF5 file in memory");
    else if (write_bytes(o->tmp, image, (size_t)size) != 0)
      rc = h5_fail(err, err_len, o->path, "cannot write %s: %s", o->tmp, strerror(errno));
    if (image) xfree(image);
  } else {
    /* H5Fclose flushes everything: a full disk shows up here at the latest */
    herr_t st = H5Fclose(o->file);
    o->file = H5I_INVALID_HID;
    if (st < 0) rc = h5_fail(err, err_len, o->tmp, "closing the file failed (disk full or I/O error?)");
  }
  if (rc == 0) o->finished = 1;
  return rc;
}

int h5_out_commit(H5Out *o, char *err, size_t err_len) {
  if (!o->finished && h5_out_finish(o, err, err_len) != 0) {
    h5_out_abort(o);
    return -1;
  }
  if (unet_commit_file(o->tmp, o->path) != 0) {
    int e = errno;
    h5_out_abort(o);
    return h5_fail(err, err_len, o->path, "cannot move %s into place: %s", o->tmp, strerror(e));
  }
  o->tmp[0] = 0;
  return 0;
}

void h5_out_abort(H5Out *o) {
  if (o->file >= 0) {
    H5Quiet q;
    h5_quiet_begin(&q);
    H5Fclose(o->file);
    h5_quiet_end(&q);
  }
  o->file = H5I_INVALID_HID;
  if (o->tmp[0]) unlink(o->tmp); /* ENOENT when it was never created: fine */
  o->tmp[0] = 0;
}

int h5_save_atomic(const char *path, H5WriteFn write_fn, void *ctx, char *err, size_t err_len) {
  H5Quiet q;
  h5_quiet_begin(&q);
  H5Out o;
  int rc = h5_out_create(&o, path, H5_OUT_MEMORY, 0, err, err_len);
  if (rc == 0) {
    rc = write_fn(o.file, ctx, err, err_len);
    if (rc == 0) rc = h5_out_finish(&o, err, err_len);
    if (rc == 0) rc = h5_out_commit(&o, err, err_len);
    if (rc != 0) h5_out_abort(&o);
  }
  h5_quiet_end(&q);
  return rc;
}

/* ---- writing ------------------------------------------------------------------*/

hid_t h5_create_group(hid_t loc, const char *name, const char *path, char *err, size_t err_len) {
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) h5_fail(err, err_len, path, "cannot create group %s", name);
  return g;
}

static int write_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, int ndim,
                         const hsize_t *dims, const char *path, char *err, size_t err_len) {
  hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
  if (space < 0) return h5_fail(err, err_len, path, "cannot create the dataspace of %s", name);
  hid_t d = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(space);
  if (d < 0) return h5_fail(err, err_len, path, "cannot create dataset %s", name);
  herr_t st = H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  herr_t cl = H5Dclose(d);
  if (st < 0 || cl < 0) return h5_fail(err, err_len, path, "cannot write dataset %s (disk full?)", name);
  return 0;
}

int h5_write_f32(hid_t loc, const char *name, const float *data, int ndim, const int *dims, const char *path,
                 char *err, size_t err_len) {
  hsize_t hd[8];
  if (ndim < 0 || ndim > 8) return h5_fail(err, err_len, path, "dataset %s: rank %d is outside 0..8", name, ndim);
  for (int i = 0; i < ndim; i++) hd[i] = (hsize_t)dims[i];
  return write_dataset(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, hd, path, err, err_len);
}

int h5_write_values(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, int count,
                    const char *path, char *err, size_t err_len) {
  hsize_t n = (hsize_t)count;
  return write_dataset(loc, name, file_type, mem_type, data, count ? 1 : 0, &n, path, err, err_len);
}

hid_t h5_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

int h5_write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *data, int count) {
  hsize_t dims[1] = {(hsize_t)count};
  hid_t space = count == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
  hid_t a = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, mem_type, data);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return st < 0 ? -1 : 0;
}

int h5_write_attr_string(hid_t obj, const char *name, const char *value) {
  hid_t t = h5_string_type();
  int st = h5_write_attr(obj, name, t, t, &value, 0);
  H5Tclose(t);
  return st;
}

/* ---- reading ------------------------------------------------------------------*/

hid_t h5_open_read(const char *path, char *err, size_t err_len) {
  if (access(path, R_OK) != 0) {
    h5_fail(err, err_len, path, "cannot open: %s", strerror(errno));
    return H5I_INVALID_HID;
  }
  if (H5Fis_hdf5(path) <= 0) {
    h5_fail(err, err_len, path, "not an HDF5 file");
    return H5I_INVALID_HID;
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  /* the same file already open in this process (e.g. a data shard given as
   * weights) only opens with the close degree it has: retry with the default */
  if (f < 0) f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) h5_fail(err, err_len, path, "cannot open as HDF5 (damaged or truncated?)");
  return f;
}

int h5_has(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

hid_t h5_open_group(hid_t loc, const char *name, const char *what, const char *path, char *err, size_t err_len) {
  if (!h5_has(loc, name)) {
    h5_fail(err, err_len, path, "missing %s", what);
    return H5I_INVALID_HID;
  }
  hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
  if (g < 0) h5_fail(err, err_len, path, "%s is not a group", what);
  return g;
}

long h5_count_links(hid_t loc) {
  H5G_info_t info;
  if (H5Gget_info(loc, &info) < 0) return -1;
  return (long)info.nlinks;
}

hid_t h5_open_dataset(hid_t loc, const char *name, int *ndim, hsize_t dims[8], H5T_class_t *cls, const char *what,
                      const char *path, char *err, size_t err_len) {
  if (!h5_has(loc, name)) {
    h5_fail(err, err_len, path, "missing %s", what);
    return H5I_INVALID_HID;
  }
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) {
    h5_fail(err, err_len, path, "%s is not a dataset", what);
    return H5I_INVALID_HID;
  }
  hid_t space = H5Dget_space(d);
  int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (nd < 0 || nd > 8 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    h5_fail(err, err_len, path, "%s has an unreadable shape", what);
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
  hid_t d = h5_open_dataset(loc, name, &nd, dims, &cls, what, path, err, err_len);
  if (d < 0) return -1;
  int same = nd == want_ndim;
  for (int i = 0; same && i < nd; i++) same = dims[i] == (hsize_t)want_dims[i];
  if (!same) {
    long long have[8], want[8];
    for (int i = 0; i < nd; i++) have[i] = (long long)dims[i];
    for (int i = 0; i < want_ndim && i < 8; i++) want[i] = want_dims[i];
    char hs[128], ws[128];
    h5_format_shape(hs, sizeof hs, nd, have);
    h5_format_shape(ws, sizeof ws, want_ndim < 8 ? want_ndim : 8, want);
    H5Dclose(d);
    return h5_fail(err, err_len, path, "%s has shape %s, the model expects %s", what, hs, ws);
  }
  if (cls != H5T_FLOAT) {
    H5Dclose(d);
    return h5_fail(err, err_len, path, "%s is not a floating-point dataset", what);
  }
  herr_t st = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Dclose(d);
  if (st < 0) return h5_fail(err, err_len, path, "cannot read %s (damaged file?)", what);
  return 0;
}

int h5_read_values(hid_t loc, const char *name, hid_t mem_type, void *out, int count, const char *what,
                   const char *path, char *err, size_t err_len) {
  int nd;
  hsize_t dims[8];
  H5T_class_t cls;
  hid_t d = h5_open_dataset(loc, name, &nd, dims, &cls, what, path, err, err_len);
  if (d < 0) return -1;
  int ok = count == 0 ? (nd == 0) : (nd == 1 && dims[0] == (hsize_t)count);
  if (!ok) {
    H5Dclose(d);
    if (count == 0) return h5_fail(err, err_len, path, "%s is not a scalar", what);
    return h5_fail(err, err_len, path, "%s does not hold exactly %d values", what, count);
  }
  H5T_class_t want_cls = H5Tget_class(mem_type);
  if (cls != want_cls) {
    H5Dclose(d);
    return h5_fail(err, err_len, path, "%s has the wrong type (%s expected)", what,
                   want_cls == H5T_FLOAT ? "floating point" : "integer");
  }
  herr_t st = H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Dclose(d);
  if (st < 0) return h5_fail(err, err_len, path, "cannot read %s (damaged file?)", what);
  return 0;
}

int h5_read_attr_ints(hid_t obj, const char *name, hid_t mem_type, void *out, int count, const char *path, char *err,
                      size_t err_len) {
  if (H5Aexists(obj, name) <= 0) return h5_fail(err, err_len, path, "missing attribute '%s'", name);
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  hid_t space = H5Aget_space(a);
  hssize_t npoints = H5Sget_simple_extent_npoints(space);
  int want = count == 0 ? 1 : count;
  int is_int = H5Tget_class(t) == H5T_INTEGER;
  int ok = is_int && npoints == want;
  if (ok) ok = H5Aread(a, mem_type, out) >= 0;
  H5Sclose(space);
  H5Tclose(t);
  H5Aclose(a);
  if (!ok)
    return h5_fail(err, err_len, path, "attribute '%s' should hold %d integer(s), found %lld element(s)%s", name, want,
                   (long long)npoints, is_int ? "" : " of a non-integer type");
  return 0;
}

/* Reads one string stored with type `stored` (fixed or variable length)
 * through read(mem_type, buffer): the one place that knows both layouts. */
typedef herr_t (*StringReadFn)(hid_t mem_type, void *buf, void *ctx);
static int read_string(hid_t stored, StringReadFn read, void *ctx, char *out, size_t out_len) {
  if (H5Tget_class(stored) != H5T_STRING) return -1;
  int ok;
  /* memory type in the stored character set: HDF5 converts no string
   * between ASCII and UTF-8 (h5py writes bytes as ASCII, str as UTF-8) */
  H5T_cset_t cset = H5Tget_cset(stored);
  if (cset < 0) return -1;
  if (H5Tis_variable_str(stored) > 0) {
    hid_t mt = h5_string_type();
    H5Tset_cset(mt, cset);
    char *s = NULL;
    ok = read(mt, &s, ctx) >= 0;
    if (ok) snprintf(out, out_len, "%s", s ? s : "");
    if (s) H5free_memory(s);
    H5Tclose(mt);
  } else {
    size_t size = H5Tget_size(stored);
    char *buf = calloc(1, size + 1);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, size + 1);
    H5Tset_cset(mt, cset);
    ok = buf && read(mt, buf, ctx) >= 0;
    if (ok) snprintf(out, out_len, "%s", buf);
    H5Tclose(mt);
    free(buf);
  }
  return ok ? 0 : -1;
}

static herr_t read_attr_fn(hid_t mem_type, void *buf, void *ctx) { return H5Aread(*(hid_t *)ctx, mem_type, buf); }

int h5_read_attr_string(hid_t obj, const char *name, char *out, size_t out_len, const char *path, char *err,
                        size_t err_len) {
  if (H5Aexists(obj, name) <= 0) return h5_fail(err, err_len, path, "missing attribute '%s'", name);
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  int rc = a >= 0 && t >= 0 ? read_string(t, read_attr_fn, &a, out, out_len) : -1;
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  if (rc != 0) return h5_fail(err, err_len, path, "attribute '%s' is not a string", name);
  return 0;
}

typedef struct {
  hid_t dataset, mspace, fspace;
} ElementRead;

static herr_t read_element_fn(hid_t mem_type, void *buf, void *ctx) {
  const ElementRead *e = ctx;
  return H5Dread(e->dataset, mem_type, e->mspace, e->fspace, H5P_DEFAULT, buf);
}

int h5_read_string_at(hid_t dataset, long i, char *out, size_t out_len) {
  hsize_t start[1] = {(hsize_t)i}, one[1] = {1};
  ElementRead e = {dataset, H5Screate_simple(1, one, NULL), H5Dget_space(dataset)};
  hid_t t = H5Dget_type(dataset);
  int rc = H5Sselect_hyperslab(e.fspace, H5S_SELECT_SET, start, NULL, one, NULL) >= 0 && t >= 0
               ? read_string(t, read_element_fn, &e, out, out_len)
               : -1;
  if (t >= 0) H5Tclose(t);
  H5Sclose(e.mspace);
  H5Sclose(e.fspace);
  return rc;
}
