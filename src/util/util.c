/* util.c - see util.h */
#include "unet/util.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_prog[64] = "unet";
static char g_context[64] = "";
static void (*g_fatal_hook)(int) = NULL;

void unet_set_progname(const char *name) { snprintf(g_prog, sizeof g_prog, "%s", name); }
void unet_set_context(const char *context) { snprintf(g_context, sizeof g_context, "%s", context ? context : ""); }
void unet_set_fatal_hook(void (*hook)(int)) { g_fatal_hook = hook; }

static void vreport(const char *kind, const char *fmt, va_list ap) {
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (g_context[0])
    fprintf(stderr, "%s [%s]: %s%s\n", g_prog, g_context, kind, msg);
  else
    fprintf(stderr, "%s: %s%s\n", g_prog, kind, msg);
  fflush(stderr);
}

void unet_error(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vreport("error: ", fmt, ap); va_end(ap); }
void unet_warn(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vreport("warning: ", fmt, ap); va_end(ap); }
void unet_info(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vreport("", fmt, ap); va_end(ap); }

static void (*g_usage_before_exit)(void) = NULL;
static int g_usage_quiet = 0;
void unet_set_usage_exit(void (*before_exit)(void), int quiet) {
  g_usage_before_exit = before_exit;
  g_usage_quiet = quiet;
}

void unet_usage_vmessage(const char *fmt, va_list ap) {
  if (g_usage_quiet) return;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  char line[2300];
  snprintf(line, sizeof line, "%s (see %s --help)", msg, g_prog);
  unet_error("%s", line);
}

void unet_usage_message(const char *fmt, ...) { va_list ap; va_start(ap, fmt); unet_usage_vmessage(fmt, ap); va_end(ap); }

void unet_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  unet_usage_vmessage(fmt, ap);
  va_end(ap);
  if (g_usage_before_exit) g_usage_before_exit();
  exit(UNET_EXIT_USAGE);
}

void unet_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport("error: ", fmt, ap);
  va_end(ap);
  unet_remove_created_dirs();
  if (g_fatal_hook) g_fatal_hook(1);
  exit(1);
}

static atomic_size_t g_alloc_count = 0;

size_t unet_alloc_count(void) { return atomic_load(&g_alloc_count); }

void *xmalloc(size_t bytes, const char *what) {
  atomic_fetch_add(&g_alloc_count, 1);
  void *p = NULL;
  if (bytes == 0) bytes = 1;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (posix_memalign(&p, 64, rounded) != 0 || !p)
    unet_fatal("out of memory allocating %.1f MB for %s", bytes / 1048576.0, what ? what : "?");
  return p;
}

void *xcalloc(size_t count, size_t size, const char *what) {
  if (size && count > (size_t)-1 / size) unet_fatal("allocation size overflow for %s", what ? what : "?");
  void *p = xmalloc(count * size, what);
  memset(p, 0, count * size);
  return p;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = xmalloc(n, "string");
  memcpy(p, s, n);
  return p;
}

void xfree(void *p) { free(p); }

void unet_bytes_to_floats(float *dst, const uint8_t *src, size_t count) {
  for (size_t i = 0; i < count; i++) dst[i] = (float)src[i];
}

double unet_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

long unet_peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

void unet_tmp_path(char *out, size_t out_len, const char *path) {
  snprintf(out, out_len, "%s.tmp.%ld", path, (long)getpid());
}

int unet_commit_file(const char *tmp_path, const char *final_path) {
  int fd = open(tmp_path, O_RDONLY);
  if (fd < 0) return -1;
  if (fsync(fd) != 0) { int e = errno; close(fd); errno = e; return -1; }
  close(fd);
  if (rename(tmp_path, final_path) != 0) return -1;
  /* fsync the directory so the rename itself survives a crash */
  char dir[UNET_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", final_path);
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) { fsync(dfd); close(dfd); }
  return 0;
}

