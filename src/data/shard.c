/* shard.c - HDF5 shard writer and reader; see shard.h for the schema.
 *
 * Built on the project's HDF5 layer (include/unet/h5_io.h): its atomic output
 * (streamed to disk: shards are large), its readers and its error policy
 * (every public function here runs quiet; each failure is one line naming the
 * file and the dataset/attribute at fault). HDF5 is used from one thread. */
#include "unet/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "unet/h5_io.h"
#include "unet/util.h"

#ifndef UNET_VERSION
#define UNET_VERSION "unknown"
#endif

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

struct ShardWriter {
  H5Out out;            /* the temporary being written, its final path */
  ShardInfo info;
  hid_t images, masks;
  long count, capacity; /* samples written / current extent of dim 0 */
  char **names;         /* [count] owned copies, written at finish */
  long names_cap;
  int finished;
};

static void close_datasets(ShardWriter *w) {
  if (w->images >= 0) H5Dclose(w->images);
  if (w->masks >= 0) H5Dclose(w->masks);
  w->images = w->masks = -1;
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
  /* last in the pipeline: the checksum covers the bytes as stored (after
   * compression), so any flipped bit in a chunk fails its read */
  H5Pset_fletcher32(dcpl);
  hid_t ds = H5Dcreate2(file, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  return ds;
}

/* Creates the datasets in w->out's file (created by the caller). */
static int writer_start(ShardWriter *w, long cap, char *err, size_t err_len) {
  const ShardInfo *info = &w->info;
  hsize_t img_dims[3] = {(hsize_t)info->height, (hsize_t)info->width, 3};
  hsize_t mask_dims[2] = {(hsize_t)info->height, (hsize_t)info->width};
  w->images = create_sample_dataset(w->out.file, "images", 4, img_dims, cap, info->deflate_level);
  w->masks = create_sample_dataset(w->out.file, "masks", 3, mask_dims, cap, info->deflate_level);
  if (w->images < 0 || w->masks < 0)
    return h5_fail(err, err_len, NULL, "%s: cannot create the images/masks datasets", w->out.tmp);
  w->capacity = cap;
  return 0;
}

ShardWriter *shard_writer_open(const char *path, const ShardInfo *info, long capacity_hint, char *err,
                               size_t err_len) {
  if (info->height <= 0 || info->width <= 0 || info->num_classes < 1 || info->num_classes > SHARD_MAX_CLASSES ||
      (info->has_ignore && (info->num_classes > SHARD_IGNORE_ID || info->ignore_value < 0 || info->ignore_value > 255))) {
    h5_fail(err, err_len, NULL, "%s: invalid shard info (height %d, width %d, classes %d, ignore value %d)", path,
            info->height, info->width, info->num_classes, info->has_ignore ? info->ignore_value : -1);
    return NULL;
  }
  if (info->deflate_level < 0 || info->deflate_level > 9) {
    h5_fail(err, err_len, NULL, "%s: deflate level %d is outside 0..9", path, info->deflate_level);
    return NULL;
  }
  ShardWriter *w = calloc(1, sizeof *w);
  if (!w) {
    h5_fail(err, err_len, NULL, "%s: out of memory", path);
    return NULL;
  }
  w->images = w->masks = -1;
  w->info = *info;
  snprintf(w->info.tool_version, sizeof w->info.tool_version, "%s", UNET_VERSION);
  long cap = capacity_hint > 0 ? capacity_hint : 0;
  /* first: in a program that starts with writing shards, this is HDF5's first use */
  if (h5_out_create(&w->out, path, H5_OUT_DISK, 0, err, err_len) != 0) {
    free(w);
    return NULL;
  }
  H5Quiet q;
  h5_quiet_begin(&q);
  int rc = writer_start(w, cap, err, err_len);
  h5_quiet_end(&q);
  if (rc != 0) {
    shard_writer_abort(w);
    return NULL;
  }
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
 * hyperslab of one sample (sample_dims: the dimensions after N). Returns 0,
 * -1 on failure, or SAMPLE_BAD_CHECKSUM when a read failed because a chunk
 * does not match its Fletcher-32 checksum (looked up on HDF5's error stack
 * before the next call clears it). */
#define SAMPLE_BAD_CHECKSUM (-2)
static int sample_io(hid_t ds, int rank, const hsize_t *sample_dims, long index, uint8_t *data, int write) {
  hsize_t start[4] = {(hsize_t)index, 0, 0, 0}, count[4] = {1, 0, 0, 0};
  for (int d = 1; d < rank; d++) count[d] = sample_dims[d - 1];
  hid_t fspace = H5Dget_space(ds);
  hid_t mspace = H5Screate_simple(rank, count, NULL);
  herr_t st = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
  if (st >= 0)
    st = write ? H5Dwrite(ds, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, data)
               : H5Dread(ds, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, data);
  int bad_checksum = st < 0 && !write && h5_error_stack_mentions("checksum");
  H5Sclose(mspace);
  H5Sclose(fspace);
  return bad_checksum ? SAMPLE_BAD_CHECKSUM : st < 0 ? -1 : 0;
}

/* Through the filter pipeline (never H5Dwrite_chunk): it computes each
 * chunk's Fletcher-32 checksum. */
static int write_sample(hid_t ds, int rank, const hsize_t *sample_dims, long index, const uint8_t *data) {
  return sample_io(ds, rank, sample_dims, index, (uint8_t *)data, 1);
}

static int writer_append(ShardWriter *w, const uint8_t *image_hw3, const uint8_t *mask_hw, const char *name, char *err,
                         size_t err_len) {
  if (w->finished) {
    h5_fail(err, err_len, NULL, "%s: append after finish", w->out.tmp);
    return -1;
  }
  const int H = w->info.height, W = w->info.width;
  size_t name_len = strlen(name);
  if (name_len + 1 > SHARD_NAME_MAX) {
    h5_fail(err, err_len, NULL, "%s: sample name '%.40s...' is longer than %d bytes", w->out.tmp, name, SHARD_NAME_MAX - 1);
    return -1;
  }
  long bad = first_bad_class_id(mask_hw, (size_t)H * W, &w->info);
  if (bad >= 0) {
    h5_fail(err, err_len, NULL, "%s: sample '%s' has class id %d at pixel %ld, but num_classes is %d", w->out.tmp, name,
            mask_hw[bad], bad, w->info.num_classes);
    return -1;
  }
  if (w->count >= w->capacity) {
    long cap = w->capacity < 16 ? 16 : w->capacity * 2;
    hsize_t d4[4] = {(hsize_t)cap, (hsize_t)H, (hsize_t)W, 3}, d3[3] = {(hsize_t)cap, (hsize_t)H, (hsize_t)W};
    if (H5Dset_extent(w->images, d4) < 0 || H5Dset_extent(w->masks, d3) < 0) {
      h5_fail(err, err_len, NULL, "%s: cannot extend the datasets to %ld samples", w->out.tmp, cap);
      return -1;
    }
    w->capacity = cap;
  }
  if (w->count >= w->names_cap) {
    long cap = w->names_cap < 64 ? 64 : w->names_cap * 2;
    char **n = realloc(w->names, (size_t)cap * sizeof *n);
    if (!n) {
      h5_fail(err, err_len, NULL, "%s: out of memory for sample names", w->out.tmp);
      return -1;
    }
    w->names = n;
    w->names_cap = cap;
  }
  hsize_t img_dims[3] = {(hsize_t)H, (hsize_t)W, 3}, mask_dims[2] = {(hsize_t)H, (hsize_t)W};
  if (write_sample(w->images, 4, img_dims, w->count, image_hw3) < 0 ||
      write_sample(w->masks, 3, mask_dims, w->count, mask_hw) < 0) {
    h5_fail(err, err_len, NULL, "%s: write of sample %ld ('%s') failed (disk full or I/O error?)", w->out.tmp, w->count, name);
    return -1;
  }
  w->names[w->count] = malloc(name_len + 1);
  if (!w->names[w->count]) {
    h5_fail(err, err_len, NULL, "%s: out of memory for sample names", w->out.tmp);
    return -1;
  }
  memcpy(w->names[w->count], name, name_len + 1);
  w->count++;
  return 0;
}

int shard_writer_append(ShardWriter *w, const uint8_t *image_hw3, const uint8_t *mask_hw, const char *name, char *err,
                        size_t err_len) {
  H5Quiet q;
  h5_quiet_begin(&q);
  int rc = writer_append(w, image_hw3, mask_hw, name, err, err_len);
  h5_quiet_end(&q);
  return rc;
}

/* An int32 attribute written only when the option is used (absent = not used),
 * so files made without it stay byte-identical to before it existed. */
static int write_optional_int(hid_t obj, const char *name, int used, int value) {
  if (!used) return 0;
  int32_t v = value;
  return h5_write_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v, 0);
}

static int writer_finish(ShardWriter *w, char *err, size_t err_len) {
  if (w->finished) return 0;
  const int H = w->info.height, W = w->info.width;
  hsize_t d4[4] = {(hsize_t)w->count, (hsize_t)H, (hsize_t)W, 3}, d3[3] = {(hsize_t)w->count, (hsize_t)H, (hsize_t)W};
  if (H5Dset_extent(w->images, d4) < 0 || H5Dset_extent(w->masks, d3) < 0) {
    h5_fail(err, err_len, NULL, "%s: cannot set the final dataset size (%ld samples)", w->out.tmp, w->count);
    return -1;
  }
  /* names: variable-length UTF-8 strings, contiguous [N] */
  hsize_t nd[1] = {(hsize_t)w->count};
  hid_t st = h5_string_type();
  hid_t space = H5Screate_simple(1, nd, NULL);
  hid_t ncpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(ncpl, 0);
  hid_t names = H5Dcreate2(w->out.file, "names", st, space, H5P_DEFAULT, ncpl, H5P_DEFAULT);
  H5Pclose(ncpl);
  herr_t ok = names < 0 ? -1 : 0;
  if (ok >= 0 && w->count > 0) ok = H5Dwrite(names, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->names);
  if (names >= 0) H5Dclose(names);
  H5Sclose(space);
  H5Tclose(st);
  if (ok < 0) {
    h5_fail(err, err_len, NULL, "%s: cannot write the names dataset", w->out.tmp);
    return -1;
  }
  const ShardInfo *in = &w->info;
  int32_t h32 = in->height, w32 = in->width, c32 = in->num_classes, mv[SHARD_MAX_CLASSES];
  for (int c = 0; c < in->num_classes; c++) mv[c] = in->mask_values[c];
  int64_t seed = in->seed;
  hid_t f = w->out.file;
  if (h5_write_attr(f, "height", H5T_STD_I32LE, H5T_NATIVE_INT32, &h32, 0) < 0 ||
      h5_write_attr(f, "width", H5T_STD_I32LE, H5T_NATIVE_INT32, &w32, 0) < 0 ||
      h5_write_attr(f, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT32, &c32, 0) < 0 ||
      h5_write_attr(f, "mask_values", H5T_STD_I32LE, H5T_NATIVE_INT32, mv, in->num_classes) < 0 ||
      h5_write_attr(f, "seed", H5T_STD_I64LE, H5T_NATIVE_INT64, &seed, 0) < 0 ||
      h5_write_attr_string(f, "tool_version", in->tool_version) < 0 || h5_write_attr_string(f, "kind", in->kind) < 0 ||
      write_optional_int(f, "ignore_value", in->has_ignore, in->ignore_value) < 0 ||
      write_optional_int(f, "mask_threshold", in->has_threshold, in->mask_threshold) < 0) {
    h5_fail(err, err_len, NULL, "%s: cannot write the root attributes", w->out.tmp);
    return -1;
  }
  herr_t dc = H5Dclose(w->images);
  if (H5Dclose(w->masks) < 0) dc = -1;
  w->images = w->masks = -1;
  if (dc < 0) {
    h5_fail(err, err_len, NULL, "%s: writing the last samples failed (disk full or I/O error?)", w->out.tmp);
    return -1;
  }
  if (h5_out_finish(&w->out, err, err_len) != 0) return -1;
  w->finished = 1;
  return 0;
}

int shard_writer_finish(ShardWriter *w, char *err, size_t err_len) {
  H5Quiet q;
  h5_quiet_begin(&q);
  int rc = writer_finish(w, err, err_len);
  h5_quiet_end(&q);
  return rc;
}

int shard_writer_commit(ShardWriter *w, char *err, size_t err_len) {
  if (!w->finished && shard_writer_finish(w, err, err_len) < 0) {
    shard_writer_abort(w);
    return -1;
  }
  if (h5_out_commit(&w->out, err, err_len) != 0) {
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
  H5Quiet q;
  h5_quiet_begin(&q);
  close_datasets(w);
  h5_out_abort(&w->out);
  h5_quiet_end(&q);
  free_writer(w);
}

const char *shard_writer_tmp_path(const ShardWriter *w) { return w->out.tmp; }
long shard_writer_count(const ShardWriter *w) { return w->count; }

/* ------------------------------------------------------------------------ */
/* reader                                                                    */

struct ShardReader {
  char path[UNET_PATH_MAX];
  ShardInfo info;
  hid_t file, images, masks, names;
  long count;
  int checksummed; /* /images and /masks carry the Fletcher-32 filter */
  int images_fletcher, masks_fletcher, images_deflate, masks_deflate;
};

/* Checks that dataset /name (dims[rank], dims[0] = N) is stored as the
 * schema says, one sample per chunk [1, dims...], and whether its chunks
 * carry the Fletcher-32 checksum (*fletcher) and are deflated (*deflate). Validated before any read: a
 * crafted file must not make HDF5 allocate or decode chunks of another shape. */
static int check_storage(const ShardReader *r, hid_t ds, const char *name, int rank, const hsize_t *dims,
                         int *fletcher, int *deflate, char *err, size_t err_len) {
  hid_t dcpl = H5Dget_create_plist(ds);
  if (dcpl < 0) return h5_fail(err, err_len, NULL, "%s: cannot read the storage properties of /%s", r->path, name);
  int rc = 0;
  hsize_t chunk[4] = {0, 0, 0, 0};
  if (H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, rank, chunk) != rank) {
    rc = h5_fail(err, err_len, NULL, "%s: /%s is not stored in chunks (the shard schema keeps one sample per chunk)",
                 r->path, name);
  } else {
    int one_sample = chunk[0] == 1;
    for (int d = 1; d < rank; d++) one_sample = one_sample && chunk[d] == dims[d];
    if (!one_sample)
      rc = h5_fail(err, err_len, NULL, "%s: /%s has chunks of [%llu,%llu,%llu%s], want one sample [1,%llu,%llu%s]",
                   r->path, name, (unsigned long long)chunk[0], (unsigned long long)chunk[1],
                   (unsigned long long)chunk[2], rank == 4 ? ",3" : "", (unsigned long long)dims[1],
                   (unsigned long long)dims[2], rank == 4 ? ",3" : "");
  }
  /* only the filters shards are written with: any other one would run
   * decoder code on the file's bytes that the schema never needs */
  *fletcher = *deflate = 0;
  int nfilters = rc == 0 ? H5Pget_nfilters(dcpl) : 0;
  for (int k = 0; k < nfilters && rc == 0; k++) {
    unsigned flags = 0, filter_config = 0;
    size_t nvalues = 0;
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &nvalues, NULL, 0, NULL, &filter_config);
    if (id == H5Z_FILTER_FLETCHER32)
      *fletcher = 1;
    else if (id == H5Z_FILTER_DEFLATE)
      *deflate = 1;
    else
      rc = h5_fail(err, err_len, NULL, "%s: /%s uses HDF5 filter %d; shards use only deflate and Fletcher-32", r->path,
                   name, (int)id);
  }
  H5Pclose(dcpl);
  return rc;
}

