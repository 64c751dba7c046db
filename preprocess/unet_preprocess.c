/* unet-preprocess - turn an Oxford-style image/mask tree into HDF5 shards.
 *
 *   unet-preprocess --images DIR --masks DIR --out DIR [--size 160|HxW]
 *                   [--mask-values 1,2,3 | --mask-threshold T] [--ignore-value V]
 *                   [--split train|test] [--seed 1337] [--val 1000|0.1]
 *                   [--shards 1] [--threads N] [--compress 0..9] [--strict]
 *
 * Phases:
 *  1. list both folders, match files by stem (sorted by stem);
 *  2. worker threads decode (by content), validate, map mask values to class
 *     ids and resize every pair (images bilinear as tf.image.resize, masks
 *     nearest) into a sample store (memory, or an unlinked spill file when
 *     it would exceed --memory-mb);
 *  3. the valid pairs (stem order) are shuffled with --seed; the LAST --val
 *     go to val.h5, the rest into --shards contiguous ranges
 *     train-0000k-of-0000K.h5 (--split test: all of them, in stem order, to
 *     test.h5); the main thread writes HDF5 (HDF5 is not
 *     thread safe), every file under a temporary name, and renames them all
 *     only when all are complete.
 * Bad pairs are reported one line each and skipped (--strict: fatal). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "unet/image.h"
#include "unet/model.h"
#include "unet/mask_map.h"
#include "unet/resize.h"
#include "unet/rng.h"
#include "unet/shard.h"
#include "unet/util.h"

/* ---- options -------------------------------------------------------------- */
typedef struct {
  const char *images_dir, *masks_dir, *out_dir;
  int height, width;
  int mask_values[SHARD_MAX_CLASSES], num_classes;
  int64_t seed;
  double val_fraction; /* used when val_count < 0 */
  long val_count;
  long shards;
  int threads;
  int deflate;
  int strict;
  long memory_mb;
  int mask_threshold;   /* -1: map with mask_values; else class 1 = raw >= T, 0 below */
  int ignore_value;     /* -1: none; else raw value stored as SHARD_IGNORE_ID */
  const char *split_one; /* --split val|test: every valid pair into one file, val.h5 or test.h5; NULL: train */
  int val_given, shards_given, mask_values_given;
} Options;

static void usage(FILE *f) {
  fprintf(f,
          "usage: unet-preprocess --images DIR --masks DIR --out DIR [options]\n"
          "Pairs images and masks by file stem, resizes them as the Keras example does and\n"
          "writes OUT/train-0000k-of-0000K.h5, OUT/val.h5 and OUT/manifest.txt.\n"
          "  --size S|HxW        output size, sides multiples of 16 (default 160)\n"
          "  --mask-values LIST  raw mask value of class 0,1,2,... (default 1,2,3: Oxford trimaps;\n"
          "                      e.g. 0,255 for binary masks); other values are an error\n"
          "  --mask-threshold T  binary masks: raw value >= T is class 1, below is class 0 (JPEG or\n"
          "                      anti-aliased masks); instead of --mask-values\n"
          "  --ignore-value V    raw mask value of void/ignored pixels (255 in VOC, 11 in CamVid): stored\n"
          "                      as class id 255, left out of the loss and the metrics\n"
          "  --split train|val|test  train (default): train shards + the last --val pairs in val.h5;\n"
          "                      val, test: every pair (stem order) into val.h5 / test.h5, for a dataset's\n"
          "                      own validation or test split\n"
          "  --seed S            shuffle seed (default 1337)\n"
          "  --val N|F           validation pairs: a count, or a fraction 0<F<1 (default 1000; 0 = none)\n"
          "  --shards K          training files (default 1)\n"
          "  --threads T         decode threads (default: online CPUs)\n"
          "  --compress L        gzip level 0..9 for the shards (default 0: none, fastest reads)\n"
          "  --memory-mb M       keep resized samples in memory up to M MB, else spill to a\n"
          "                      temporary file in OUT (default 4096)\n"
          "  --strict            any bad pair is fatal, and so is a mask of another resolution\n"
          "                      (default: report and skip bad pairs; resize masks whose aspect ratio\n"
          "                      agrees with the image's within 1%%)\n"
          "Palette PNG masks are read by index (the class ids of VOC-style masks).\n"
          "exit codes: 0 done, 1 error (named input or output at fault), 2 bad command line\n");
}

/* The nearest valid side for the --size hint (at least one multiple). */
static int round_to_multiple(int side) {
  int k = (side + UNET_SIZE_MULTIPLE / 2) / UNET_SIZE_MULTIPLE;
  return (k < 1 ? 1 : k) * UNET_SIZE_MULTIPLE;
}

static int parse_mask_values(const char *s, Options *o) {
  o->num_classes = 0;
  const char *p = s;
  while (*p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v > 255 || o->num_classes >= SHARD_MAX_CLASSES) return -1;
    for (int c = 0; c < o->num_classes; c++)
      if (o->mask_values[c] == v) return -1;
    o->mask_values[o->num_classes++] = (int)v;
    if (*end == ',') end++;
    else if (*end) return -1;
    p = end;
  }
  return o->num_classes > 0 ? 0 : -1;
}

