/* test_integrity.c - data that cannot rot silently, at the library level:
 *  - shards: every /images and /masks chunk carries Fletcher-32 (plain and
 *    deflated); a flipped byte in one sample's chunk (in the data or in the
 *    stored checksum) fails exactly that sample's read with a message naming
 *    the file, the sample index and name, while the other samples read back
 *    exactly; a shard written without the filter (the format before it)
 *    loads, with one note per process, and there a flipped byte does come
 *    back as data (what the filter is for); a chunk of the wrong size (a
 *    fuzz_shard finding: HDF5 reads past it) is refused before decoding;
 *  - weights files: a flipped byte in a kernel or a BatchNorm statistic fails
 *    weights_load_keras with a message naming the file and the arena, the
 *    model unchanged; the same file without our CRC attributes (as Keras
 *    writes it) loads bit-exactly. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "unet/model.h"
#include "unet/shard.h"
#include "unet/util.h"
#include "unet/weights_keras.h"

#define H 7
#define W 5
#define N 4

static char g_dir[4096];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static void fill_sample(long i, uint8_t *img, uint8_t *mask) {
  for (int p = 0; p < H * W * 3; p++) img[p] = (uint8_t)(i * 37 + p * 11 + 3);
  for (int p = 0; p < H * W; p++) mask[p] = (uint8_t)((i + p) % 3);
}

static ShardInfo make_info(void) {
  ShardInfo info;
  memset(&info, 0, sizeof info);
  info.height = H, info.width = W, info.num_classes = 3;
  for (int c = 0; c < 3; c++) info.mask_values[c] = c + 1;
  info.seed = 5;
  snprintf(info.kind, sizeof info.kind, "train");
  return info;
}

static int write_shard(const char *path, int deflate) {
  char err[512];
  ShardInfo info = make_info();
  info.deflate_level = deflate;
  ShardWriter *w = shard_writer_open(path, &info, N, err, sizeof err);
  if (!w) return fprintf(stderr, "%s\n", err), -1;
  uint8_t img[H * W * 3], mask[H * W];
  for (long i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "sample_%ld", i);
    fill_sample(i, img, mask);
    if (shard_writer_append(w, img, mask, name, err, sizeof err) < 0) {
      fprintf(stderr, "%s\n", err);
      shard_writer_abort(w);
      return -1;
    }
  }
  if (shard_writer_close(w, err, sizeof err) < 0) return fprintf(stderr, "%s\n", err), -1;
  return 0;
}

/* The old schema, as unet-preprocess wrote it before the checksums: the same
 * datasets and attributes, one sample per chunk, no filter. */
static int write_legacy_shard(const char *path) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return -1;
  hsize_t di[4] = {N, H, W, 3}, ci[4] = {1, H, W, 3}, dm[3] = {N, H, W}, cm[3] = {1, H, W}, dn[1] = {N};
  uint8_t img[N][H * W * 3], mask[N][H * W];
  for (long i = 0; i < N; i++) fill_sample(i, img[i], mask[i]);
  const struct {
    const char *name;
    int rank;
    const hsize_t *dims, *chunk;
    const void *data;
  } sets[] = {{"images", 4, di, ci, img}, {"masks", 3, dm, cm, mask}};
  int rc = 0;
  for (int k = 0; k < 2; k++) {
    hid_t space = H5Screate_simple(sets[k].rank, sets[k].dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, sets[k].rank, sets[k].chunk);
    hid_t d = H5Dcreate2(f, sets[k].name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, sets[k].data) < 0) rc = -1;
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  char names[N][16];
  const char *pn[N];
  for (int i = 0; i < N; i++) snprintf(names[i], sizeof names[i], "sample_%d", i), pn[i] = names[i];
  hid_t st = H5Tcopy(H5T_C_S1);
  H5Tset_size(st, H5T_VARIABLE);
  hid_t space = H5Screate_simple(1, dn, NULL);
  hid_t d = H5Dcreate2(f, "names", st, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0 || H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, pn) < 0) rc = -1;
  if (d >= 0) H5Dclose(d);
  H5Sclose(space);
  const int32_t ints[3] = {H, W, 3}, mv[3] = {1, 2, 3};
  const char *int_names[3] = {"height", "width", "num_classes"};
  hid_t scalar = H5Screate(H5S_SCALAR), three = H5Screate_simple(1, (hsize_t[]){3}, NULL);
  for (int k = 0; k < 3; k++) {
    hid_t a = H5Acreate2(f, int_names[k], H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_INT32, &ints[k]) < 0) rc = -1;
    if (a >= 0) H5Aclose(a);
  }
  hid_t a = H5Acreate2(f, "mask_values", H5T_STD_I32LE, three, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, H5T_NATIVE_INT32, mv) < 0) rc = -1;
  if (a >= 0) H5Aclose(a);
  int64_t seed = 5;
  a = H5Acreate2(f, "seed", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, &seed) < 0) rc = -1;
  if (a >= 0) H5Aclose(a);
  const char *strs[2][2] = {{"tool_version", "0.0.9"}, {"kind", "train"}};
  for (int k = 0; k < 2; k++) {
    a = H5Acreate2(f, strs[k][0], st, scalar, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, st, &strs[k][1]) < 0) rc = -1;
    if (a >= 0) H5Aclose(a);
  }
  H5Sclose(scalar);
  H5Sclose(three);
  H5Tclose(st);
  if (H5Fclose(f) < 0) rc = -1;
  return rc;
}

