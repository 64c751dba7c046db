/* shard.c - HDF5 shard writer and reader; see shard.h for the schema.
 *
 * HDF5 is used from one thread only (the Debian build is not thread safe).
 * HDF5's own error-stack printing is switched off: every failure is turned
 * into one line naming the file and the dataset/attribute at fault. */
#include "unet/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unet/util.h"

#ifndef UNET_VERSION
#define UNET_VERSION "unknown"
#endif

static void quiet_hdf5(void) {
  static int done = 0;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
  }
}

static void set_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...) {
  if (!err || !err_len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

struct ShardWriter {
  char path[4096];
  char tmp[4200];
  ShardInfo info;
  hid_t file, images, masks;
  long count, capacity; /* samples written / current extent of dim 0 */
  char **names;         /* [count] owned copies, written at finish */
  long names_cap;
  int finished;
};

static void close_handles(ShardWriter *w) {
  if (w->images >= 0) H5Dclose(w->images);
  if (w->masks >= 0) H5Dclose(w->masks);
  if (w->file >= 0) H5Fclose(w->file);
  w->images = w->masks = w->file = -1;
}

static void free_writer(ShardWriter *w) {
  for (long i = 0; i < w->count && w->names; i++) free(w->names[i]);
  free(w->names);
  free(w);
}

/* A chunked uint8 dataset [cap, dims...] extendible along dim 0, one sample per chunk. */
static hid_t create_sample_dataset(hid_t file, const char *name, int rank, const hsize_t *sample_dims, long cap,
                                   int deflate_level) {
  hsize_t dims[4], maxdims[4], chunk[4];
  dims[0] = (hsize_t)cap;
  maxdims[0] = H5S_UNLIMITED;
  chunk[0] = 1;
  for (int d = 1; d < rank; d++) dims[d] = maxdims[d] = chunk[d] = sample_dims[d - 1];
  hid_t space = H5Screate_simple(rank, dims, maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, rank, chunk);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER); /* every chunk is written whole */
  H5Pset_obj_track_times(dcpl, 0);             /* same input, same bytes */
  if (deflate_level > 0) H5Pset_deflate(dcpl, (unsigned)deflate_level);
  hid_t ds = H5Dcreate2(file, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  return ds;
}

ShardWriter *shard_writer_open(const char *path, const ShardInfo *info, long capacity_hint, char *err,
                               size_t err_len) {
  /* After a failed H5Fclose (disk full) HDF5's own exit-time cleanup
   * crashes on the half-closed file. Writers close every file explicitly,
   * so the exit handler is not needed; this only takes effect when the
   * writer is the process's first use of HDF5 (as in unet-preprocess). */
  H5dont_atexit();
  quiet_hdf5();
  if (info->height <= 0 || info->width <= 0 || info->num_classes < 1 || info->num_classes > SHARD_MAX_CLASSES ||
      (info->has_ignore && (info->num_classes > SHARD_IGNORE_ID || info->ignore_value < 0 || info->ignore_value > 255))) {
    set_err(err, err_len, "%s: invalid shard info (height %d, width %d, classes %d, ignore value %d)", path,
            info->height, info->width, info->num_classes, info->has_ignore ? info->ignore_value : -1);
    return NULL;
  }
  if (info->deflate_level < 0 || info->deflate_level > 9) {
    set_err(err, err_len, "%s: deflate level %d is outside 0..9", path, info->deflate_level);
    return NULL;
  }
  ShardWriter *w = calloc(1, sizeof *w);
  if (!w) {
    set_err(err, err_len, "%s: out of memory", path);
    return NULL;
  }
  w->file = w->images = w->masks = -1;
  w->info = *info;
  snprintf(w->info.tool_version, sizeof w->info.tool_version, "%s", UNET_VERSION);
  if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path) {
    set_err(err, err_len, "%s: path too long", path);
    free(w);
    return NULL;
  }
  unet_tmp_path(w->tmp, sizeof w->tmp, path);

  /* Probe with open(2) first: HDF5's failure gives no errno-quality reason
   * ("Permission denied", "No space left on device", "Not a directory"). */
  int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    set_err(err, err_len, "cannot create %s: %s", w->tmp, strerror(errno));
    free(w);
    return NULL;
  }
  close(fd);
  w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (w->file < 0) {
    set_err(err, err_len, "cannot create HDF5 file %s", w->tmp);
    unlink(w->tmp);
    free(w);
    return NULL;
  }
  long cap = capacity_hint > 0 ? capacity_hint : 0;
  hsize_t img_dims[3] = {(hsize_t)info->height, (hsize_t)info->width, 3};
  hsize_t mask_dims[2] = {(hsize_t)info->height, (hsize_t)info->width};
  w->images = create_sample_dataset(w->file, "images", 4, img_dims, cap, info->deflate_level);
  w->masks = create_sample_dataset(w->file, "masks", 3, mask_dims, cap, info->deflate_level);
  if (w->images < 0 || w->masks < 0) {
    set_err(err, err_len, "%s: cannot create the images/masks datasets", w->tmp);
    shard_writer_abort(w);
    return NULL;
  }
  w->capacity = cap;
  return w;
}