static void parse_args(int argc, char **argv, Options *o) {
  memset(o, 0, sizeof *o);
  o->height = o->width = 160;
  o->mask_values[0] = 1, o->mask_values[1] = 2, o->mask_values[2] = 3;
  o->num_classes = 3;
  o->seed = 1337;
  o->val_count = 1000;
  o->shards = 1;
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  o->threads = nproc > 0 ? (int)nproc : 1;
  o->memory_mb = 4096;
  o->mask_threshold = o->ignore_value = -1;
  for (int a = 1; a < argc; a++) {
    const char *opt = argv[a];
    if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
      usage(stdout);
      exit(UNET_EXIT_OK);
    }
    if (!strcmp(opt, "--strict")) {
      o->strict = 1;
      continue;
    }
    int known = !strcmp(opt, "--images") || !strcmp(opt, "--masks") || !strcmp(opt, "--out") ||
                !strcmp(opt, "--size") || !strcmp(opt, "--mask-values") || !strcmp(opt, "--seed") ||
                !strcmp(opt, "--val") || !strcmp(opt, "--shards") || !strcmp(opt, "--threads") ||
                !strcmp(opt, "--compress") || !strcmp(opt, "--memory-mb") || !strcmp(opt, "--mask-threshold") ||
                !strcmp(opt, "--ignore-value") || !strcmp(opt, "--split");
    if (!known) unet_usage_error("unknown option '%s'", opt);
    if (a + 1 >= argc) unet_usage_error("%s needs a value", opt);
    const char *val = argv[++a];
    long v;
    double d;
    if (!strcmp(opt, "--images")) {
      o->images_dir = val;
    } else if (!strcmp(opt, "--masks")) {
      o->masks_dir = val;
    } else if (!strcmp(opt, "--out")) {
      o->out_dir = val;
    } else if (!strcmp(opt, "--size")) {
      if (unet_parse_size(val, &o->height, &o->width)) unet_usage_error("--size %s: want S or HxW, e.g. 160 or 160x128", val);
      if (o->height % UNET_SIZE_MULTIPLE || o->width % UNET_SIZE_MULTIPLE)
        unet_usage_error("--size %s: the model needs sides that are multiples of %d (it halves the image 4 times); "
                         "the nearest is %dx%d",
                         val, UNET_SIZE_MULTIPLE, round_to_multiple(o->height), round_to_multiple(o->width));
    } else if (!strcmp(opt, "--mask-values")) {
      if (parse_mask_values(val, o))
        unet_usage_error("--mask-values %s: want distinct integers 0..255 separated by commas, e.g. 1,2,3 or 0,255", val);
      o->mask_values_given = 1;
    } else if (!strcmp(opt, "--mask-threshold")) {
      if (unet_parse_int(val, &v) || v < 1 || v > 255) unet_usage_error("--mask-threshold %s: want an integer in 1..255", val);
      o->mask_threshold = (int)v;
    } else if (!strcmp(opt, "--ignore-value")) {
      if (unet_parse_int(val, &v) || v < 0 || v > 255) unet_usage_error("--ignore-value %s: want an integer in 0..255", val);
      o->ignore_value = (int)v;
    } else if (!strcmp(opt, "--split")) {
      if (strcmp(val, "train") && strcmp(val, "val") && strcmp(val, "test"))
        unet_usage_error("--split %s: want train, val or test", val);
      o->split_one = strcmp(val, "train") ? val : NULL;
    } else if (!strcmp(opt, "--seed")) {
      if (unet_parse_int(val, &v)) unet_usage_error("--seed %s: want an integer", val);
      o->seed = v;
    } else if (!strcmp(opt, "--val")) {
      if (unet_parse_int(val, &v) == 0) {
        if (v < 0) unet_usage_error("--val %s: must not be negative", val);
        o->val_count = v;
        o->val_given = 1;
      } else if (unet_parse_double(val, &d) == 0 && d > 0 && d < 1) {
        o->val_count = -1;
        o->val_fraction = d;
        o->val_given = 1;
      } else {
        unet_usage_error("--val %s: want a count (e.g. 1000, 0) or a fraction between 0 and 1 (e.g. 0.1)", val);
      }
    } else if (!strcmp(opt, "--shards")) {
      if (unet_parse_int(val, &v) || v < 1 || v > 99999) unet_usage_error("--shards %s: want an integer in 1..99999", val);
      o->shards = v;
      o->shards_given = 1;
    } else if (!strcmp(opt, "--threads")) {
      if (unet_parse_int(val, &v) || v < 1 || v > 256) unet_usage_error("--threads %s: want an integer in 1..256", val);
      o->threads = (int)v;
    } else if (!strcmp(opt, "--compress")) {
      if (unet_parse_int(val, &v) || v < 0 || v > 9) unet_usage_error("--compress %s: want a gzip level 0..9", val);
      o->deflate = (int)v;
    } else if (!strcmp(opt, "--memory-mb")) {
      if (unet_parse_int(val, &v) || v < 0) unet_usage_error("--memory-mb %s: want a non-negative integer", val);
      o->memory_mb = v;
    }
  }
  if (!o->images_dir || !o->masks_dir || !o->out_dir) unet_usage_error("--images, --masks and --out are required");
  if (o->mask_threshold >= 0 && o->mask_values_given)
    unet_usage_error("--mask-threshold and --mask-values exclude each other (a threshold makes classes 0 and 1)");
  if (o->mask_threshold >= 0) {
    o->num_classes = 2;
    o->mask_values[0] = 0, o->mask_values[1] = o->mask_threshold; /* the lowest raw value of each class */
  }
  if (o->ignore_value >= 0 && o->mask_threshold < 0)
    for (int c = 0; c < o->num_classes; c++)
      if (o->mask_values[c] == o->ignore_value)
        unet_usage_error("--ignore-value %d is also class %d of --mask-values: a value is either a class or ignored",
                         o->ignore_value, c);
  if (o->ignore_value >= 0 && o->num_classes > SHARD_IGNORE_ID)
    unet_usage_error("--ignore-value needs at most %d classes (class id %d marks ignored pixels)", SHARD_IGNORE_ID,
                     SHARD_IGNORE_ID);
  if (o->split_one && (o->val_given || o->shards_given))
    unet_usage_error("--split %s writes every pair into %s.h5: --val and --shards do not apply", o->split_one,
                     o->split_one);
}