/* File offset and stored size of the chunk holding sample i of dataset, or
 * of a contiguous dataset's data (i ignored); -1 when not found. */
static long long data_offset(const char *path, const char *dataset, long i, long long *size) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f >= 0 ? H5Dopen2(f, dataset, H5P_DEFAULT) : -1;
  long long off = -1;
  if (d >= 0) {
    hid_t dcpl = H5Dget_create_plist(d);
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
      hsize_t coord[4] = {(hsize_t)i, 0, 0, 0}, sz = 0;
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      if (H5Dget_chunk_info_by_coord(d, coord, &mask, &addr, &sz) >= 0 && addr != HADDR_UNDEF)
        off = (long long)addr, *size = (long long)sz;
    } else {
      haddr_t addr = H5Dget_offset(d);
      if (addr != HADDR_UNDEF) off = (long long)addr, *size = (long long)H5Dget_storage_size(d);
    }
    H5Pclose(dcpl);
    H5Dclose(d);
  }
  if (f >= 0) H5Fclose(f);
  return off;
}

static int flip_byte(const char *path, long long at) {
  FILE *f = fopen(path, "r+b");
  if (!f) return -1;
  int rc = -1;
  if (fseek(f, (long)at, SEEK_SET) == 0) {
    int c = fgetc(f);
    if (c != EOF && fseek(f, (long)at, SEEK_SET) == 0 && fputc(c ^ 0xff, f) != EOF) rc = 0;
  }
  if (fclose(f) != 0) rc = -1;
  return rc;
}

/* Reads every sample of path: sample `bad` (-1: none) must fail with a
 * checksum message naming `dataset`, every other one must equal fill_sample. */
static void check_reads(const char *path, long bad, const char *dataset) {
  char err[1024];
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  if (!r) return;
  CHECK(shard_reader_checksummed(r) == 1);
  for (long i = 0; i < N; i++) {
    uint8_t img[H * W * 3], mask[H * W], want_img[H * W * 3], want_mask[H * W];
    char name[64] = "";
    fill_sample(i, want_img, want_mask);
    int rc = shard_reader_read(r, i, img, mask, name, sizeof name, err, sizeof err);
    if (i != bad) {
      CHECK_MSG(rc == 0, "sample %ld: %s", i, err);
      CHECK_MSG(rc == 0 && memcmp(img, want_img, sizeof img) == 0 && memcmp(mask, want_mask, sizeof mask) == 0,
                "sample %ld of %s differs", i, path);
      continue;
    }
    char want[1400];
    snprintf(want, sizeof want,
             "%s: sample %ld ('sample_%ld') is corrupt: its /%s chunk fails the Fletcher-32 checksum", path, i, i,
             dataset);
    CHECK_MSG(rc == -1 && strncmp(err, want, strlen(want)) == 0, "sample %ld: rc %d, message '%s', want '%s...'", i,
              rc, err, want);
    printf("  expected error: %s\n", err);
  }
  shard_reader_close(r);
}

/* The fuzz_shard finding: a chunk shorter than a sample (written here with
 * H5Dwrite_chunk, which stores the bytes as given) must be refused before
 * HDF5 copies a whole sample out of it. */
static void test_short_chunk(void) {
  char path[4200], err[1024];
  path_in(path, sizeof path, "short.h5");
  CHECK(write_shard(path, 0) == 0);
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = f >= 0 ? H5Dopen2(f, "images", H5P_DEFAULT) : -1;
  uint8_t bytes[64] = {0};
  hsize_t at[4] = {1, 0, 0, 0};
  CHECK(d >= 0 && H5Dwrite_chunk(d, H5P_DEFAULT, 0, at, sizeof bytes, bytes) >= 0);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  if (!r) return;
  uint8_t img[H * W * 3], mask[H * W];
  CHECK(shard_reader_read(r, 0, img, mask, NULL, 0, err, sizeof err) == 0);
  char want[4400];
  snprintf(want, sizeof want, "%s: sample 1 is corrupt: its /images chunk holds 64 bytes, want %d", path, H * W * 3 + 4);
  CHECK_MSG(shard_reader_read(r, 1, img, mask, NULL, 0, err, sizeof err) == -1 && strcmp(err, want) == 0,
            "'%s', want '%s'", err, want);
  printf("  expected error: %s\n", err);
  CHECK(shard_reader_read(r, 2, img, mask, NULL, 0, err, sizeof err) == 0);
  shard_reader_close(r);
}