/* Checks the stored chunk of sample i before HDF5 decodes it: without
 * deflate its size is known exactly (the sample, plus 4 bytes of
 * Fletcher-32), and HDF5 1.10 copies a whole sample out of a shorter chunk
 * without checking (found by fuzz_shard). 0 ok, -1 with a message. */
static int check_chunk(const ShardReader *r, hid_t ds, const char *name, long i, size_t sample_bytes, int fletcher,
                       int deflate, char *err, size_t err_len) {
  hsize_t coord[4] = {(hsize_t)i, 0, 0, 0}, stored = 0;
  unsigned filter_mask = 0;
  haddr_t addr = HADDR_UNDEF;
  if (H5Dget_chunk_info_by_coord(ds, coord, &filter_mask, &addr, &stored) < 0 || addr == HADDR_UNDEF)
    return h5_fail(err, err_len, NULL, "%s: /%s sample %ld has no stored chunk (truncated or damaged file)", r->path,
                   name, i);
  size_t want = sample_bytes + (fletcher ? 4 : 0);
  int ok = deflate ? stored > (fletcher ? 4u : 0u) && stored <= 2 * want + 1024 : stored == want;
  if (!ok)
    return h5_fail(err, err_len, NULL, "%s: sample %ld is corrupt: its /%s chunk holds %llu bytes, %s %zu", r->path, i,
                   name, (unsigned long long)stored, deflate ? "a compressed sample of" : "want", want);
  return 0;
}