/* Index of the first mask pixel whose class id is >= num_classes (other than
 * SHARD_IGNORE_ID in a file with an ignore value), or -1: class ids index the
 * loss, so a bad one must never be written or read. */
static long first_bad_class_id(const uint8_t *mask, size_t pixels, const ShardInfo *info) {
  int ignore = info->has_ignore;
  for (size_t p = 0; p < pixels; p++)
    if (mask[p] >= info->num_classes && !(ignore && mask[p] == SHARD_IGNORE_ID)) return (long)p;
  return -1;
}

/* Reads or writes sample `index` of a [N, ...] uint8 dataset through a
 * hyperslab of one sample (sample_dims: the dimensions after N). */
static int sample_io(hid_t ds, int rank, const hsize_t *sample_dims, long index, uint8_t *data, int write) {
  hsize_t start[4] = {(hsize_t)index, 0, 0, 0}, count[4] = {1, 0, 0, 0};
  for (int d = 1; d < rank; d++) count[d] = sample_dims[d - 1];
  hid_t fspace = H5Dget_space(ds);
  hid_t mspace = H5Screate_simple(rank, count, NULL);
  herr_t st = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
  if (st >= 0)
    st = write ? H5Dwrite(ds, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, data)
               : H5Dread(ds, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, data);
  H5Sclose(mspace);
  H5Sclose(fspace);
  return st < 0 ? -1 : 0;
}

static int write_sample(hid_t ds, int rank, const hsize_t *sample_dims, long index, const uint8_t *data,
                        int direct) {
  hsize_t start[4] = {(hsize_t)index, 0, 0, 0};
  if (direct) {
    /* one sample == one whole unfiltered chunk: hand the bytes straight to
     * the file, skipping selection, conversion and the chunk cache */
    size_t bytes = 1;
    for (int d = 1; d < rank; d++) bytes *= (size_t)sample_dims[d - 1];
    return H5Dwrite_chunk(ds, H5P_DEFAULT, 0, start, bytes, data) < 0 ? -1 : 0;
  }
  return sample_io(ds, rank, sample_dims, index, (uint8_t *)data, 1);
}