static void test_shards(void) {
  char good[4200], bad[4200], cmd[9000];
  for (int deflate = 0; deflate <= 6; deflate += 6) {
    path_in(good, sizeof good, "good.h5");
    CHECK(write_shard(good, deflate) == 0);
    check_reads(good, -1, "");
    /* a byte in the middle of the data of an image chunk, of a mask chunk,
     * and the last byte of a chunk (its stored Fletcher-32 value) */
    const struct {
      const char *dataset;
      long sample;
      int where; /* 0 middle, 1 last byte */
    } flips[] = {{"images", 2, 0}, {"masks", 1, 0}, {"images", 3, 1}, {"images", 0, 0}};
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
      path_in(bad, sizeof bad, "bad.h5");
      snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, bad);
      CHECK(system(cmd) == 0);
      char ds[32];
      snprintf(ds, sizeof ds, "/%s", flips[k].dataset);
      long long size = 0, off = data_offset(bad, ds, flips[k].sample, &size);
      CHECK_MSG(off > 0 && size > 4, "%s sample %ld: offset %lld size %lld", ds, flips[k].sample, off, size);
      /* stored chunk = data + 4 checksum bytes (uncompressed: exactly) */
      long long data_bytes = (long long)H * W * (strcmp(flips[k].dataset, "images") == 0 ? 3 : 1);
      if (deflate == 0) CHECK_MSG(size == data_bytes + 4, "chunk of %lld bytes, want %lld", size, data_bytes + 4);
      CHECK(flip_byte(bad, off + (flips[k].where ? size - 1 : size / 2)) == 0);
      check_reads(bad, flips[k].sample, flips[k].dataset);
    }
  }
}

/* stderr into a file while fn runs; returns the captured text (static). */
static const char *capture_stderr(void (*fn)(void *), void *ctx) {
  static char text[8192];
  char path[4200];
  path_in(path, sizeof path, "stderr.txt");
  fflush(stderr);
  int saved = dup(2);
  FILE *f = fopen(path, "w");
  if (!f || saved < 0) return "";
  dup2(fileno(f), 2);
  fn(ctx);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  fclose(f);
  f = fopen(path, "r");
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f) fclose(f);
  text[n] = 0;
  return text;
}

typedef struct {
  const char *a, *b;
  ShardReader *ra, *rb;
} LegacyOpen;

static void open_two(void *ctx) {
  LegacyOpen *l = ctx;
  char err[1024];
  l->ra = shard_reader_open(l->a, err, sizeof err);
  l->rb = shard_reader_open(l->b, err, sizeof err);
  if (!l->ra || !l->rb) printf("  legacy shard: %s\n", err);
}

static void test_legacy(void) {
  char a[4200], b[4200];
  path_in(a, sizeof a, "legacy-a.h5");
  path_in(b, sizeof b, "legacy-b.h5");
  CHECK(write_legacy_shard(a) == 0 && write_legacy_shard(b) == 0);
  LegacyOpen l = {a, b, NULL, NULL};
  const char *text = capture_stderr(open_two, &l);
  CHECK_MSG(l.ra && l.rb, "the legacy shards do not open");
  const char *note = strstr(text, "has no per-chunk checksums");
  CHECK_MSG(note && strstr(text, a) && !strstr(note + 1, "has no per-chunk checksums"),
            "want one note naming %s, stderr was: '%s'", a, text);
  printf("  note: %s", text);
  if (l.ra) {
    CHECK(shard_reader_checksummed(l.ra) == 0);
    char err[1024];
    for (long i = 0; i < N; i++) {
      uint8_t img[H * W * 3], mask[H * W], want_img[H * W * 3], want_mask[H * W];
      fill_sample(i, want_img, want_mask);
      CHECK_MSG(shard_reader_read(l.ra, i, img, mask, NULL, 0, err, sizeof err) == 0, "%s", err);
      CHECK(memcmp(img, want_img, sizeof img) == 0 && memcmp(mask, want_mask, sizeof mask) == 0);
    }
  }
  shard_reader_close(l.ra);
  shard_reader_close(l.rb);
  /* without the filter a flipped byte comes back as data: what it is for */
  long long size = 0, off = data_offset(b, "/images", 2, &size);
  CHECK(off > 0 && size == H * W * 3);
  CHECK(flip_byte(b, off + 10) == 0);
  char err[1024];
  ShardReader *r = shard_reader_open(b, err, sizeof err);
  uint8_t img[H * W * 3], mask[H * W], want_img[H * W * 3], want_mask[H * W];
  fill_sample(2, want_img, want_mask);
  CHECK(r && shard_reader_read(r, 2, img, mask, NULL, 0, err, sizeof err) == 0);
  const uint8_t flipped = (uint8_t)(want_img[10] ^ 0xff);
  CHECK(r && img[10] == flipped && memcmp(img, want_img, 10) == 0);
  shard_reader_close(r);
}