/* Opens dataset `name`, checks it is unsigned 8-bit (or, for names, a string)
 * with `rank` dims; fills dims. Returns -1 with a reason in err. */
static hid_t open_dataset(const ShardReader *r, const char *name, int rank, int want_string, hsize_t *dims,
                          char *err, size_t err_len) {
  char what[64];
  snprintf(what, sizeof what, "dataset /%s", name);
  int got;
  H5T_class_t cls;
  hsize_t all[8];
  hid_t ds = h5_open_dataset(r->file, name, &got, all, &cls, what, r->path, err, err_len);
  if (ds < 0) return -1;
  hid_t t = H5Dget_type(ds);
  int type_ok = want_string ? cls == H5T_STRING
                            : (cls == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE);
  H5Tclose(t);
  if (!type_ok) {
    h5_fail(err, err_len, NULL, "%s: dataset /%s has the wrong type (want %s)", r->path, name,
            want_string ? "strings" : "uint8");
    H5Dclose(ds);
    return -1;
  }
  if (got != rank) {
    h5_fail(err, err_len, NULL, "%s: dataset /%s has rank %d, want %d", r->path, name, got, rank);
    H5Dclose(ds);
    return -1;
  }
  memcpy(dims, all, (size_t)rank * sizeof *dims);
  return ds;
}