/* ---- listing and pairing by stem ---------------------------------------- */
typedef enum {
  SKIP_NONE = 0,
  SKIP_NO_MASK,
  SKIP_NO_IMAGE,
  SKIP_DUPLICATE,
  SKIP_UNREADABLE,
  SKIP_UNSUPPORTED,
  SKIP_CORRUPT_IMAGE,
  SKIP_CORRUPT_MASK,
  SKIP_SIZE_MISMATCH,
  SKIP_MASK_VALUE,
  SKIP_REASONS
} SkipReason;

static const char *const reason_name[SKIP_REASONS] = {
    "",           "image without mask", "mask without image",       "duplicate stem", "unreadable file",
    "unsupported format", "corrupt image", "corrupt mask", "image/mask size mismatch", "mask value outside the mapping"};

typedef struct {
  char *stem;
  char *image_path, *mask_path; /* NULL when absent */
  SkipReason reason;
  char *message; /* one line naming the file and the reason */
  uint8_t other_resolution; /* the mask's size differs, its aspect ratio agrees: resized straight */
  uint8_t palette;          /* a palette PNG mask, read by index */
  long ignored_pixels;      /* stored mask pixels with the ignore value */
} Pair;

typedef struct {
  char *stem, *path;
} Entry;

static int entry_cmp(const void *a, const void *b) {
  const Entry *x = a, *y = b;
  int c = strcmp(x->stem, y->stem);
  return c ? c : strcmp(x->path, y->path);
}

static Entry *list_dir(const char *dir, const char *what, long *count) {
  DIR *d = opendir(dir);
  if (!d) unet_fatal("cannot read %s directory %s: %s", what, dir, strerror(errno));
  long n = 0, cap = 256, ignored = 0;
  Entry *e = xmalloc(sizeof(Entry) * cap, "directory listing");
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    if (name[0] == '.') continue; /* ., .., hidden files and macOS "._x" forks */
    char path[UNET_PATH_MAX];
    if (unet_path_join(path, sizeof path, dir, name) != 0) {
      unet_warn("ignoring %s/%s: path too long", dir, name);
      continue;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue; /* subfolders, dangling links */
    if (!image_name_has_image_extension(name)) { /* e.g. the .mat files in Oxford's images/ */
      if (ignored++ < 5) unet_warn("ignoring %s: not an image file name", path);
      continue;
    }
    if (n == cap) {
      Entry *bigger = xmalloc(sizeof(Entry) * cap * 2, "directory listing");
      memcpy(bigger, e, sizeof(Entry) * cap);
      xfree(e);
      e = bigger;
      cap *= 2;
    }
    e[n].path = xstrdup(path);
    e[n].stem = xstrdup(name);
    *strrchr(e[n].stem, '.') = 0;
    n++;
  }
  int read_errno = errno;
  closedir(d);
  if (read_errno) unet_fatal("error reading %s directory %s: %s", what, dir, strerror(read_errno));
  if (ignored > 5) unet_warn("ignored %ld more non-image files in %s", ignored - 5, dir);
  if (n == 0) unet_fatal("no image files (.jpg, .png, ...) in %s directory %s", what, dir);
  qsort(e, (size_t)n, sizeof(Entry), entry_cmp);
  *count = n;
  return e;
}

static char *format_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format_message(const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return xstrdup(buf);
}