int shard_writer_append(ShardWriter *w, const uint8_t *image_hw3, const uint8_t *mask_hw, const char *name, char *err,
                        size_t err_len) {
  if (w->finished) {
    set_err(err, err_len, "%s: append after finish", w->tmp);
    return -1;
  }
  const int H = w->info.height, W = w->info.width;
  size_t name_len = strlen(name);
  if (name_len + 1 > SHARD_NAME_MAX) {
    set_err(err, err_len, "%s: sample name '%.40s...' is longer than %d bytes", w->tmp, name, SHARD_NAME_MAX - 1);
    return -1;
  }
  long bad = first_bad_class_id(mask_hw, (size_t)H * W, &w->info);
  if (bad >= 0) {
    set_err(err, err_len, "%s: sample '%s' has class id %d at pixel %ld, but num_classes is %d", w->tmp, name,
            mask_hw[bad], bad, w->info.num_classes);
    return -1;
  }
  if (w->count >= w->capacity) {
    long cap = w->capacity < 16 ? 16 : w->capacity * 2;
    hsize_t d4[4] = {(hsize_t)cap, (hsize_t)H, (hsize_t)W, 3}, d3[3] = {(hsize_t)cap, (hsize_t)H, (hsize_t)W};
    if (H5Dset_extent(w->images, d4) < 0 || H5Dset_extent(w->masks, d3) < 0) {
      set_err(err, err_len, "%s: cannot extend the datasets to %ld samples", w->tmp, cap);
      return -1;
    }
    w->capacity = cap;
  }
  if (w->count >= w->names_cap) {
    long cap = w->names_cap < 64 ? 64 : w->names_cap * 2;
    char **n = realloc(w->names, (size_t)cap * sizeof *n);
    if (!n) {
      set_err(err, err_len, "%s: out of memory for sample names", w->tmp);
      return -1;
    }
    w->names = n;
    w->names_cap = cap;
  }
  hsize_t img_dims[3] = {(hsize_t)H, (hsize_t)W, 3}, mask_dims[2] = {(hsize_t)H, (hsize_t)W};
  const int direct = w->info.deflate_level == 0;
  if (write_sample(w->images, 4, img_dims, w->count, image_hw3, direct) < 0 ||
      write_sample(w->masks, 3, mask_dims, w->count, mask_hw, direct) < 0) {
    set_err(err, err_len, "%s: write of sample %ld ('%s') failed (disk full or I/O error?)", w->tmp, w->count, name);
    return -1;
  }
  w->names[w->count] = malloc(name_len + 1);
  if (!w->names[w->count]) {
    set_err(err, err_len, "%s: out of memory for sample names", w->tmp);
    return -1;
  }
  memcpy(w->names[w->count], name, name_len + 1);
  w->count++;
  return 0;
}

static hid_t vlen_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

static int write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, int n, const void *value) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
  hid_t a = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, mem_type, value);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return st < 0 ? -1 : 0;
}

/* An int32 attribute written only when the option is used (absent = not used),
 * so files made without it stay byte-identical to before it existed. */
static int write_optional_int(hid_t obj, const char *name, int used, int value) {
  if (!used) return 0;
  int32_t v = value;
  return write_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, -1, &v);
}

static int write_string_attr(hid_t obj, const char *name, const char *value) {
  hid_t t = vlen_string_type();
  int st = write_attr(obj, name, t, t, -1, &value);
  H5Tclose(t);
  return st;
}