static int validate(ShardReader *r, char *err, size_t err_len) {
  hsize_t di[4], dm[3], dn[1];
  if ((r->images = open_dataset(r, "images", 4, 0, di, err, err_len)) < 0) return -1;
  if ((r->masks = open_dataset(r, "masks", 3, 0, dm, err, err_len)) < 0) return -1;
  if ((r->names = open_dataset(r, "names", 1, 1, dn, err, err_len)) < 0) return -1;
  if (di[3] != 3) {
    h5_fail(err, err_len, NULL, "%s: /images has %llu channels, want 3", r->path, (unsigned long long)di[3]);
    return -1;
  }
  if (dm[0] != di[0] || dm[1] != di[1] || dm[2] != di[2] || dn[0] != di[0]) {
    h5_fail(err, err_len, NULL, "%s: dataset shapes disagree: images [%llu,%llu,%llu,3], masks [%llu,%llu,%llu], names [%llu]",
            r->path, (unsigned long long)di[0], (unsigned long long)di[1], (unsigned long long)di[2],
            (unsigned long long)dm[0], (unsigned long long)dm[1], (unsigned long long)dm[2],
            (unsigned long long)dn[0]);
    return -1;
  }
  r->count = (long)di[0];
  if (di[1] > SHARD_MAX_SIDE || di[2] > SHARD_MAX_SIDE) {
    h5_fail(err, err_len, NULL, "%s: /images samples are %llux%llu (HxW), more than %d on a side", r->path,
            (unsigned long long)di[1], (unsigned long long)di[2], SHARD_MAX_SIDE);
    return -1;
  }
  if (check_storage(r, r->images, "images", 4, di, &r->images_fletcher, &r->images_deflate, err, err_len) < 0 ||
      check_storage(r, r->masks, "masks", 3, dm, &r->masks_fletcher, &r->masks_deflate, err, err_len) < 0)
    return -1;
  r->checksummed = r->images_fletcher && r->masks_fletcher;
  ShardInfo *in = &r->info;
  int32_t v;
  if (h5_read_attr_ints(r->file, "height", H5T_NATIVE_INT32, &v, 0, r->path, err, err_len) < 0) return -1;
  in->height = v;
  if (h5_read_attr_ints(r->file, "width", H5T_NATIVE_INT32, &v, 0, r->path, err, err_len) < 0) return -1;
  in->width = v;
  if ((hsize_t)in->height != di[1] || (hsize_t)in->width != di[2] || in->height <= 0 || in->width <= 0) {
    h5_fail(err, err_len, NULL, "%s: attributes height %d, width %d disagree with /images [%llu,%llu,%llu,3]", r->path,
            in->height, in->width, (unsigned long long)di[0], (unsigned long long)di[1], (unsigned long long)di[2]);
    return -1;
  }
  if (h5_read_attr_ints(r->file, "num_classes", H5T_NATIVE_INT32, &v, 0, r->path, err, err_len) < 0) return -1;
  if (v < 1 || v > SHARD_MAX_CLASSES) {
    h5_fail(err, err_len, NULL, "%s: attribute num_classes = %d is outside 1..%d", r->path, v, SHARD_MAX_CLASSES);
    return -1;
  }
  in->num_classes = v;
  int32_t mv[SHARD_MAX_CLASSES];
  if (h5_read_attr_ints(r->file, "mask_values", H5T_NATIVE_INT32, mv, in->num_classes, r->path, err, err_len) < 0) return -1;
  for (int c = 0; c < in->num_classes; c++) in->mask_values[c] = mv[c];
  int64_t seed;
  if (h5_read_attr_ints(r->file, "seed", H5T_NATIVE_INT64, &seed, 0, r->path, err, err_len) < 0) return -1;
  in->seed = seed;
  if (h5_read_attr_string(r->file, "tool_version", in->tool_version, sizeof in->tool_version, r->path, err, err_len) < 0) return -1;
  if (h5_read_attr_string(r->file, "kind", in->kind, sizeof in->kind, r->path, err, err_len) < 0) return -1;
  in->has_ignore = in->has_threshold = 0;
  if (H5Aexists(r->file, "ignore_value") > 0) {
    if (h5_read_attr_ints(r->file, "ignore_value", H5T_NATIVE_INT32, &v, 0, r->path, err, err_len) < 0) return -1;
    if (v < 0 || v > 255 || in->num_classes > SHARD_IGNORE_ID) {
      h5_fail(err, err_len, NULL, "%s: attribute ignore_value = %d with %d classes (want 0..255 and at most %d classes)",
              r->path, v, in->num_classes, SHARD_IGNORE_ID);
      return -1;
    }
    in->has_ignore = 1, in->ignore_value = v;
  }
  if (H5Aexists(r->file, "mask_threshold") > 0) {
    if (h5_read_attr_ints(r->file, "mask_threshold", H5T_NATIVE_INT32, &v, 0, r->path, err, err_len) < 0) return -1;
    in->has_threshold = 1, in->mask_threshold = v;
  }
  return 0;
}