int unet_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t err_len) {
  char tmp[UNET_TMP_PATH_MAX];
  unet_tmp_path(tmp, sizeof tmp, path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    snprintf(err, err_len, "%.900s: cannot create: %s", tmp, strerror(errno));
    return -1;
  }
  int ok = fwrite(data, 1, len, f) == len;
  if (fclose(f) != 0) ok = 0;
  if (!ok || unet_commit_file(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    snprintf(err, err_len, "%.900s: write failed: %s", path, strerror(e));
    return -1;
  }
  return 0;
}

void unet_remove_stale_tmp(const char *dir, const char *name) {
  char pattern[UNET_TMP_PATH_MAX];
  if (snprintf(pattern, sizeof pattern, "%s/%s.tmp.*", dir, name) >= (int)sizeof pattern) return;
  glob_t g;
  if (glob(pattern, 0, NULL, &g) == 0) {
    for (size_t k = 0; k < g.gl_pathc; k++) remove(g.gl_pathv[k]);
    globfree(&g);
  }
}

int unet_mkdir_p(const char *dir) {
  char buf[UNET_PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) { errno = ENAMETOOLONG; return -1; }
  for (char *p = buf + 1; *p; p++) {
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(buf, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
  return 0;
}

/* Folders made by unet_mkdir_output, in creation order (parents first). */
#define MAX_CREATED_DIRS 32
static char g_created[MAX_CREATED_DIRS][UNET_PATH_MAX];
static volatile int g_ncreated = 0;

int unet_mkdir_output(const char *dir) {
  char buf[UNET_PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) { errno = ENAMETOOLONG; return -1; }
  size_t len = strlen(buf);
  while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != 0) continue;
    char c = *p;
    *p = 0;
    if (mkdir(buf, 0777) == 0) {
      if (g_ncreated < MAX_CREATED_DIRS) {
        snprintf(g_created[g_ncreated], sizeof g_created[0], "%s", buf);
        g_ncreated++;
      }
    } else if (errno != EEXIST) {
      return -1;
    }
    *p = c;
    if (!c) break;
  }
  struct stat st;
  if (stat(buf, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
  return 0;
}

void unet_remove_created_dirs(void) {
  int n = g_ncreated;
  g_ncreated = 0;
  for (int i = n - 1; i >= 0; i--) rmdir(g_created[i]); /* fails, harmlessly, on a folder with content */
}

int unet_check_output_dir(const char *dir, char *where, size_t where_len) {
  char buf[UNET_PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) { errno = ENAMETOOLONG; return -1; }
  for (;;) {
    struct stat st;
    if (stat(buf, &st) == 0) {
      snprintf(where, where_len, "%s", buf);
      if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
      return access(buf, W_OK | X_OK) == 0 ? 0 : -1;
    }
    if (errno != ENOENT) { snprintf(where, where_len, "%s", buf); return -1; }
    char *slash = strrchr(buf, '/');
    while (slash && slash > buf && slash[1] == 0) { *slash = 0; slash = strrchr(buf, '/'); } /* trailing '/' */
    if (!slash) { snprintf(buf, sizeof buf, "."); continue; }
    if (slash == buf) { buf[1] = 0; continue; }
    *slash = 0;
  }
}

int unet_path_join(char *out, size_t out_len, const char *dir, const char *name) {
  int n = snprintf(out, out_len, "%s/%s", dir, name);
  return (n < 0 || (size_t)n >= out_len) ? -1 : 0;
}

int unet_parse_int(const char *s, long *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

int unet_parse_double(const char *s, double *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

int unet_parse_size(const char *s, int *h, int *w) {
  if (!s) return -1;
  char *end;
  long a = strtol(s, &end, 10);
  long b = a;
  if (end == s) return -1;
  if (*end == 'x' || *end == 'X') {
    const char *t = end + 1;
    b = strtol(t, &end, 10);
    if (end == t) return -1;
  }
  if (*end || a <= 0 || b <= 0 || a > 65536 || b > 65536) return -1;
  *h = (int)a;
  *w = (int)b;
  return 0;
}

void unet_progress_start(UnetProgress *p, const char *label, long total) {
  p->label = label;
  p->total = total;
  p->start = p->last_print = unet_now();
  p->is_tty = isatty(2);
}

static void progress_print(UnetProgress *p, long done, int final) {
  double el = unet_now() - p->start;
  double rate = el > 0 ? done / el : 0;
  double eta = rate > 0 ? (p->total - done) / rate : 0;
  fprintf(stderr, "%s%s %ld/%ld  %.1f/s  elapsed %.1fs  ETA %.1fs%s", p->is_tty ? "\r" : "", p->label, done,
          p->total, rate, el, eta, (final || !p->is_tty) ? "\n" : "");
  fflush(stderr);
}

void unet_progress_update(UnetProgress *p, long done) {
  double now = unet_now();
  /* a terminal gets a live line; a log file gets one line every 10 s */
  double every = p->is_tty ? 0.25 : 10.0;
  if (now - p->last_print < every) return;
  p->last_print = now;
  progress_print(p, done, 0);
}

void unet_progress_end(UnetProgress *p, long done) { progress_print(p, done, 1); }