/* Merge the two sorted listings into pairs sorted by stem. */
static Pair *match_pairs(Entry *img, long ni, Entry *msk, long nm, long *npairs) {
  Pair *pairs = xcalloc((size_t)(ni + nm), sizeof(Pair), "pairs");
  long i = 0, m = 0, n = 0;
  while (i < ni || m < nm) {
    int c = i >= ni ? 1 : (m >= nm ? -1 : strcmp(img[i].stem, msk[m].stem));
    const char *stem = c <= 0 ? img[i].stem : msk[m].stem;
    /* all entries of this stem on each side */
    long i_end = i, m_end = m;
    while (i_end < ni && !strcmp(img[i_end].stem, stem)) i_end++;
    while (m_end < nm && !strcmp(msk[m_end].stem, stem)) m_end++;
    Pair *p = &pairs[n++];
    p->stem = xstrdup(stem);
    if (i_end > i) p->image_path = img[i].path;
    if (m_end > m) p->mask_path = msk[m].path;
    if (i_end - i > 1 || m_end - m > 1) {
      const Entry *dup = i_end - i > 1 ? img + i : msk + m;
      p->reason = SKIP_DUPLICATE;
      p->message = format_message("%s and %s: two files with stem '%s'", dup[0].path, dup[1].path, stem);
    } else if (!p->mask_path) {
      p->reason = SKIP_NO_MASK;
      p->message = format_message("%s: image without mask (no %s.* in the masks directory)", p->image_path, stem);
    } else if (!p->image_path) {
      p->reason = SKIP_NO_IMAGE;
      p->message = format_message("%s: mask without image (no %s.* in the images directory)", p->mask_path, stem);
    }
    i = i_end;
    m = m_end;
  }
  *npairs = n;
  return pairs;
}

/* Pairs with both files and no reason to skip yet (decoding may skip more). */
static long count_candidates(const Pair *pairs, long npairs) {
  long n = 0;
  for (long i = 0; i < npairs; i++) n += pairs[i].reason == SKIP_NONE;
  return n;
}

/* --val and --shards against n pairs; returns the validation count. Called
 * before decoding with the candidate pairs and after it with the valid ones. */
static long check_counts(const Options *o, long n, const char *what) {
  if (n == 0) unet_fatal("no %s in %s and %s", what, o->images_dir, o->masks_dir);
  if (o->split_one) return 0; /* everything goes to one file */
  long nval = o->val_count >= 0 ? o->val_count : (long)(o->val_fraction * n + 0.5);
  if (nval >= n)
    unet_fatal("--val %ld needs more than %ld pairs, only %ld %s; use a smaller --val or a fraction such as --val 0.2",
               nval, nval, n, what);
  if (n - nval < o->shards)
    unet_fatal("--shards %ld needs at least %ld training pairs, only %ld left of %ld %s after --val %ld", o->shards,
               o->shards, n - nval, n, what, nval);
  return nval;
}

/* ---- sample store: resized samples by pair index ------------------------- */
typedef struct {
  size_t sample_bytes; /* H*W*3 image then H*W mask */
  uint8_t *mem;        /* in-memory store, or NULL */
  int fd;              /* spill file (already unlinked), or -1 */
  char spill_path[UNET_PATH_MAX];
} SampleStore;