static void test_weights(void) {
  char err[1024], good[4200], bad[4200], keras[4200], cmd[9000];
  UNet m, loaded;
  CHECK(unet_create(&m, 16, 16, 2, err, sizeof err) == 0);
  CHECK(unet_create(&loaded, 16, 16, 2, err, sizeof err) == 0);
  for (size_t i = 0; i < m.num_params; i++) m.params[i] = (float)sin(0.001 * (double)i);
  for (size_t i = 0; i < m.num_state; i++) m.state[i] = 0.5f + (float)(i % 7);
  path_in(good, sizeof good, "good.weights.h5");
  CHECK_MSG(weights_save_keras(&m, good, err, sizeof err) == 0, "%s", err);
  CHECK_MSG(weights_load_keras(&loaded, good, err, sizeof err) == 0, "%s", err);
  CHECK(memcmp(loaded.params, m.params, m.num_params * 4) == 0 && memcmp(loaded.state, m.state, m.num_state * 4) == 0);
  const struct {
    const char *dataset, *message;
  } flips[] = {
      {"/layers/conv2d/vars/0", "is corrupt: the layer weights read from it have CRC-32 0x"},
      {"/layers/conv2d_transpose_2/vars/1", "is corrupt: the layer weights read from it have CRC-32 0x"},
      {"/layers/batch_normalization_3/vars/3", "is corrupt: the BatchNorm statistics read from it have CRC-32 0x"},
  };
  for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
    path_in(bad, sizeof bad, "bad.weights.h5");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, bad);
    CHECK(system(cmd) == 0);
    long long size = 0, off = data_offset(bad, flips[k].dataset, 0, &size);
    CHECK_MSG(off > 0 && size >= 4, "%s: offset %lld", flips[k].dataset, off);
    CHECK(flip_byte(bad, off + size / 2) == 0);
    for (size_t i = 0; i < loaded.num_params; i++) loaded.params[i] = -1.0f;
    int rc = weights_load_keras(&loaded, bad, err, sizeof err);
    char want[4400];
    snprintf(want, sizeof want, "%s: %s", bad, flips[k].message);
    CHECK_MSG(rc == -1 && strncmp(err, want, strlen(want)) == 0, "%s: rc %d, '%s'", flips[k].dataset, rc, err);
    CHECK_MSG(loaded.params[0] == -1.0f && loaded.params[loaded.num_params - 1] == -1.0f,
              "the model changed after a failed load");
    printf("  expected error: %s\n", err);
  }
  /* as Keras writes it: no attributes of ours, so nothing to check: loads */
  path_in(keras, sizeof keras, "keras.weights.h5");
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, keras);
  CHECK(system(cmd) == 0);
  hid_t f = H5Fopen(keras, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(f >= 0 && H5Adelete(f, "unet_crc32_params") >= 0 && H5Adelete(f, "unet_crc32_state") >= 0 &&
        H5Adelete(f, "unet_input_size") >= 0);
  if (f >= 0) {
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    CHECK(H5Aget_num_attrs(root) == 0);
    H5Gclose(root);
    H5Fclose(f);
  }
  for (size_t i = 0; i < loaded.num_params; i++) loaded.params[i] = -1.0f;
  CHECK_MSG(weights_load_keras(&loaded, keras, err, sizeof err) == 0, "%s", err);
  CHECK(memcmp(loaded.params, m.params, m.num_params * 4) == 0 && memcmp(loaded.state, m.state, m.num_state * 4) == 0);
  unet_destroy(&m);
  unet_destroy(&loaded);
}

int main(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  snprintf(g_dir, sizeof g_dir, "%s/test-work/test_integrity", UNET_BINARY_DIR);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0 || unet_mkdir_p(g_dir) != 0) return 1;
  test_shards();
  test_short_chunk();
  test_legacy();
  test_weights();
  CHECK_DONE();
}