int shard_writer_finish(ShardWriter *w, char *err, size_t err_len) {
  if (w->finished) return 0;
  const int H = w->info.height, W = w->info.width;
  hsize_t d4[4] = {(hsize_t)w->count, (hsize_t)H, (hsize_t)W, 3}, d3[3] = {(hsize_t)w->count, (hsize_t)H, (hsize_t)W};
  if (H5Dset_extent(w->images, d4) < 0 || H5Dset_extent(w->masks, d3) < 0) {
    set_err(err, err_len, "%s: cannot set the final dataset size (%ld samples)", w->tmp, w->count);
    return -1;
  }
  /* names: variable-length UTF-8 strings, contiguous [N] */
  hsize_t nd[1] = {(hsize_t)w->count};
  hid_t st = vlen_string_type();
  hid_t space = H5Screate_simple(1, nd, NULL);
  hid_t ncpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(ncpl, 0);
  hid_t names = H5Dcreate2(w->file, "names", st, space, H5P_DEFAULT, ncpl, H5P_DEFAULT);
  H5Pclose(ncpl);
  herr_t ok = names < 0 ? -1 : 0;
  if (ok >= 0 && w->count > 0) ok = H5Dwrite(names, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->names);
  if (names >= 0) H5Dclose(names);
  H5Sclose(space);
  H5Tclose(st);
  if (ok < 0) {
    set_err(err, err_len, "%s: cannot write the names dataset", w->tmp);
    return -1;
  }
  const ShardInfo *in = &w->info;
  int32_t h32 = in->height, w32 = in->width, c32 = in->num_classes, mv[SHARD_MAX_CLASSES];
  for (int c = 0; c < in->num_classes; c++) mv[c] = in->mask_values[c];
  int64_t seed = in->seed;
  if (write_attr(w->file, "height", H5T_STD_I32LE, H5T_NATIVE_INT32, -1, &h32) < 0 ||
      write_attr(w->file, "width", H5T_STD_I32LE, H5T_NATIVE_INT32, -1, &w32) < 0 ||
      write_attr(w->file, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT32, -1, &c32) < 0 ||
      write_attr(w->file, "mask_values", H5T_STD_I32LE, H5T_NATIVE_INT32, in->num_classes, mv) < 0 ||
      write_attr(w->file, "seed", H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &seed) < 0 ||
      write_string_attr(w->file, "tool_version", in->tool_version) < 0 ||
      write_string_attr(w->file, "kind", in->kind) < 0 ||
      write_optional_int(w->file, "ignore_value", in->has_ignore, in->ignore_value) < 0 ||
      write_optional_int(w->file, "mask_threshold", in->has_threshold, in->mask_threshold) < 0) {
    set_err(err, err_len, "%s: cannot write the root attributes", w->tmp);
    return -1;
  }
  herr_t dc = H5Dclose(w->images);
  if (H5Dclose(w->masks) < 0) dc = -1;
  w->images = w->masks = -1;
  if (dc < 0) {
    set_err(err, err_len, "%s: writing the last samples failed (disk full or I/O error?)", w->tmp);
    return -1;
  }
  /* H5Fclose flushes everything: a full disk shows up here at the latest */
  herr_t fc = H5Fclose(w->file);
  w->file = -1;
  if (fc < 0) {
    set_err(err, err_len, "%s: closing the file failed (disk full or I/O error?)", w->tmp);
    return -1;
  }
  w->finished = 1;
  return 0;
}

int shard_writer_commit(ShardWriter *w, char *err, size_t err_len) {
  if (!w->finished && shard_writer_finish(w, err, err_len) < 0) {
    shard_writer_abort(w);
    return -1;
  }
  if (unet_commit_file(w->tmp, w->path) != 0) {
    set_err(err, err_len, "cannot commit %s to %s: %s", w->tmp, w->path, strerror(errno));
    shard_writer_abort(w);
    return -1;
  }
  free_writer(w);
  return 0;
}

int shard_writer_close(ShardWriter *w, char *err, size_t err_len) {
  if (shard_writer_finish(w, err, err_len) < 0) {
    shard_writer_abort(w);
    return -1;
  }
  return shard_writer_commit(w, err, err_len);
}

void shard_writer_abort(ShardWriter *w) {
  if (!w) return;
  close_handles(w);
  unlink(w->tmp);
  free_writer(w);
}

const char *shard_writer_tmp_path(const ShardWriter *w) { return w->tmp; }
long shard_writer_count(const ShardWriter *w) { return w->count; }

/* ------------------------------------------------------------------------ */
/* reader                                                                    */

struct ShardReader {
  char path[4096];
  ShardInfo info;
  hid_t file, images, masks, names;
  long count;
};

/* Opens dataset `name`, checks it is unsigned 8-bit (or, for names, a string)
 * with `rank` dims; fills dims. Returns -1 with a reason in err. */
