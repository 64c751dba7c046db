/* test_preprocess.c - drives unet-synth and unet-preprocess as a user would.
 * One program, four parts (argv[1]):
 *   synth      unet-synth: layout, sizes, trimap values and band, determinism
 *   partition  every pair in exactly one file, shard sizes, --val forms,
 *              stored pixels == decode + TF resize of the source, stale files
 *   bad        every bad input: its one-line message, exit code, no leftovers
 *   real       ../shared/data: 301 of 302 pets (the GIF skipped), membrane 0/255
 * Tool output goes to <work>/log.txt and is searched for the messages. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "unet/image.h"
#include "unet/resize.h"
#include "unet/shard.h"
#include "unet/util.h"

static char g_work[4096];
static char g_log[1 << 16];

/* Runs `tool args` with stdout+stderr into the log; returns the exit code. */
static int run(const char *tool, const char *args) {
  char cmd[16384], logpath[4200];
  snprintf(logpath, sizeof logpath, "%s/log.txt", g_work);
  snprintf(cmd, sizeof cmd, "cd '%s' && %s/%s %s > '%s' 2>&1", g_work, UNET_BINARY_DIR, tool, args, logpath);
  int st = system(cmd);
  FILE *f = fopen(logpath, "r");
  size_t n = f ? fread(g_log, 1, sizeof g_log - 1, f) : 0;
  g_log[n] = 0;
  if (f) fclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[12000], full[16500];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "cd '%s' && %s", g_work, cmd);
  return system(full);
}

/* The log has a line containing all of the given fragments. */
static int log_line_has(const char *a, const char *b, const char *c) {
  const char *line = g_log;
  while (*line) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
    if (strstr(buf, a) && (!b || strstr(buf, b)) && (!c || strstr(buf, c))) return 1;
    line += len + (end ? 1 : 0);
  }
  return 0;
}

#define CHECK_LOG(a, b, c) CHECK_MSG(log_line_has(a, b, c), "no log line with '%s' '%s' '%s'; log:\n%s", a, \
                                     b ? b : "", c ? c : "", g_log)

/* Number of entries in dir whose name contains `part` (NULL: all visible). */
static int count_files(const char *dir, const char *part) {
  char path[8300];
  snprintf(path, sizeof path, "%s/%s", g_work, dir);
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (!part || strstr(de->d_name, part)) n++;
  }
  closedir(d);
  return n;
}

static int exists(const char *rel) {
  char path[8300];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", g_work, rel);
  return stat(path, &st) == 0;
}

/* ---- reading the output back --------------------------------------------- */
typedef struct {
  long count;
  char (*names)[SHARD_NAME_MAX];
  ShardInfo info;
} FileSummary;

static int read_names(const char *rel, FileSummary *s) {
  char path[8300], err[1024];
  snprintf(path, sizeof path, "%s/%s", g_work, rel);
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  if (!r) return -1;
  s->info = *shard_reader_info(r);
  s->count = shard_reader_count(r);
  s->names = calloc((size_t)s->count + 1, sizeof *s->names);
  for (long i = 0; i < s->count; i++)
    CHECK_MSG(shard_reader_read(r, i, NULL, NULL, s->names[i], SHARD_NAME_MAX, err, sizeof err) == 0, "%s", err);
  shard_reader_close(r);
  return 0;
}

