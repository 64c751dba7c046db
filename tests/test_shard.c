/* test_shard.c - the HDF5 shard schema: exact round trip of pixels, masks,
 * names and attributes; random access; one-sample chunks; atomic write (no
 * temporary left behind on commit or abort); and the reader's messages for
 * files that are missing, not HDF5, truncated or off-schema. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "unet/shard.h"
#include "unet/util.h"

#define H 7
#define W 5

static char g_dir[4096];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* No "*.tmp.*" file in the test folder. */
static int tmp_left(void) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", g_dir);
  return system(cmd) == 0;
}

static void fill_sample(long i, uint8_t *img, uint8_t *mask, int classes) {
  for (int p = 0; p < H * W * 3; p++) img[p] = (uint8_t)(i * 37 + p * 11 + 3);
  for (int p = 0; p < H * W; p++) mask[p] = (uint8_t)((i + p) % classes);
}

static ShardInfo make_info(int classes) {
  ShardInfo info;
  memset(&info, 0, sizeof info);
  info.height = H;
  info.width = W;
  info.num_classes = classes;
  for (int c = 0; c < classes; c++) info.mask_values[c] = c + 1;
  info.seed = 1337;
  snprintf(info.kind, sizeof info.kind, "train");
  return info;
}

static int write_file(const char *path, long n, long hint, int deflate) {
  char err[512];
  ShardInfo info = make_info(3);
  info.deflate_level = deflate;
  ShardWriter *w = shard_writer_open(path, &info, hint, err, sizeof err);
  if (!w) {
    fprintf(stderr, "open: %s\n", err);
    return -1;
  }
  uint8_t img[H * W * 3], mask[H * W];
  for (long i = 0; i < n; i++) {
    char name[64];
    snprintf(name, sizeof name, "sample_%ld%s", i, i == 1 ? "_\xc3\xa9t\xc3\xa9" : ""); /* one UTF-8 name */
    fill_sample(i, img, mask, 3);
    if (shard_writer_append(w, img, mask, name, err, sizeof err) < 0) {
      fprintf(stderr, "append: %s\n", err);
      shard_writer_abort(w);
      return -1;
    }
  }
  if (shard_writer_close(w, err, sizeof err) < 0) {
    fprintf(stderr, "close: %s\n", err);
    return -1;
  }
  return 0;
}

static void check_round_trip(const char *path, long n) {
  char err[512];
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  if (!r) return;
  const ShardInfo *in = shard_reader_info(r);
  CHECK(shard_reader_count(r) == n);
  CHECK(in->height == H && in->width == W && in->num_classes == 3);
  CHECK(in->mask_values[0] == 1 && in->mask_values[1] == 2 && in->mask_values[2] == 3);
  CHECK(in->seed == 1337);
  CHECK(strcmp(in->kind, "train") == 0);
  CHECK(strcmp(in->tool_version, UNET_VERSION) == 0);
  /* random access order, each compared byte for byte */
  uint8_t img[H * W * 3], mask[H * W], want_img[H * W * 3], want_mask[H * W];
  for (long k = 0; k < n; k++) {
    long i = (k * 7 + 3) % n;
    char name[SHARD_NAME_MAX], want[64];
    CHECK_MSG(shard_reader_read(r, i, img, mask, name, sizeof name, err, sizeof err) == 0, "%s", err);
    fill_sample(i, want_img, want_mask, 3);
    snprintf(want, sizeof want, "sample_%ld%s", i, i == 1 ? "_\xc3\xa9t\xc3\xa9" : "");
    CHECK_MSG(memcmp(img, want_img, sizeof img) == 0, "image %ld differs", i);
    CHECK_MSG(memcmp(mask, want_mask, sizeof mask) == 0, "mask %ld differs", i);
    CHECK_MSG(strcmp(name, want) == 0, "name %ld: '%s' vs '%s'", i, name, want);
  }
  /* image-only and name-only reads */
  if (n > 0) {
    CHECK(shard_reader_read(r, n - 1, img, NULL, NULL, 0, err, sizeof err) == 0);
    char name[SHARD_NAME_MAX];
    CHECK(shard_reader_read(r, 0, NULL, NULL, name, sizeof name, err, sizeof err) == 0 &&
          strcmp(name, "sample_0") == 0);
  }
  CHECK(shard_reader_read(r, n, img, mask, NULL, 0, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "sample index") && strstr(err, path), "%s", err);
  shard_reader_close(r);
}