static hid_t open_dataset(const ShardReader *r, const char *name, int rank, int want_string, hsize_t *dims,
                          char *err, size_t err_len) {
  if (H5Lexists(r->file, name, H5P_DEFAULT) <= 0) {
    set_err(err, err_len, "%s: missing dataset /%s", r->path, name);
    return -1;
  }
  hid_t ds = H5Dopen2(r->file, name, H5P_DEFAULT);
  if (ds < 0) {
    set_err(err, err_len, "%s: /%s is not a readable dataset", r->path, name);
    return -1;
  }
  hid_t t = H5Dget_type(ds);
  int type_ok = want_string ? H5Tget_class(t) == H5T_STRING
                            : (H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE);
  H5Tclose(t);
  if (!type_ok) {
    set_err(err, err_len, "%s: dataset /%s has the wrong type (want %s)", r->path, name,
            want_string ? "strings" : "uint8");
    H5Dclose(ds);
    return -1;
  }
  hid_t space = H5Dget_space(ds);
  int got = H5Sget_simple_extent_ndims(space);
  if (got == rank) H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  if (got != rank) {
    set_err(err, err_len, "%s: dataset /%s has rank %d, want %d", r->path, name, got, rank);
    H5Dclose(ds);
    return -1;
  }
  return ds;
}