ShardReader *shard_reader_open(const char *path, char *err, size_t err_len) {
  ShardReader *r = calloc(1, sizeof *r);
  if (!r) {
    h5_fail(err, err_len, NULL, "%s: out of memory", path);
    return NULL;
  }
  snprintf(r->path, sizeof r->path, "%s", path);
  r->images = r->masks = r->names = -1;
  H5Quiet q;
  h5_quiet_begin(&q);
  r->file = h5_open_read(path, err, err_len);
  int ok = r->file >= 0 && validate(r, err, err_len) == 0;
  h5_quiet_end(&q);
  if (!ok) {
    shard_reader_close(r);
    return NULL;
  }
  /* once per process: a data set is usually many shards made alike */
  static atomic_int noted = 0;
  if (!r->checksummed && atomic_exchange(&noted, 1) == 0)
    unet_info("note: %s has no per-chunk checksums (written before unet-preprocess added them): a flipped bit "
              "in it would go unnoticed; run unet-preprocess again to add them (further such shards are not "
              "reported)", path);
  return r;
}

int shard_reader_checksummed(const ShardReader *r) { return r->checksummed; }

const ShardInfo *shard_reader_info(const ShardReader *r) { return &r->info; }
long shard_reader_count(const ShardReader *r) { return r->count; }