/* The layout promise: one sample per chunk in both datasets. */
static void check_chunks(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(f >= 0);
  hid_t d = H5Dopen2(f, "images", H5P_DEFAULT);
  hid_t p = H5Dget_create_plist(d);
  hsize_t c[4] = {0};
  CHECK(H5Pget_layout(p) == H5D_CHUNKED);
  CHECK(H5Pget_chunk(p, 4, c) == 4 && c[0] == 1 && c[1] == H && c[2] == W && c[3] == 3);
  H5Pclose(p);
  H5Dclose(d);
  d = H5Dopen2(f, "masks", H5P_DEFAULT);
  p = H5Dget_create_plist(d);
  CHECK(H5Pget_chunk(p, 3, c) == 3 && c[0] == 1 && c[1] == H && c[2] == W);
  H5Pclose(p);
  H5Dclose(d);
  H5Fclose(f);
}

/* Build an off-schema file by hand: a valid file, then one thing removed or changed. */
static void expect_reader_error(const char *path, const char *needle) {
  char err[512] = "";
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK_MSG(r == NULL, "opened %s although it should fail with '%s'", path, needle);
  if (r) shard_reader_close(r);
  CHECK_MSG(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
  CHECK_MSG(strstr(err, path) != NULL, "message '%s' does not name %s", err, path);
}

static void check_schema_errors(void) {
  char path[4200];
  path_in(path, sizeof path, "broken.h5");
  const char *removals[][2] = {{"masks", "missing dataset /masks"},
                               {"names", "missing dataset /names"},
                               {"@seed", "missing attribute 'seed'"},
                               {"@num_classes", "missing attribute 'num_classes'"},
                               {"@kind", "missing attribute 'kind'"}};
  for (size_t k = 0; k < sizeof removals / sizeof removals[0]; k++) {
    CHECK(write_file(path, 3, 0, 0) == 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    const char *what = removals[k][0];
    if (what[0] == '@')
      H5Adelete(f, what + 1);
    else
      H5Ldelete(f, what, H5P_DEFAULT);
    H5Fclose(f);
    expect_reader_error(path, removals[k][1]);
  }
  /* wrong type: /images as int16 */
  {
    CHECK(write_file(path, 3, 0, 0) == 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "images", H5P_DEFAULT);
    hsize_t dims[4] = {3, H, W, 3};
    hid_t s = H5Screate_simple(4, dims, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_STD_I16LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    expect_reader_error(path, "dataset /images has the wrong type");
  }
  /* shape disagreement: height attribute says 9 */
  {
    CHECK(write_file(path, 3, 0, 0) == 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "height", H5P_DEFAULT);
    int v = 9;
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Fclose(f);
    expect_reader_error(path, "attributes height 9");
  }
  /* mask_values with the wrong length */
  {
    CHECK(write_file(path, 3, 0, 0) == 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "mask_values");
    hsize_t n = 2;
    hid_t s = H5Screate_simple(1, &n, NULL);
    int v[2] = {0, 255};
    hid_t a = H5Acreate2(f, "mask_values", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, v);
    H5Aclose(a);
    H5Sclose(s);
    H5Fclose(f);
    expect_reader_error(path, "attribute 'mask_values' should hold 3 integer(s), found 2");
  }
  /* a class id >= num_classes stored by another tool is caught on read */
  {
    CHECK(write_file(path, 3, 0, 0) == 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "masks", H5P_DEFAULT);
    uint8_t m[3 * H * W];
    memset(m, 0, sizeof m);
    m[H * W + 4] = 5; /* sample 1, pixel 4 */
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, m);
    H5Dclose(d);
    H5Fclose(f);
    char err[512];
    ShardReader *r = shard_reader_open(path, err, sizeof err);
    CHECK(r != NULL);
    if (r) {
      uint8_t img[H * W * 3], mask[H * W];
      CHECK(shard_reader_read(r, 0, img, mask, NULL, 0, err, sizeof err) == 0);
      CHECK(shard_reader_read(r, 1, img, mask, NULL, 0, err, sizeof err) == -1);
      CHECK_MSG(strstr(err, "class id 5 at pixel 4") != NULL, "%s", err);
      shard_reader_close(r);
    }
  }
  unlink(path);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "%s/test-work/test_shard", UNET_BINARY_DIR);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) return 1;
  if (unet_mkdir_p(g_dir) != 0) return 1;
  char path[8400], err[512];

  /* round trip: hint smaller than N (the datasets grow), larger than N (they
   * shrink to N at close), none, compressed, and an empty file */
  const long ns[] = {5, 3, 9, 4, 0};
  const long hints[] = {2, 100, 0, 4, 0};
  const int deflate[] = {0, 0, 0, 6, 0};
  for (int k = 0; k < 5; k++) {
    path_in(path, sizeof path, "rt.h5");
    CHECK(write_file(path, ns[k], hints[k], deflate[k]) == 0);
    CHECK(!tmp_left());
    check_round_trip(path, ns[k]);
    if (ns[k] > 0) check_chunks(path);
  }

  /* abort after appends: neither the file nor the temporary exists */
  {
    path_in(path, sizeof path, "aborted.h5");
    ShardInfo info = make_info(3);
    ShardWriter *w = shard_writer_open(path, &info, 4, err, sizeof err);
    CHECK(w != NULL);
    uint8_t img[H * W * 3], mask[H * W];
    fill_sample(0, img, mask, 3);
    CHECK(shard_writer_append(w, img, mask, "x", err, sizeof err) == 0);
    CHECK(exists(shard_writer_tmp_path(w)));
    /* an out-of-range class id is refused before anything is written */
    mask[3] = 3;
    CHECK(shard_writer_append(w, img, mask, "bad", err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "class id 3 at pixel 3") && strstr(err, "'bad'"), "%s", err);
    CHECK(shard_writer_count(w) == 1);
    shard_writer_abort(w);
    CHECK(!exists(path));
    CHECK(!tmp_left());
  }

  /* two-phase commit: after finish only the temporary exists */
  {
    path_in(path, sizeof path, "twophase.h5");
    ShardInfo info = make_info(3);
    ShardWriter *w = shard_writer_open(path, &info, 0, err, sizeof err);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s", shard_writer_tmp_path(w));
    CHECK(shard_writer_finish(w, err, sizeof err) == 0);
    CHECK(exists(tmp) && !exists(path));
    CHECK(shard_writer_commit(w, err, sizeof err) == 0);
    CHECK(!exists(tmp) && exists(path));
  }

  /* unwritable location: the parent is a regular file (works even as root) */
  {
    char blocker[4200];
    path_in(blocker, sizeof blocker, "plainfile");
    FILE *f = fopen(blocker, "w");
    fputs("x", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/out.h5", blocker);
    ShardInfo info = make_info(3);
    ShardWriter *w = shard_writer_open(path, &info, 0, err, sizeof err);
    CHECK(w == NULL);
    CHECK_MSG(strstr(err, "cannot create") && strstr(err, "Not a directory") && strstr(err, blocker), "%s", err);
  }

  /* invalid info is refused with the values named */
  {
    path_in(path, sizeof path, "invalid.h5");
    ShardInfo info = make_info(3);
    info.num_classes = 0;
    CHECK(shard_writer_open(path, &info, 0, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "classes 0") != NULL, "%s", err);
    CHECK(!exists(path) && !tmp_left());
  }

  /* reader: missing file, not HDF5, truncated HDF5 */
  path_in(path, sizeof path, "nope.h5");
  expect_reader_error(path, "No such file");
  {
    path_in(path, sizeof path, "text.h5");
    FILE *f = fopen(path, "w");
    fputs("hello, not hdf5\n", f);
    fclose(f);
    expect_reader_error(path, "not an HDF5 file");
  }
  {
    path_in(path, sizeof path, "trunc.h5");
    CHECK(write_file(path, 9, 0, 0) == 0);
    struct stat st;
    stat(path, &st);
    CHECK(truncate(path, st.st_size / 2) == 0);
    /* HDF5 notices the short file at open (end-of-file below the stored EOA) */
    char e2[512] = "";
    ShardReader *r = shard_reader_open(path, e2, sizeof e2);
    CHECK_MSG(r == NULL && strstr(e2, path), "truncated file opened: %s", e2);
    if (r) shard_reader_close(r);
  }

  check_schema_errors();
  CHECK_DONE();
}