/* Reads an integer attribute of n elements (n = -1: scalar). */
static int read_int_attr(const ShardReader *r, const char *name, hid_t mem_type, int n, void *out, char *err,
                         size_t err_len) {
  if (H5Aexists(r->file, name) <= 0) {
    set_err(err, err_len, "%s: missing attribute '%s'", r->path, name);
    return -1;
  }
  hid_t a = H5Aopen(r->file, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  hid_t space = H5Aget_space(a);
  hssize_t npoints = H5Sget_simple_extent_npoints(space);
  int is_int = H5Tget_class(t) == H5T_INTEGER;
  int ok = is_int && npoints == (n < 0 ? 1 : n);
  if (ok) ok = H5Aread(a, mem_type, out) >= 0;
  H5Sclose(space);
  H5Tclose(t);
  H5Aclose(a);
  if (!ok) {
    set_err(err, err_len, "%s: attribute '%s' should hold %d integer(s), found %lld element(s)%s", r->path, name,
            n < 0 ? 1 : n, (long long)npoints, is_int ? "" : " of a non-integer type");
    return -1;
  }
  return 0;
}

/* Reads a string attribute, fixed or variable length, into out. */
static int read_string_attr(const ShardReader *r, const char *name, char *out, size_t out_len, char *err,
                            size_t err_len) {
  if (H5Aexists(r->file, name) <= 0) {
    set_err(err, err_len, "%s: missing attribute '%s'", r->path, name);
    return -1;
  }
  hid_t a = H5Aopen(r->file, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  int ok = H5Tget_class(t) == H5T_STRING;
  if (ok && H5Tis_variable_str(t) > 0) {
    hid_t mt = vlen_string_type();
    char *s = NULL;
    ok = H5Aread(a, mt, &s) >= 0 && s;
    if (ok) snprintf(out, out_len, "%s", s);
    if (s) H5free_memory(s);
    H5Tclose(mt);
  } else if (ok) {
    size_t sz = H5Tget_size(t);
    char *buf = calloc(1, sz + 1);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, sz + 1);
    ok = buf && H5Aread(a, mt, buf) >= 0;
    if (ok) snprintf(out, out_len, "%s", buf);
    H5Tclose(mt);
    free(buf);
  }
  H5Tclose(t);
  H5Aclose(a);
  if (!ok) {
    set_err(err, err_len, "%s: attribute '%s' is not a string", r->path, name);
    return -1;
  }
  return 0;
}

static int validate(ShardReader *r, char *err, size_t err_len) {
  hsize_t di[4], dm[3], dn[1];
  if ((r->images = open_dataset(r, "images", 4, 0, di, err, err_len)) < 0) return -1;
  if ((r->masks = open_dataset(r, "masks", 3, 0, dm, err, err_len)) < 0) return -1;
  if ((r->names = open_dataset(r, "names", 1, 1, dn, err, err_len)) < 0) return -1;
  if (di[3] != 3) {
    set_err(err, err_len, "%s: /images has %llu channels, want 3", r->path, (unsigned long long)di[3]);
    return -1;
  }
  if (dm[0] != di[0] || dm[1] != di[1] || dm[2] != di[2] || dn[0] != di[0]) {
    set_err(err, err_len, "%s: dataset shapes disagree: images [%llu,%llu,%llu,3], masks [%llu,%llu,%llu], names [%llu]",
            r->path, (unsigned long long)di[0], (unsigned long long)di[1], (unsigned long long)di[2],
            (unsigned long long)dm[0], (unsigned long long)dm[1], (unsigned long long)dm[2],
            (unsigned long long)dn[0]);
    return -1;
  }
  r->count = (long)di[0];
  ShardInfo *in = &r->info;
  int32_t v;
  if (read_int_attr(r, "height", H5T_NATIVE_INT32, -1, &v, err, err_len) < 0) return -1;
  in->height = v;
  if (read_int_attr(r, "width", H5T_NATIVE_INT32, -1, &v, err, err_len) < 0) return -1;
  in->width = v;
  if ((hsize_t)in->height != di[1] || (hsize_t)in->width != di[2] || in->height <= 0 || in->width <= 0) {
    set_err(err, err_len, "%s: attributes height %d, width %d disagree with /images [%llu,%llu,%llu,3]", r->path,
            in->height, in->width, (unsigned long long)di[0], (unsigned long long)di[1], (unsigned long long)di[2]);
    return -1;
  }
  if (read_int_attr(r, "num_classes", H5T_NATIVE_INT32, -1, &v, err, err_len) < 0) return -1;
  if (v < 1 || v > SHARD_MAX_CLASSES) {
    set_err(err, err_len, "%s: attribute num_classes = %d is outside 1..%d", r->path, v, SHARD_MAX_CLASSES);
    return -1;
  }
  in->num_classes = v;
  int32_t mv[SHARD_MAX_CLASSES];
  if (read_int_attr(r, "mask_values", H5T_NATIVE_INT32, in->num_classes, mv, err, err_len) < 0) return -1;
  for (int c = 0; c < in->num_classes; c++) in->mask_values[c] = mv[c];
  int64_t seed;
  if (read_int_attr(r, "seed", H5T_NATIVE_INT64, -1, &seed, err, err_len) < 0) return -1;
  in->seed = seed;
  if (read_string_attr(r, "tool_version", in->tool_version, sizeof in->tool_version, err, err_len) < 0) return -1;
  if (read_string_attr(r, "kind", in->kind, sizeof in->kind, err, err_len) < 0) return -1;
  in->has_ignore = in->has_threshold = 0;
  if (H5Aexists(r->file, "ignore_value") > 0) {
    if (read_int_attr(r, "ignore_value", H5T_NATIVE_INT32, -1, &v, err, err_len) < 0) return -1;
    if (v < 0 || v > 255 || in->num_classes > SHARD_IGNORE_ID) {
      set_err(err, err_len, "%s: attribute ignore_value = %d with %d classes (want 0..255 and at most %d classes)",
              r->path, v, in->num_classes, SHARD_IGNORE_ID);
      return -1;
    }
    in->has_ignore = 1, in->ignore_value = v;
  }
  if (H5Aexists(r->file, "mask_threshold") > 0) {
    if (read_int_attr(r, "mask_threshold", H5T_NATIVE_INT32, -1, &v, err, err_len) < 0) return -1;
    in->has_threshold = 1, in->mask_threshold = v;
  }
  return 0;
}

ShardReader *shard_reader_open(const char *path, char *err, size_t err_len) {
  quiet_hdf5();
  if (access(path, R_OK) != 0) {
    set_err(err, err_len, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  if (H5Fis_hdf5(path) <= 0) {
    set_err(err, err_len, "%s: not an HDF5 file", path);
    return NULL;
  }
  ShardReader *r = calloc(1, sizeof *r);
  if (!r) {
    set_err(err, err_len, "%s: out of memory", path);
    return NULL;
  }
  snprintf(r->path, sizeof r->path, "%s", path);
  r->images = r->masks = r->names = -1;
  r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (r->file < 0) {
    set_err(err, err_len, "%s: cannot open as HDF5 (truncated or corrupt?)", path);
    free(r);
    return NULL;
  }
  if (validate(r, err, err_len) < 0) {
    shard_reader_close(r);
    return NULL;
  }
  return r;
}

const ShardInfo *shard_reader_info(const ShardReader *r) { return &r->info; }
long shard_reader_count(const ShardReader *r) { return r->count; }

static int read_sample(hid_t ds, int rank, const hsize_t *sample_dims, long index, uint8_t *data) {
  return sample_io(ds, rank, sample_dims, index, data, 0);
}

int shard_reader_read(ShardReader *r, long i, uint8_t *image, uint8_t *mask, char *name, size_t name_len, char *err,
                      size_t err_len) {
  if (i < 0 || i >= r->count) {
    set_err(err, err_len, "%s: sample index %ld is outside 0..%ld", r->path, i, r->count - 1);
    return -1;
  }
  const int H = r->info.height, W = r->info.width;
  hsize_t img_dims[3] = {(hsize_t)H, (hsize_t)W, 3}, mask_dims[2] = {(hsize_t)H, (hsize_t)W};
  if (image && read_sample(r->images, 4, img_dims, i, image) < 0) {
    set_err(err, err_len, "%s: cannot read /images sample %ld (corrupt file?)", r->path, i);
    return -1;
  }
  if (mask) {
    if (read_sample(r->masks, 3, mask_dims, i, mask) < 0) {
      set_err(err, err_len, "%s: cannot read /masks sample %ld (corrupt file?)", r->path, i);
      return -1;
    }
    /* class ids index the loss: a bad id must never reach it */
    long bad = first_bad_class_id(mask, (size_t)H * W, &r->info);
    if (bad >= 0) {
      set_err(err, err_len, "%s: /masks sample %ld has class id %d at pixel %ld, but num_classes is %d", r->path, i,
              mask[bad], bad, r->info.num_classes);
      return -1;
    }
  }
  if (name && name_len) {
    hsize_t start[1] = {(hsize_t)i}, one[1] = {1};
    hid_t fspace = H5Dget_space(r->names);
    hid_t mspace = H5Screate_simple(1, one, NULL);
    hid_t t = H5Dget_type(r->names);
    int is_vlen = H5Tis_variable_str(t) > 0;
    size_t fixed = H5Tget_size(t);
    H5Tclose(t);
    herr_t st = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, one, NULL);
    if (is_vlen) {
      hid_t mt = vlen_string_type();
      char *s = NULL;
      if (st >= 0) st = H5Dread(r->names, mt, mspace, fspace, H5P_DEFAULT, &s);
      if (st >= 0) snprintf(name, name_len, "%s", s ? s : "");
      if (s) H5free_memory(s);
      H5Tclose(mt);
    } else {
      char *buf = calloc(1, fixed + 1);
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, fixed + 1);
      if (!buf) st = -1;
      if (st >= 0) st = H5Dread(r->names, mt, mspace, fspace, H5P_DEFAULT, buf);
      if (st >= 0) snprintf(name, name_len, "%s", buf);
      H5Tclose(mt);
      free(buf);
    }
    H5Sclose(mspace);
    H5Sclose(fspace);
    if (st < 0) {
      set_err(err, err_len, "%s: cannot read /names entry %ld", r->path, i);
      return -1;
    }
  }
  return 0;
}

void shard_reader_close(ShardReader *r) {
  if (!r) return;
  if (r->images >= 0) H5Dclose(r->images);
  if (r->masks >= 0) H5Dclose(r->masks);
  if (r->names >= 0) H5Dclose(r->names);
  if (r->file >= 0) H5Fclose(r->file);
  free(r);
}

int shard_library_threadsafe(void) {
  hbool_t safe = 0;
  return H5is_library_threadsafe(&safe) >= 0 && safe;
}