/* Stored sample `name` in shard `rel` equals decode + resize of the sources. */
static void check_sample_matches_source(const char *rel, const char *name, const char *image_path,
                                        const char *mask_path, const int *mask_values, int classes) {
  char path[8300], err[1024];
  snprintf(path, sizeof path, "%s/%s", g_work, rel);
  ShardReader *r = shard_reader_open(path, err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  if (!r) return;
  const int H = shard_reader_info(r)->height, W = shard_reader_info(r)->width;
  uint8_t *img = malloc((size_t)H * W * 3), *mask = malloc((size_t)H * W);
  uint8_t *want_img = malloc((size_t)H * W * 3), *want_mask = malloc((size_t)H * W);
  long found = -1;
  for (long i = 0; i < shard_reader_count(r) && found < 0; i++) {
    char n[SHARD_NAME_MAX];
    shard_reader_read(r, i, NULL, NULL, n, sizeof n, err, sizeof err);
    if (!strcmp(n, name)) found = i;
  }
  CHECK_MSG(found >= 0, "%s not in %s", name, rel);
  if (found >= 0) {
    CHECK(shard_reader_read(r, found, img, mask, NULL, 0, err, sizeof err) == 0);
    Image src, msk;
    CHECK(image_load_rgb(image_path, &src, err, sizeof err) == 0);
    CHECK(image_load_gray(mask_path, &msk, err, sizeof err) == 0);
    resize_bilinear_u8(src.pixels, src.height, src.width, 3, want_img, H, W);
    for (int p = 0; p < msk.width * msk.height; p++) {
      int c = 0;
      while (c < classes && mask_values[c] != msk.pixels[p]) c++;
      msk.pixels[p] = (uint8_t)c;
    }
    resize_nearest_u8(msk.pixels, msk.height, msk.width, 1, want_mask, H, W);
    CHECK_MSG(memcmp(img, want_img, (size_t)H * W * 3) == 0, "%s: stored image != resize_bilinear_u8(source)", name);
    CHECK_MSG(memcmp(mask, want_mask, (size_t)H * W) == 0, "%s: stored mask != resize_nearest_u8(mapped source)", name);
    image_free(&src);
    image_free(&msk);
  }
  free(img);
  free(mask);
  free(want_img);
  free(want_mask);
  shard_reader_close(r);
}

/* ---- synth ----------------------------------------------------------------- */
static int part_synth(void) {
  CHECK(run("unet-synth", "--out a --count 12 --seed 7") == 0);
  CHECK(count_files("a/images", ".jpg") == 12 && count_files("a/annotations/trimaps", ".png") == 12);
  CHECK(run("unet-synth", "--out b --count 12 --seed 7 --threads 1") == 0);
  CHECK_MSG(sh("diff -r a b > /dev/null") == 0, "same seed, other thread count: files differ");
  CHECK(run("unet-synth", "--out c --count 12 --seed 8") == 0);
  CHECK_MSG(sh("cmp -s a/images/synth_00001.jpg c/images/synth_00001.jpg") != 0, "another seed gave the same image");

  char path[8300], err[1024];
  int sizes_differ = 0, w0 = -1;
  for (int i = 1; i <= 12; i++) {
    Image im, tri;
    snprintf(path, sizeof path, "%s/a/images/synth_%05d.jpg", g_work, i);
    CHECK_MSG(image_load_rgb(path, &im, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/a/annotations/trimaps/synth_%05d.png", g_work, i);
    CHECK_MSG(image_load_gray(path, &tri, err, sizeof err) == 0, "%s", err);
    CHECK(im.width == tri.width && im.height == tri.height);
    CHECK(im.width >= 180 && im.width <= 320 && im.height >= 180 && im.height <= 320);
    if (w0 < 0) w0 = im.width;
    if (im.width != w0) sizes_differ = 1;
    long n[4] = {0};
    int w = tri.width, h = tri.height, touching = 0;
    for (int p = 0; p < w * h; p++) {
      int v = tri.pixels[p];
      CHECK_MSG(v >= 1 && v <= 3, "trimap value %d", v);
      if (v >= 1 && v <= 3) n[v]++;
    }
    /* object and background never touch: the band (3) separates them */
    for (int y = 0; y < h; y++)
      for (int x = 0; x + 1 < w; x++) {
        int a = tri.pixels[y * w + x], b = tri.pixels[y * w + x + 1];
        int c = y + 1 < h ? tri.pixels[(y + 1) * w + x] : a;
        if ((a == 1 && (b == 2 || c == 2)) || (a == 2 && (b == 1 || c == 1))) touching = 1;
      }
    CHECK_MSG(!touching, "image %d: object touches background without a border band", i);
    double obj = (double)n[1] / (w * h), band = (double)n[3] / (w * h);
    CHECK_MSG(obj > 0.03 && obj < 0.6, "image %d: object fraction %.3f", i, obj);
    CHECK_MSG(band > 0.003 && band < 0.15, "image %d: band fraction %.3f", i, band);
    /* the object is not simply a colour: its mean differs from background's
     * by less than the spread of colours over images (checked loosely: both
     * regions have texture, i.e. nonzero variance) */
    double s1 = 0, q1 = 0;
    for (int p = 0; p < w * h; p++)
      if (tri.pixels[p] == 1) {
        double g = im.pixels[p * 3 + 1];
        s1 += g;
        q1 += g * g;
      }
    double var = q1 / n[1] - (s1 / n[1]) * (s1 / n[1]);
    CHECK_MSG(var > 10, "image %d: object has no texture (variance %.1f)", i, var);
    image_free(&im);
    image_free(&tri);
  }
  CHECK_MSG(sizes_differ, "default sizes should vary per image");

  CHECK(run("unet-synth", "--out d --count 3 --size 64x96") == 0);
  {
    Image im;
    snprintf(path, sizeof path, "%s/d/images/synth_00003.jpg", g_work);
    CHECK(image_load_rgb(path, &im, err, sizeof err) == 0 && im.height == 64 && im.width == 96);
    image_free(&im);
  }
  /* bad arguments and an unusable output folder */
  CHECK(run("unet-synth", "--out e --count 0") == 2); /* a bad command line: exit 2, the option named */
  CHECK_LOG("unet-synth: error: --count 0", NULL, NULL);
  sh("touch plainfile");
  CHECK(run("unet-synth", "--out plainfile/x --count 2") == 1);
  CHECK_LOG("cannot create directory plainfile/x", "Not a directory", NULL);
  CHECK_DONE();
}

/* ---- partition ----------------------------------------------------------- */
static void check_partition(const char *out, int shards, int nval, int total, const char *first_stem_fmt) {
  char rel[512];
  int *seen = calloc((size_t)total + 1, sizeof(int));
  long sum = 0;
  for (int k = 0; k < shards + (nval > 0); k++) {
    FileSummary s;
    if (k < shards)
      snprintf(rel, sizeof rel, "%s/train-%05d-of-%05d.h5", out, k, shards);
    else
      snprintf(rel, sizeof rel, "%s/val.h5", out);
    if (read_names(rel, &s) < 0) continue;
    long ntrain = total - nval;
    long want = k < shards ? (k + 1) * ntrain / shards - k * ntrain / shards : nval;
    CHECK_MSG(s.count == want, "%s has %ld samples, want %ld", rel, s.count, want);
    CHECK(strcmp(s.info.kind, k < shards ? "train" : "val") == 0);
    CHECK(s.info.height == 160 && s.info.width == 160 && s.info.num_classes == 3);
    CHECK(s.info.mask_values[0] == 1 && s.info.mask_values[1] == 2 && s.info.mask_values[2] == 3);
    for (long i = 0; i < s.count; i++) {
      int idx = 0;
      CHECK_MSG(sscanf(s.names[i], first_stem_fmt, &idx) == 1 && idx >= 1 && idx <= total, "name %s", s.names[i]);
      if (idx >= 1 && idx <= total) seen[idx]++;
    }
    sum += s.count;
    free(s.names);
  }
  CHECK(sum == total);
  for (int i = 1; i <= total; i++) CHECK_MSG(seen[i] == 1, "stem %d appears %d times", i, seen[i]);
  snprintf(rel, sizeof rel, "%s/val.h5", out);
  CHECK(exists(rel) == (nval > 0));
  free(seen);
}

static int part_partition(void) {
  CHECK(run("unet-synth", "--out syn --count 37 --seed 3") == 0);
  const char *in = "--images syn/images --masks syn/annotations/trimaps";
  char args[1024];
  snprintf(args, sizeof args, "%s --out p1 --shards 4 --val 5", in);
  CHECK(run("unet-preprocess", args) == 0);
  CHECK_LOG("wrote 37 pairs to p1: 32 train in 4 shard(s), 5 val", NULL, NULL);
  CHECK_LOG("skipped 0", NULL, NULL);
  check_partition("p1", 4, 5, 37, "synth_%d");
  CHECK(count_files("p1", ".tmp.") == 0);
  CHECK(sh("grep -q '^val.h5 val 5$' p1/manifest.txt && grep -q '^train-00003-of-00004.h5 train 8$' p1/manifest.txt") ==
        0);
  /* stored bytes == decode + TF-style resize of the source files */
  const int trimap[3] = {1, 2, 3};
  FileSummary v;
  if (read_names("p1/val.h5", &v) == 0) {
    char ip[8300], mp[8300];
    snprintf(ip, sizeof ip, "%s/syn/images/%s.jpg", g_work, v.names[0]);
    snprintf(mp, sizeof mp, "%s/syn/annotations/trimaps/%s.png", g_work, v.names[0]);
    check_sample_matches_source("p1/val.h5", v.names[0], ip, mp, trimap, 3);
    CHECK(v.info.seed == 1337);
    free(v.names);
  }
  /* the same seed with one thread: byte-identical shards */
  snprintf(args, sizeof args, "%s --out p2 --shards 4 --val 5 --threads 1", in);
  CHECK(run("unet-preprocess", args) == 0);
  CHECK_MSG(sh("for f in p1/*.h5 p1/manifest.txt; do cmp -s \"$f\" p2/$(basename $f) || exit 1; done") == 0,
            "output depends on the thread count");
  /* another seed: another validation set */
  snprintf(args, sizeof args, "%s --out p3 --shards 4 --val 5 --seed 99", in);
  CHECK(run("unet-preprocess", args) == 0);
  FileSummary a, b;
  if (read_names("p1/val.h5", &a) == 0 && read_names("p3/val.h5", &b) == 0) {
    int same = 1;
    for (long i = 0; i < a.count; i++) same &= strcmp(a.names[i], b.names[i]) == 0;
    CHECK_MSG(!same, "--seed 99 gave the same validation set as 1337");
    free(a.names);
    free(b.names);
  }
  /* rerun into p1 with --shards 2 --val 0: old 4-shard files and val.h5 go */
  snprintf(args, sizeof args, "%s --out p1 --shards 2 --val 0", in);
  CHECK(run("unet-preprocess", args) == 0);
  CHECK_LOG("removed", "train-00000-of-00004.h5", NULL);
  CHECK_LOG("removed", "val.h5", NULL);
  CHECK(count_files("p1", ".h5") == 2);
  check_partition("p1", 2, 0, 37, "synth_%d");
  /* a fraction: round(0.2 * 37) = 7 */
  snprintf(args, sizeof args, "%s --out p4 --shards 3 --val 0.2", in);
  CHECK(run("unet-preprocess", args) == 0);
  check_partition("p4", 3, 7, 37, "synth_%d");
  /* too many for validation, too many shards: errors, nothing written */
  snprintf(args, sizeof args, "%s --out p5 --val 37", in);
  CHECK(run("unet-preprocess", args) == 1);
  CHECK_LOG("error: --val 37 needs more than 37 pairs, only 37 image/mask pairs found", NULL, NULL);
  CHECK_MSG(count_files("p5", NULL) == -1, "the failed run left the folder p5"); /* no empty output folder */
  snprintf(args, sizeof args, "%s --out p5 --val 30 --shards 8", in);
  CHECK(run("unet-preprocess", args) == 1);
  CHECK_LOG("error: --shards 8 needs at least 8 training pairs, only 7 left", NULL, NULL);
  CHECK_MSG(count_files("p5", NULL) == -1, "the failed run left the folder p5");
  /* another size, HxW */
  snprintf(args, sizeof args, "%s --out p6 --size 64x48 --val 0", in);
  CHECK(run("unet-preprocess", args) == 0);
  FileSummary s6;
  if (read_names("p6/train-00000-of-00001.h5", &s6) == 0) {
    CHECK(s6.info.height == 64 && s6.info.width == 48 && s6.count == 37);
    free(s6.names);
  }
  CHECK_DONE();
}

/* ---- bad inputs ----------------------------------------------------------- */
static void write_bytes(const char *rel, const void *data, size_t n) {
  char path[8300];
  snprintf(path, sizeof path, "%s/%s", g_work, rel);
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
}

static void no_output_left(const char *out) {
  CHECK_MSG(count_files(out, ".tmp.") <= 0, "temporary left in %s", out);
  CHECK_MSG(count_files(out, ".h5") <= 0, "an .h5 file was written to %s", out);
}

static int part_bad(void) {
  CHECK(run("unet-synth", "--out syn --count 12 --seed 5") == 0);
  sh("cp -r syn bad");
  char err[1024], path[8300];
  /* 1 truncated JPEG: the first 40% of a real one */
  sh("head -c $(( $(stat -c %%s syn/images/synth_00001.jpg) * 2 / 5 )) syn/images/synth_00001.jpg > "
     "bad/images/synth_00001.jpg");
  /* 2 corrupt PNG mask: bytes overwritten inside the compressed data */
  sh("cp syn/annotations/trimaps/synth_00002.png bad/annotations/trimaps/synth_00002.png && "
     "printf 'XXXXXXXXXXXXXXXXXXXXXXXX' | dd of=bad/annotations/trimaps/synth_00002.png bs=1 seek=60 conv=notrunc "
     "2>/dev/null");
  /* 3 image without mask, 4 mask without image */
  sh("rm bad/annotations/trimaps/synth_00003.png bad/images/synth_00004.jpg");
  /* 5 size mismatch: a 10x10 mask */
  uint8_t small[100];
  memset(small, 2, sizeof small);
  snprintf(path, sizeof path, "%s/bad/annotations/trimaps/synth_00005.png", g_work);
  CHECK(image_write_png(path, small, 10, 10, 1, err, sizeof err) == 0);
  /* 6 bad mask value: a 7 at (x=3, y=1) of a real-size trimap */
  {
    Image t;
    snprintf(path, sizeof path, "%s/syn/annotations/trimaps/synth_00006.png", g_work);
    CHECK(image_load_gray(path, &t, err, sizeof err) == 0);
    t.pixels[1 * t.width + 3] = 7;
    snprintf(path, sizeof path, "%s/bad/annotations/trimaps/synth_00006.png", g_work);
    CHECK(image_write_png(path, t.pixels, t.width, t.height, 1, err, sizeof err) == 0);
    image_free(&t);
  }
  /* 7 a GIF named .jpg, 8 an empty file */
  const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0, ';'};
  write_bytes("bad/images/synth_00007.jpg", gif, sizeof gif);
  write_bytes("bad/images/synth_00008.jpg", "", 0);
  /* noise a user's folder may hold: hidden files, a .mat file, a subfolder */
  sh("touch bad/images/._synth_00009.jpg bad/images/synth_00009.mat && mkdir bad/images/sub");

  const char *in = "--images bad/images --masks bad/annotations/trimaps --val 2";
  char args[1024];
  snprintf(args, sizeof args, "%s --out o1", in);
  CHECK(run("unet-preprocess", args) == 0);
  CHECK_LOG("skipping synth_00001", "bad/images/synth_00001.jpg", "JPEG");
  CHECK_LOG("skipping synth_00002", "bad/annotations/trimaps/synth_00002.png", NULL);
  CHECK_LOG("skipping synth_00003", "bad/images/synth_00003.jpg", "image without mask");
  CHECK_LOG("skipping synth_00004", "bad/annotations/trimaps/synth_00004.png", "mask without image");
  CHECK_LOG("skipping synth_00005", "synth_00005.png: mask is 10x10", "but image bad/images/synth_00005.jpg is");
  CHECK_LOG("skipping synth_00006", "synth_00006.png: mask value 7 at (x=3, y=1)", "not in the mapping 1,2,3");
  CHECK_LOG("skipping synth_00007", "bad/images/synth_00007.jpg", "unsupported format GIF");
  CHECK_LOG("skipping synth_00008", "bad/images/synth_00008.jpg", "empty");
  CHECK_LOG("ignoring bad/images/synth_00009.mat", "not an image file name", NULL);
  CHECK_LOG("found 11 images and 11 masks: 12 stems", NULL, NULL);
  CHECK_LOG("wrote 4 pairs to o1: 2 train in 1 shard(s), 2 val", NULL, NULL);
  CHECK_LOG("skipped 8:", "image without mask 1, mask without image 1", "unsupported format 1");
  CHECK_LOG("skipped 8:", "corrupt image 2, corrupt mask 1", "image/mask size mismatch 1, mask value outside the mapping 1");
  /* each skip is exactly one line */
  int lines = 0;
  for (const char *p = g_log; (p = strstr(p, "skipping ")) != NULL; p++) lines++;
  CHECK_MSG(lines == 8, "%d skip lines, want 8", lines);
  /* exactly the four good pairs 9..12, each once */
  {
    int seen[13] = {0};
    const char *files[2] = {"o1/train-00000-of-00001.h5", "o1/val.h5"};
    for (int f = 0; f < 2; f++) {
      FileSummary s;
      if (read_names(files[f], &s) != 0) continue;
      CHECK(s.count == 2);
      for (long i = 0; i < s.count; i++) {
        int idx = 0;
        sscanf(s.names[i], "synth_%d", &idx);
        CHECK_MSG(idx >= 9 && idx <= 12, "bad pair %s was written", s.names[i]);
        if (idx >= 9 && idx <= 12) seen[idx]++;
      }
      free(s.names);
    }
    for (int i = 9; i <= 12; i++) CHECK(seen[i] == 1);
  }

  /* --strict: the first bad pair is fatal, nothing is written */
  snprintf(args, sizeof args, "%s --out o2 --strict", in);
  CHECK(run("unet-preprocess", args) == 1);
  CHECK_LOG("error:", "--strict: nothing written", NULL);
  no_output_left("o2");

  /* empty, missing and non-image input folders */
  sh("mkdir -p empty");
  CHECK(run("unet-preprocess", "--images empty --masks syn/annotations/trimaps --out o3 --val 0") == 1);
  CHECK_LOG("error: no image files", "images directory empty", NULL);
  no_output_left("o3");
  CHECK(run("unet-preprocess", "--images nowhere --masks syn/annotations/trimaps --out o3 --val 0") == 1);
  CHECK_LOG("error: cannot read images directory nowhere", "No such file or directory", NULL);
  CHECK(run("unet-preprocess", "--images syn/images --masks syn/images/synth_00001.jpg --out o3 --val 0") == 1);
  CHECK_LOG("error: cannot read masks directory syn/images/synth_00001.jpg", "Not a directory", NULL);
  /* unreadable folder (meaningful only when not root) */
  if (geteuid() != 0) {
    sh("mkdir -p locked && chmod 000 locked");
    CHECK(run("unet-preprocess", "--images locked --masks syn/annotations/trimaps --out o3 --val 0") == 1);
    CHECK_LOG("cannot read images directory locked", "Permission denied", NULL);
    sh("chmod 700 locked");
  }
  /* no valid pair at all */
  sh("mkdir -p onlybad/i onlybad/m && cp bad/images/synth_00007.jpg onlybad/i/ && "
     "cp syn/annotations/trimaps/synth_00007.png onlybad/m/");
  CHECK(run("unet-preprocess", "--images onlybad/i --masks onlybad/m --out o3 --val 0") == 1);
  CHECK_LOG("error: no valid image/mask pairs", NULL, NULL);
  no_output_left("o3");
  CHECK_MSG(count_files("o3", NULL) == -1, "the failed runs left the folder o3");

  /* unwritable output: its parent is a regular file (blocks even root) */
  sh("touch plainfile");
  CHECK(run("unet-preprocess", "--images syn/images --masks syn/annotations/trimaps --out plainfile/out --val 0") == 1);
  CHECK_LOG("error: cannot write the output directory plainfile/out", "Not a directory", NULL);

  /* a full disk, simulated by a 256 KB file size limit: the probe passes,
   * the shard write fails; the message names the temporary and nothing
   * (neither temporary nor shard) is left behind */
  {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "sh -c 'ulimit -f 256; exec %s/unet-preprocess --images syn/images --masks syn/annotations/trimaps "
             "--out o5 --val 2 --shards 2' > log.txt 2>&1",
             UNET_BINARY_DIR);
    int st = sh("%s", cmd);
    snprintf(path, sizeof path, "%s/log.txt", g_work);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(g_log, 1, sizeof g_log - 1, f) : 0;
    g_log[n] = 0;
    if (f) fclose(f);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status %d; log:\n%s", st, g_log);
    CHECK_LOG("error: o5/train-0000", ".h5.tmp.", "disk full or I/O error");
    no_output_left("o5");
    CHECK_MSG(count_files("o5", NULL) == -1, "the failed run left the folder o5");
  }
  CHECK_DONE();
}

/* ---- the real sets in ../shared/data ------------------------------------ */
static int part_real(void) {
  char pets[4200], membrane[4200], args[16384];
  snprintf(pets, sizeof pets, "%s/data/pets", UNET_SHARED_DIR);
  snprintf(membrane, sizeof membrane, "%s/data/isbi-membrane", UNET_SHARED_DIR);
  struct stat st;
  if (stat(pets, &st) != 0 && stat(membrane, &st) != 0)
    SKIP("no real data in %s/data (pets, isbi-membrane)", UNET_SHARED_DIR);
  if (stat(pets, &st) == 0) {
    snprintf(args, sizeof args, "--images '%s/images' --masks '%s/annotations/trimaps' --out pets --val 0", pets, pets);
    CHECK(run("unet-preprocess", args) == 0);
    CHECK_LOG("skipping Abyssinian_34", "Abyssinian_34.jpg: unsupported format GIF", NULL);
    CHECK_LOG("found 302 images and 302 masks: 302 stems", NULL, NULL);
    CHECK_LOG("wrote 301 pairs", NULL, NULL);
    CHECK_LOG("skipped 1: unsupported format 1", NULL, NULL);
    FileSummary s;
    if (read_names("pets/train-00000-of-00001.h5", &s) == 0) {
      CHECK(s.count == 301);
      for (long i = 0; i < s.count; i++) CHECK(strcmp(s.names[i], "Abyssinian_34") != 0);
      free(s.names);
    }
    char ip[8300], mp[8300];
    snprintf(ip, sizeof ip, "%s/images/Abyssinian_1.jpg", pets);
    snprintf(mp, sizeof mp, "%s/annotations/trimaps/Abyssinian_1.png", pets);
    const int trimap[3] = {1, 2, 3};
    check_sample_matches_source("pets/train-00000-of-00001.h5", "Abyssinian_1", ip, mp, trimap, 3);
  } else {
    printf("note: %s absent, pets part skipped\n", pets);
  }
  if (stat(membrane, &st) == 0) {
    snprintf(args, sizeof args, "--images '%s/images' --masks '%s/masks' --out membrane --val 5 --mask-values 0,255",
             membrane, membrane);
    CHECK(run("unet-preprocess", args) == 0);
    CHECK_LOG("wrote 30 pairs to membrane: 25 train in 1 shard(s), 5 val", NULL, NULL);
    char path[8300], err[1024];
    snprintf(path, sizeof path, "%s/membrane/val.h5", g_work);
    ShardReader *r = shard_reader_open(path, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (r) {
      const ShardInfo *in = shard_reader_info(r);
      CHECK(in->num_classes == 2 && in->mask_values[0] == 0 && in->mask_values[1] == 255);
      long n[2] = {0};
      uint8_t *img = malloc(160 * 160 * 3), *mask = malloc(160 * 160);
      for (long i = 0; i < shard_reader_count(r); i++) {
        CHECK(shard_reader_read(r, i, img, mask, NULL, 0, err, sizeof err) == 0);
        for (int p = 0; p < 160 * 160; p++) n[mask[p] & 1]++;
        /* gray source: the three channels are equal */
        for (int p = 0; p < 160 * 160; p += 97) CHECK(img[3 * p] == img[3 * p + 1] && img[3 * p] == img[3 * p + 2]);
      }
      CHECK_MSG(n[0] > 0 && n[1] > n[0], "membrane class counts %ld / %ld", n[0], n[1]);
      free(img);
      free(mask);
      shard_reader_close(r);
    }
    /* without --mask-values the 0/255 masks do not fit the trimap mapping */
    snprintf(args, sizeof args, "--images '%s/images' --masks '%s/masks' --out membrane2 --val 0", membrane, membrane);
    CHECK(run("unet-preprocess", args) == 1);
    CHECK_LOG("masks/0.png: mask value", "not in the mapping 1,2,3", NULL);
    CHECK_LOG("error: no valid image/mask pairs", NULL, NULL);
  } else {
    printf("note: %s absent, membrane part skipped\n", membrane);
  }
  CHECK_DONE();
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_preprocess synth|partition|bad|real\n");
    return 2;
  }
  snprintf(g_work, sizeof g_work, "%s/test-work/test_preprocess_%s", UNET_BINARY_DIR, argv[1]);
  char cmd[8400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_work);
  if (system(cmd) != 0 || unet_mkdir_p(g_work) != 0) return 1;
  if (!strcmp(argv[1], "synth")) return part_synth();
  if (!strcmp(argv[1], "partition")) return part_partition();
  if (!strcmp(argv[1], "bad")) return part_bad();
  if (!strcmp(argv[1], "real")) return part_real();
  fprintf(stderr, "unknown part %s\n", argv[1]);
  return 2;
}