static void store_open(SampleStore *s, const Options *o, long npairs) {
  s->sample_bytes = (size_t)o->height * o->width * 4;
  s->mem = NULL;
  s->fd = -1;
  double mb = (double)s->sample_bytes * npairs / 1048576.0;
  if (mb <= (double)o->memory_mb) {
    s->mem = xmalloc(s->sample_bytes * (size_t)npairs, "resized samples");
    return;
  }
  /* unlinked at once: it disappears however the process ends */
  if (unet_mkdir_output(o->out_dir) != 0)
    unet_fatal("cannot create output directory %s: %s", o->out_dir, strerror(errno));
  char name[64];
  snprintf(name, sizeof name, ".unet-preprocess-spill.tmp.%ld", (long)getpid());
  unet_path_join(s->spill_path, sizeof s->spill_path, o->out_dir, name);
  s->fd = open(s->spill_path, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (s->fd < 0) unet_fatal("cannot create spill file %s: %s", s->spill_path, strerror(errno));
  unlink(s->spill_path);
  unet_info("%.0f MB of resized samples exceed --memory-mb %ld: spilling to a temporary file in %s", mb, o->memory_mb,
            o->out_dir);
}

static int store_put(SampleStore *s, long i, const uint8_t *sample, char *err, size_t err_len) {
  if (s->mem) {
    memcpy(s->mem + s->sample_bytes * (size_t)i, sample, s->sample_bytes);
    return 0;
  }
  ssize_t w = pwrite(s->fd, sample, s->sample_bytes, (off_t)(s->sample_bytes * (size_t)i));
  if (w != (ssize_t)s->sample_bytes) {
    snprintf(err, err_len, "writing the spill file %.800s failed: %s", s->spill_path,
             w < 0 ? strerror(errno) : "short write (disk full?)");
    return -1;
  }
  return 0;
}

static const uint8_t *store_get(SampleStore *s, long i, uint8_t *buf) {
  if (s->mem) return s->mem + s->sample_bytes * (size_t)i;
  ssize_t r = pread(s->fd, buf, s->sample_bytes, (off_t)(s->sample_bytes * (size_t)i));
  if (r != (ssize_t)s->sample_bytes) unet_fatal("reading back the spill file failed: %s", strerror(errno));
  return buf;
}

/* ---- phase 2: decode, validate, resize (worker threads) ------------------ */
/* A mask whose aspect ratio (W/H) agrees with its image's within this fraction
 * is the same picture at another resolution. */
#define ASPECT_TOLERANCE 0.01
typedef struct {
  const Options *o;
  Pair *pairs;
  long npairs;
  SampleStore *store;
  MaskMap map; /* raw mask value -> class id (SHARD_IGNORE_ID: ignored) */
  atomic_long next, done;
  atomic_int stop; /* --strict failure or store error */
  char fatal[2048];
  pthread_mutex_t lock;
} DecodeJob;

static void mapping_text(const Options *o, char *out, size_t len) {
  size_t used = 0;
  out[0] = 0;
  if (o->mask_threshold >= 0) {
    snprintf(out, len, "threshold %d (class 1 = value >= %d)", o->mask_threshold, o->mask_threshold);
    return;
  }
  for (int c = 0; c < o->num_classes && used < len; c++)
    used += (size_t)snprintf(out + used, len - used, "%s%d", c ? "," : "", o->mask_values[c]);
}

/* Returns SKIP_NONE after storing the sample, else the reason (message set). */
static SkipReason process_pair(DecodeJob *job, Pair *p, long index, uint8_t *sample) {
  const Options *o = job->o;
  char err[1024];
  uint8_t *data = NULL;
  size_t len = 0;
  Image img = {0}, mask = {0};
  SkipReason reason = SKIP_NONE;
  if (read_file_bytes(p->image_path, &data, &len, err, sizeof err) != 0) {
    p->message = format_message("%s: %s", p->image_path, err);
    return SKIP_UNREADABLE;
  }
  if (image_decode_rgb(data, len, &img, err, sizeof err) != 0) {
    ImageFormat f = image_sniff(data, len);
    reason = (f == IMAGE_FORMAT_JPEG || f == IMAGE_FORMAT_PNG || len == 0) ? SKIP_CORRUPT_IMAGE : SKIP_UNSUPPORTED;
    p->message = format_message("%s: %s", p->image_path, err);
    free(data);
    return reason;
  }
  free(data);
  if (read_file_bytes(p->mask_path, &data, &len, err, sizeof err) != 0) {
    p->message = format_message("%s: %s", p->mask_path, err);
    image_free(&img);
    return SKIP_UNREADABLE;
  }
  int was_palette = 0;
  if (image_decode_mask(data, len, &mask, &was_palette, err, sizeof err) != 0) {
    ImageFormat f = image_sniff(data, len);
    reason = (f == IMAGE_FORMAT_JPEG || f == IMAGE_FORMAT_PNG || len == 0) ? SKIP_CORRUPT_MASK : SKIP_UNSUPPORTED;
    p->message = format_message("%s: %s", p->mask_path, err);
    free(data);
    image_free(&img);
    return reason;
  }
  free(data);
  p->palette = (uint8_t)was_palette;
  if (mask.width != img.width || mask.height != img.height) {
    /* the same picture at another resolution (same aspect ratio) is resized
     * straight to the target size; --strict keeps any difference an error */
    double ai = (double)img.width / img.height, am = (double)mask.width / mask.height;
    double off = fabs(am - ai) / ai;
    if (o->strict || off > ASPECT_TOLERANCE) {
      if (o->strict)
        p->message = format_message("%s: mask is %dx%d (WxH) but image %s is %dx%d", p->mask_path, mask.width,
                                    mask.height, p->image_path, img.width, img.height);
      else
        p->message = format_message("%s: mask is %dx%d (WxH) but image %s is %dx%d: aspect ratios %.4f and %.4f "
                                    "differ by %.1f%% (more than %.0f%%: not the same picture)",
                                    p->mask_path, mask.width, mask.height, p->image_path, img.width, img.height, am,
                                    ai, 100 * off, 100 * ASPECT_TOLERANCE);
      reason = SKIP_SIZE_MISMATCH;
      goto out;
    }
    p->other_resolution = 1;
  }
  /* validate every source pixel (a bad value anywhere is an error, even
   * where nearest resizing would not sample it) */
  long first_bad = -1;
  long bad = mask_map_count_bad(&job->map, mask.pixels, (size_t)mask.width * mask.height, &first_bad);
  if (bad) {
    int first_bad_value = mask.pixels[first_bad];
    char map[1024];
    mapping_text(o, map, sizeof map);
    reason = SKIP_MASK_VALUE;
    p->message = format_message("%s: mask value %d at (x=%ld, y=%ld) is not in the mapping %s (%ld pixel(s) "
                                "outside it%s; see --mask-values, --mask-threshold, --ignore-value)",
                                p->mask_path, first_bad_value, first_bad % mask.width, first_bad / mask.width, map,
                                bad, was_palette ? "; a palette PNG: its values are palette indices" : "");
    goto out;
  }
  uint8_t *img_out = sample, *mask_out = sample + (size_t)o->height * o->width * 3;
  resize_bilinear_u8(img.pixels, img.height, img.width, 3, img_out, o->height, o->width);
  /* nearest only copies source values, so mapping after resizing is the same
   * as mapping before, on H*W instead of the source's pixels */
  resize_nearest_u8(mask.pixels, mask.height, mask.width, 1, mask_out, o->height, o->width);
  p->ignored_pixels = mask_map_apply(&job->map, mask_out, (size_t)o->height * o->width, o->ignore_value);
  if (store_put(job->store, index, sample, err, sizeof err) != 0) {
    pthread_mutex_lock(&job->lock);
    if (!atomic_load(&job->stop)) snprintf(job->fatal, sizeof job->fatal, "%s", err);
    atomic_store(&job->stop, 1);
    pthread_mutex_unlock(&job->lock);
  }
out:
  image_free(&img);
  image_free(&mask);
  return reason;
}

static void *decode_worker(void *arg) {
  DecodeJob *job = arg;
  uint8_t *sample = xmalloc(job->store->sample_bytes, "sample buffer");
  for (;;) {
    long i = atomic_fetch_add(&job->next, 1);
    if (i >= job->npairs || atomic_load(&job->stop)) break;
    Pair *p = &job->pairs[i];
    if (p->reason == SKIP_NONE) {
      p->reason = process_pair(job, p, i, sample);
      if (p->reason != SKIP_NONE && job->o->strict) atomic_store(&job->stop, 1);
    }
    atomic_fetch_add(&job->done, 1);
  }
  xfree(sample);
  return NULL;
}

/* ---- signals: remove temporaries on Ctrl-C / kill ------------------------ */
static char (*g_tmp_paths)[UNET_TMP_PATH_MAX];
static volatile sig_atomic_t g_ntmp = 0;

static void on_signal(int sig) {
  for (int i = 0; i < g_ntmp; i++) unlink(g_tmp_paths[i]);
  unet_remove_created_dirs();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* ---- phase 3: shuffle, split, write -------------------------------------- */
typedef struct {
  char path[UNET_PATH_MAX];
  const char *kind;
  long first, count; /* range in the shuffled order */
  ShardWriter *w;
} OutFile;

static void abort_all(OutFile *files, long nfiles) {
  for (long f = 0; f < nfiles; f++)
    if (files[f].w) {
      shard_writer_abort(files[f].w);
      files[f].w = NULL;
    }
  g_ntmp = 0;
}

static void write_manifest(const Options *o, const OutFile *files, long nfiles, long total) {
  char path[UNET_PATH_MAX], tmp[UNET_TMP_PATH_MAX], map[1024];
  unet_path_join(path, sizeof path, o->out_dir, "manifest.txt");
  unet_tmp_path(tmp, sizeof tmp, path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    unet_warn("cannot write %s: %s (the shards are complete)", tmp, strerror(errno));
    return;
  }
  mapping_text(o, map, sizeof map);
  fprintf(f, "# unet-preprocess %s: file kind samples\n", UNET_VERSION);
  fprintf(f, "# height %d width %d num_classes %d mask_values %s seed %lld total %ld\n", o->height, o->width,
          o->num_classes, map, (long long)o->seed, total);
  for (long i = 0; i < nfiles; i++) {
    const char *base = strrchr(files[i].path, '/');
    fprintf(f, "%s %s %ld\n", base ? base + 1 : files[i].path, files[i].kind, files[i].count);
  }
  /* files of other runs into this folder (a test.h5 or a --split val beside train shards, or
   * the reverse) stay listed while they exist */
  FILE *old = fopen(path, "r");
  char line[8400];
  while (old && fgets(line, sizeof line, old)) {
    char name[8300], kind[16], other[8300];
    long count;
    if (line[0] == '#' || sscanf(line, "%8299s %15s %ld", name, kind, &count) != 3) continue;
    int mine = 0;
    for (long i = 0; i < nfiles && !mine; i++) {
      const char *base = strrchr(files[i].path, '/');
      mine = !strcmp(base ? base + 1 : files[i].path, name);
    }
    if (!mine && unet_path_join(other, sizeof other, o->out_dir, name) == 0 && access(other, F_OK) == 0) fputs(line, f);
  }
  if (old) fclose(old);
  int bad = ferror(f);
  if (fclose(f) != 0 || bad || unet_commit_file(tmp, path) != 0) {
    unet_warn("cannot write %s: %s (the shards are complete)", path, strerror(errno));
    unlink(tmp);
  }
}

/* Files of our own naming scheme left from an earlier run with another
 * --shards or --val would mix into training: remove them. */
static void remove_stale(const Options *o, long nval) {
  DIR *d = opendir(o->out_dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    long k, total;
    char tail[8];
    int stale = 0;
    if (sscanf(de->d_name, "train-%5ld-of-%5ld%7s", &k, &total, tail) == 3 && !strcmp(tail, ".h5") &&
        strlen(de->d_name) == strlen("train-00000-of-00000.h5"))
      stale = total != o->shards;
    if (!strcmp(de->d_name, "val.h5")) stale = nval == 0;
    if (stale) {
      char path[UNET_PATH_MAX];
      unet_path_join(path, sizeof path, o->out_dir, de->d_name);
      if (unlink(path) == 0) unet_info("removed %s from an earlier run", path);
    }
  }
  closedir(d);
}

/* "NAME.tmp.<pid>" of a run that was killed (kill -9, power loss): remove
 * those of our own file names whose process is gone; a live run's stay. */
static void remove_dead_temporaries(const char *out_dir) {
  DIR *d = opendir(out_dir);
  if (!d) return;
  struct dirent *de;
  long removed = 0;
  while ((de = readdir(d)) != NULL) {
    const char *tmp = strstr(de->d_name, ".tmp.");
    if (!tmp) continue;
    int ours = !strncmp(de->d_name, "train-", 6) || !strncmp(de->d_name, "val.h5", 6) ||
               !strncmp(de->d_name, "manifest.txt", 12) || !strncmp(de->d_name, ".unet-preprocess-", 17);
    char *end;
    long pid = strtol(tmp + 5, &end, 10);
    if (!ours || *end || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* that process still runs */
    char path[UNET_PATH_MAX];
    if (unet_path_join(path, sizeof path, out_dir, de->d_name) == 0 && unlink(path) == 0) removed++;
  }
  closedir(d);
  if (removed) unet_info("removed %ld temporary file(s) left by an earlier, killed run in %s", removed, out_dir);
}

int main(int argc, char **argv) {
  unet_set_progname("unet-preprocess");
  Options o;
  parse_args(argc, argv, &o);
  double t0 = unet_now();

  /* the output folder is created only once the inputs are known good; check
   * now that it can be, so a typo fails before minutes of decoding */
  {
    char where[UNET_PATH_MAX];
    if (unet_check_output_dir(o.out_dir, where, sizeof where) != 0)
      unet_fatal("cannot write the output directory %s (%s: %s)", o.out_dir, where, strerror(errno));
  }

  long ni, nm, npairs;
  Entry *imgs = list_dir(o.images_dir, "images", &ni);
  Entry *msks = list_dir(o.masks_dir, "masks", &nm);
  Pair *pairs = match_pairs(imgs, ni, msks, nm, &npairs);
  /* --val and --shards fail now rather than after decoding (with no pair at
   * all, decoding reports why each file is skipped) */
  long candidates = count_candidates(pairs, npairs);
  if (candidates > 0) check_counts(&o, candidates, "image/mask pairs found");

  /* temporaries (and a folder we created) are removed on SIGINT/SIGTERM/SIGHUP;
   * SIGXFSZ (file size limit) must turn into a write error, not kill us with
   * files half written */
  signal(SIGXFSZ, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGHUP, on_signal);

  /* phase 2 */
  SampleStore store;
  store_open(&store, &o, npairs);
  DecodeJob job;
  memset(&job, 0, sizeof job);
  job.o = &o;
  job.pairs = pairs;
  job.npairs = npairs;
  job.store = &store;
  mask_map_init(&job.map, o.mask_values, o.num_classes, o.mask_threshold, o.ignore_value);
  atomic_init(&job.next, 0);
  atomic_init(&job.done, 0);
  atomic_init(&job.stop, 0);
  pthread_mutex_init(&job.lock, NULL);
  int nt = o.threads < npairs ? o.threads : (int)npairs;
  pthread_t *tids = xmalloc(sizeof(pthread_t) * nt, "threads");
  for (int t = 0; t < nt; t++)
    if (pthread_create(&tids[t], NULL, decode_worker, &job) != 0) unet_fatal("cannot start worker thread %d", t);
  UnetProgress prog;
  unet_progress_start(&prog, "unet-preprocess: decode+resize", npairs);
  while (atomic_load(&job.done) < npairs && !atomic_load(&job.stop)) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    unet_progress_update(&prog, atomic_load(&job.done));
  }
  for (int t = 0; t < nt; t++) pthread_join(tids[t], NULL);
  xfree(tids);
  if (job.fatal[0]) unet_fatal("%s", job.fatal);
  unet_progress_end(&prog, atomic_load(&job.done));

  /* report skips in stem order (deterministic whatever the thread count) */
  long skipped[SKIP_REASONS] = {0}, nskipped = 0;
  uint32_t *valid = xmalloc(sizeof(uint32_t) * (size_t)npairs, "valid pairs");
  long nvalid = 0;
  for (long i = 0; i < npairs; i++) {
    if (pairs[i].reason == SKIP_NONE) {
      valid[nvalid++] = (uint32_t)i;
      continue;
    }
    skipped[pairs[i].reason]++;
    nskipped++;
    if (o.strict)
      unet_error("%s", pairs[i].message);
    else
      unet_warn("skipping %s: %s", pairs[i].stem, pairs[i].message);
  }
  if (o.strict && nskipped)
    unet_fatal("%ld bad pair(s) and --strict: nothing written", nskipped);

  long nval = check_counts(&o, nvalid, "valid image/mask pairs");
  long ntrain = nvalid - nval;

  /* shuffle the valid pairs (stem order in) with our own RNG: like the Keras
   * example's random.Random(1337).shuffle in spirit, not in the exact order.
   * A test file keeps the stem order: nothing trains on its order. */
  if (!o.split_one) {
    UnetRng rng;
    rng_seed(&rng, (uint64_t)o.seed);
    rng_shuffle_u32(&rng, valid, (uint32_t)nvalid);
  }

  long nfiles = o.split_one ? 1 : o.shards + (nval > 0 ? 1 : 0);
  OutFile *files = xcalloc((size_t)nfiles, sizeof(OutFile), "output files");
  if (o.split_one) {
    char name[16];
    snprintf(name, sizeof name, "%s.h5", o.split_one);
    unet_path_join(files[0].path, sizeof files[0].path, o.out_dir, name);
    files[0].kind = o.split_one;
    files[0].first = 0;
    files[0].count = nvalid;
  }
  for (long k = 0; k < o.shards && !o.split_one; k++) {
    char name[64];
    snprintf(name, sizeof name, "train-%05ld-of-%05ld.h5", k, o.shards);
    unet_path_join(files[k].path, sizeof files[k].path, o.out_dir, name);
    files[k].kind = "train";
    files[k].first = k * ntrain / o.shards; /* sizes differ by at most one */
    files[k].count = (k + 1) * ntrain / o.shards - files[k].first;
  }
  if (nval > 0) {
    unet_path_join(files[o.shards].path, sizeof files[o.shards].path, o.out_dir, "val.h5");
    files[o.shards].kind = "val";
    files[o.shards].first = ntrain;
    files[o.shards].count = nval;
  }

  g_tmp_paths = xcalloc((size_t)nfiles, sizeof *g_tmp_paths, "temporary names");

  if (unet_mkdir_output(o.out_dir) != 0)
    unet_fatal("cannot create output directory %s: %s", o.out_dir, strerror(errno));
  remove_dead_temporaries(o.out_dir);

  ShardInfo info;
  memset(&info, 0, sizeof info);
  info.height = o.height;
  info.width = o.width;
  info.num_classes = o.num_classes;
  memcpy(info.mask_values, o.mask_values, sizeof info.mask_values);
  info.seed = o.seed;
  info.deflate_level = o.deflate;
  info.has_ignore = o.ignore_value >= 0, info.ignore_value = o.ignore_value;
  info.has_threshold = o.mask_threshold >= 0, info.mask_threshold = o.mask_threshold;
  uint8_t *buf = xmalloc(store.sample_bytes, "sample buffer");
  const size_t img_bytes = (size_t)o.height * o.width * 3;
  char err[2048];
  unet_progress_start(&prog, "unet-preprocess: write", nvalid);
  long written = 0;
  for (long f = 0; f < nfiles; f++) {
    snprintf(info.kind, sizeof info.kind, "%s", files[f].kind);
    files[f].w = shard_writer_open(files[f].path, &info, files[f].count, err, sizeof err);
    if (!files[f].w) {
      abort_all(files, nfiles);
      unet_fatal("%s", err);
    }
    snprintf(g_tmp_paths[g_ntmp], sizeof g_tmp_paths[0], "%s", shard_writer_tmp_path(files[f].w));
    g_ntmp++;
    for (long s = 0; s < files[f].count; s++) {
      long pi = valid[files[f].first + s];
      const uint8_t *sample = store_get(&store, pi, buf);
      if (shard_writer_append(files[f].w, sample, sample + img_bytes, pairs[pi].stem, err, sizeof err) != 0) {
        abort_all(files, nfiles);
        unet_fatal("%s", err);
      }
      unet_progress_update(&prog, ++written);
    }
    if (shard_writer_finish(files[f].w, err, sizeof err) != 0) {
      abort_all(files, nfiles);
      unet_fatal("%s", err);
    }
  }
  /* all complete: now make them appear */
  for (long f = 0; f < nfiles; f++) {
    if (shard_writer_commit(files[f].w, err, sizeof err) != 0) {
      files[f].w = NULL; /* commit already removed its temporary */
      abort_all(files, nfiles);
      unet_fatal("%s", err);
    }
    files[f].w = NULL;
  }
  g_ntmp = 0;
  unet_progress_end(&prog, written);
  if (!o.split_one) remove_stale(&o, nval); /* a val/test file of its own sits beside a train split */
  write_manifest(&o, files, nfiles, nvalid);

  /* summary */
  unet_info("found %ld images and %ld masks: %ld stems", ni, nm, npairs);
  if (o.split_one)
    unet_info("wrote %ld pairs to %s/%s.h5 (stem order); %dx%d, %d classes, %.1f s", nvalid, o.out_dir, o.split_one,
              o.height, o.width, o.num_classes, unet_now() - t0);
  else
    unet_info("wrote %ld pairs to %s: %ld train in %ld shard(s), %ld val; %dx%d, %d classes, %.1f s", nvalid,
              o.out_dir, ntrain, o.shards, nval, o.height, o.width, o.num_classes, unet_now() - t0);
  long other_res = 0, palette = 0, ignored = 0;
  for (long i = 0; i < nvalid; i++) {
    const Pair *p = &pairs[valid[i]];
    other_res += p->other_resolution;
    palette += p->palette;
    ignored += p->ignored_pixels;
  }
  if (o.mask_threshold >= 0)
    unet_info("mask threshold %d: raw value >= %d is class 1, below is class 0", o.mask_threshold, o.mask_threshold);
  if (palette) unet_info("%ld palette PNG mask(s) read by index (the palette index is the class value)", palette);
  if (other_res)
    unet_info("%ld mask(s) at another resolution than their image (same aspect ratio): resized straight to %dx%d",
              other_res, o.height, o.width);
  if (o.ignore_value >= 0)
    unet_info("ignore value %d: %ld stored pixel(s) (%.2f%%) ignored by the loss and the metrics", o.ignore_value,
              ignored, 100.0 * ignored / ((double)nvalid * o.height * o.width));
  if (nskipped) {
    char line[2048];
    size_t used = 0;
    for (int r = 1; r < SKIP_REASONS; r++)
      if (skipped[r] && used < sizeof line)
        used += (size_t)snprintf(line + used, sizeof line - used, "%s%s %ld", used ? ", " : "", reason_name[r],
                                 skipped[r]);
    unet_info("skipped %ld: %s", nskipped, line);
  } else {
    unet_info("skipped 0");
  }
  return 0;
}