/* The message for a failed read of sample i of /dataset (st from sample_io),
 * naming the sample by index and, when its entry in /names reads, by name. */
static int read_failure(ShardReader *r, const char *dataset, long i, int st, char *err, size_t err_len) {
  char name[SHARD_NAME_MAX + 8] = "", stored[SHARD_NAME_MAX];
  if (h5_read_string_at(r->names, i, stored, sizeof stored) == 0) snprintf(name, sizeof name, " ('%s')", stored);
  if (st == SAMPLE_BAD_CHECKSUM)
    return h5_fail(err, err_len, NULL,
                   "%s: sample %ld%s is corrupt: its /%s chunk fails the Fletcher-32 checksum (the file changed "
                   "after it was written: disk, network or copy error); recreate it with unet-preprocess",
                   r->path, i, name, dataset);
  return h5_fail(err, err_len, NULL, "%s: cannot read /%s sample %ld%s (corrupt file?)", r->path, dataset, i, name);
}

static int reader_read(ShardReader *r, long i, uint8_t *image, uint8_t *mask, char *name, size_t name_len, char *err,
                       size_t err_len) {
  if (i < 0 || i >= r->count) {
    h5_fail(err, err_len, NULL, "%s: sample index %ld is outside 0..%ld", r->path, i, r->count - 1);
    return -1;
  }
  const int H = r->info.height, W = r->info.width;
  hsize_t img_dims[3] = {(hsize_t)H, (hsize_t)W, 3}, mask_dims[2] = {(hsize_t)H, (hsize_t)W};
  const size_t pixels = (size_t)H * W;
  if (image && check_chunk(r, r->images, "images", i, pixels * 3, r->images_fletcher, r->images_deflate, err,
                           err_len) < 0)
    return -1;
  int st = image ? sample_io(r->images, 4, img_dims, i, image, 0) : 0;
  if (st < 0) return read_failure(r, "images", i, st, err, err_len);
  if (mask) {
    if (check_chunk(r, r->masks, "masks", i, pixels, r->masks_fletcher, r->masks_deflate, err, err_len) < 0) return -1;
    st = sample_io(r->masks, 3, mask_dims, i, mask, 0);
    if (st < 0) return read_failure(r, "masks", i, st, err, err_len);
    /* class ids index the loss: a bad id must never reach it */
    long bad = first_bad_class_id(mask, (size_t)H * W, &r->info);
    if (bad >= 0) {
      h5_fail(err, err_len, NULL, "%s: /masks sample %ld has class id %d at pixel %ld, but num_classes is %d", r->path, i,
              mask[bad], bad, r->info.num_classes);
      return -1;
    }
  }
  if (name && name_len && h5_read_string_at(r->names, i, name, name_len) != 0) {
    h5_fail(err, err_len, NULL, "%s: cannot read /names entry %ld", r->path, i);
    return -1;
  }
  return 0;
}

int shard_reader_read(ShardReader *r, long i, uint8_t *image, uint8_t *mask, char *name, size_t name_len, char *err,
                      size_t err_len) {
  H5Quiet q;
  h5_quiet_begin(&q);
  int rc = reader_read(r, i, image, mask, name, name_len, err, err_len);
  h5_quiet_end(&q);
  return rc;
}

void shard_reader_close(ShardReader *r) {
  if (!r) return;
  H5Quiet q;
  h5_quiet_begin(&q);
  if (r->images >= 0) H5Dclose(r->images);
  if (r->masks >= 0) H5Dclose(r->masks);
  if (r->names >= 0) H5Dclose(r->names);
  if (r->file >= 0) H5Fclose(r->file);
  h5_quiet_end(&q);
  free(r);
}

int shard_library_threadsafe(void) {
  hbool_t safe = 0;
  return H5is_library_threadsafe(&safe) >= 0 && safe;
}
