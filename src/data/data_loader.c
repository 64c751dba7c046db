/* data_loader.c - see data_loader.h */
#include "unet/data_loader.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unet/util.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_train_files(const char *dir, char ***out, int *count, char *err, size_t err_len) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, err_len, "%s: cannot open data directory: %s", dir, strerror(errno));
    return -1;
  }
  int cap = 16, n = 0;
  char **names = xmalloc(cap * sizeof(char *), "shard list");
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, "train-", 6) != 0 || len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0) continue;
    if (n == cap) {
      char **bigger = xmalloc(2 * cap * sizeof(char *), "shard list");
      memcpy(bigger, names, n * sizeof(char *));
      xfree(names);
      names = bigger;
      cap *= 2;
    }
    char path[UNET_PATH_MAX];
    if (unet_path_join(path, sizeof path, dir, e->d_name) != 0) continue;
    names[n++] = xstrdup(path);
  }
  closedir(d);
  qsort(names, n, sizeof(char *), cmp_str);
  *out = names;
  *count = n;
  return 0;
}

static int add_file(ShardSet *s, const char *path, char *err, size_t err_len) {
  ShardReader *r = shard_reader_open(path, err, err_len);
  if (!r) return -1;
  const ShardInfo *info = shard_reader_info(r);
  if (s->num_files == 0) {
    s->height = info->height;
    s->width = info->width;
    s->num_classes = info->num_classes;
    memcpy(s->mask_values, info->mask_values, sizeof s->mask_values);
    s->has_ignore = info->has_ignore;
    s->ignore_value = info->ignore_value;
  } else if (info->has_ignore != s->has_ignore || (s->has_ignore && info->ignore_value != s->ignore_value)) {
    snprintf(err, err_len, "%s: ignore value %d, but %s has %d (-1: none): preprocess all files alike", path,
             info->has_ignore ? info->ignore_value : -1, s->paths[0], s->has_ignore ? s->ignore_value : -1);
    shard_reader_close(r);
    return -1;
  } else if (info->height != s->height || info->width != s->width || info->num_classes != s->num_classes) {
    snprintf(err, err_len, "%s: %dx%d with %d classes, but %s has %dx%d with %d classes", path, info->height,
             info->width, info->num_classes, s->paths[0], s->height, s->width, s->num_classes);
    shard_reader_close(r);
    return -1;
  }
  int i = s->num_files++;
  s->paths[i] = xstrdup(path);
  s->readers[i] = r;
  s->first[i] = s->total;
  s->total += shard_reader_count(r);
  return 0;
}

int shardset_open(ShardSet *s, const char *dir, const char *kind, char *err, size_t err_len) {
  memset(s, 0, sizeof *s);
  char **paths = NULL;
  int n = 0;
  if (strcmp(kind, "train") == 0) {
    if (list_train_files(dir, &paths, &n, err, err_len) != 0) return -1;
    if (n == 0) {
      snprintf(err, err_len, "%s: no training shards (train-*.h5); run unet-preprocess first", dir);
      xfree(paths);
      return -1;
    }
  } else {
    char path[UNET_PATH_MAX];
    struct stat st;
    if (unet_path_join(path, sizeof path, dir, "val.h5") != 0) {
      snprintf(err, err_len, "%s: path too long", dir);
      return -1;
    }
    if (stat(path, &st) != 0) return 0; /* no validation split (--val 0) */
    paths = xmalloc(sizeof(char *), "shard list");
    paths[0] = xstrdup(path);
    n = 1;
  }
  s->paths = xcalloc(n, sizeof(char *), "shard list");
  s->readers = xcalloc(n, sizeof(ShardReader *), "shard readers");
  s->first = xcalloc(n, sizeof(long), "shard offsets");
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) rc = add_file(s, paths[i], err, err_len);
  for (int i = 0; i < n; i++) xfree(paths[i]);
  xfree(paths);
  if (rc != 0) shardset_close(s);
  return rc;
}

int shardset_open_file(ShardSet *s, const char *path, char *err, size_t err_len) {
  memset(s, 0, sizeof *s);
  s->paths = xcalloc(1, sizeof(char *), "shard list");
  s->readers = xcalloc(1, sizeof(ShardReader *), "shard readers");
  s->first = xcalloc(1, sizeof(long), "shard offsets");
  int rc = add_file(s, path, err, err_len);
  if (rc != 0) shardset_close(s);
  return rc;
}

void shardset_close(ShardSet *s) {
  for (int i = 0; i < s->num_files; i++) {
    shard_reader_close(s->readers[i]);
    xfree(s->paths[i]);
  }
  xfree(s->paths);
  xfree(s->readers);
  xfree(s->first);
  memset(s, 0, sizeof *s);
}

int shardset_read(ShardSet *s, long index, uint8_t *image, uint8_t *mask, char *name, size_t name_len, char *err,
                  size_t err_len) {
  if (index < 0 || index >= s->total) {
    snprintf(err, err_len, "sample %ld out of range (%ld samples)", index, s->total);
    return -1;
  }
  int lo = 0, hi = s->num_files - 1; /* last file whose first <= index */
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (s->first[mid] <= index) lo = mid; else hi = mid - 1;
  }
  return shard_reader_read(s->readers[lo], index - s->first[lo], image, mask, name, name_len, err, err_len);
}

int shardset_read_batch(ShardSet *s, const long *index, int n, const AugmentConfig *aug, uint64_t seed, int64_t epoch,
                        float *x, uint8_t *labels, uint8_t *scratch, char *err, size_t err_len) {
  size_t pixels = (size_t)s->height * s->width;
  int augmenting = aug && augment_enabled(aug);
  uint8_t *image = scratch, *raw_mask = scratch + 3 * pixels;
  for (int i = 0; i < n; i++) {
    uint8_t *mask = labels + i * pixels;
    /* the shard reader has checked every class id (< num_classes, or the ignore id) */
    if (shardset_read(s, index[i], image, augmenting ? raw_mask : mask, NULL, 0, err, err_len) != 0) return -1;
    const uint8_t *pixels_u8 = image;
    if (augmenting) {
      uint8_t *out = scratch + 4 * pixels;
      augment_sample(aug, seed, epoch, index[i], image, raw_mask, s->height, s->width, out, mask);
      pixels_u8 = out;
    }
    unet_bytes_to_floats(x + i * pixels * 3, pixels_u8, pixels * 3);
  }
  return 0;
}
