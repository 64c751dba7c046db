/* predict_inputs.c - see predict_inputs.h */
#include "unet/predict_inputs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unet/image.h"
#include "unet/util.h"

static void add(InputList *l, const char *path) {
  if (l->count == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    char **bigger = xmalloc(sizeof *bigger * (size_t)cap, "image list");
    if (l->count) memcpy(bigger, l->paths, sizeof *bigger * (size_t)l->count);
    xfree(l->paths);
    l->paths = bigger;
    l->cap = cap;
  }
  l->paths[l->count++] = xstrdup(path);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_directory(InputList *l, const char *dir, char *err, size_t err_len) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, err_len, "%s: cannot read the folder: %s", dir, strerror(errno));
    return -1;
  }
  InputList found = {0};
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' || !image_name_has_image_extension(de->d_name)) continue;
    char path[8300];
    if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) add(&found, path);
  }
  closedir(d);
  if (found.count == 0) {
    snprintf(err, err_len, "%s: no image files (.jpg, .png, ...) in the folder", dir);
    inputs_free(&found);
    return -1;
  }
  qsort(found.paths, (size_t)found.count, sizeof *found.paths, name_cmp);
  for (int i = 0; i < found.count; i++) add(l, found.paths[i]);
  inputs_free(&found);
  return 0;
}

int inputs_add_path(InputList *l, const char *path, char *err, size_t err_len) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return add_directory(l, path, err, err_len);
  add(l, path); /* a missing or bad file is reported when it is decoded, with its reason */
  return 0;
}

int inputs_add_list_file(InputList *l, const char *list_path, char *err, size_t err_len) {
  FILE *f = fopen(list_path, "r");
  if (!f) {
    snprintf(err, err_len, "--list %s: cannot open: %s", list_path, strerror(errno));
    return -1;
  }
  char line[8300];
  int before = l->count, lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    rc = inputs_add_path(l, p, err, err_len);
    if (rc != 0) {
      char inner[2048];
      snprintf(inner, sizeof inner, "%s", err);
      snprintf(err, err_len, "--list %s line %d: %s", list_path, lineno, inner);
    }
  }
  fclose(f);
  if (rc == 0 && l->count == before) {
    snprintf(err, err_len, "--list %s: no image paths in it", list_path);
    return -1;
  }
  return rc;
}

void input_stem(const char *path, char *out, size_t len) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(out, len, "%s", base);
  char *dot = strrchr(out, '.');
  if (dot && dot != out) *dot = 0;
}

typedef struct {
  char stem[INPUT_STEM_MAX];
  int index;
} StemEntry;

static int stem_cmp(const void *a, const void *b) {
  const StemEntry *x = a, *y = b;
  int c = strcmp(x->stem, y->stem);
  return c ? c : x->index - y->index;
}

int inputs_check_stems(const InputList *l, char *err, size_t err_len) {
  StemEntry *e = xmalloc(sizeof *e * (size_t)(l->count + 1), "stems");
  for (int i = 0; i < l->count; i++) {
    input_stem(l->paths[i], e[i].stem, sizeof e[i].stem);
    e[i].index = i;
  }
  qsort(e, (size_t)l->count, sizeof *e, stem_cmp);
  int rc = 0;
  for (int i = 1; i < l->count && rc == 0; i++)
    if (!strcmp(e[i].stem, e[i - 1].stem)) {
      snprintf(err, err_len,
               "%s and %s have the same stem '%s': their outputs (%s_mask.png, ...) would overwrite each other; "
               "rename one or predict them in separate runs",
               l->paths[e[i - 1].index], l->paths[e[i].index], e[i].stem, e[i].stem);
      rc = -1;
    }
  xfree(e);
  return rc;
}

void inputs_free(InputList *l) {
  for (int i = 0; i < l->count; i++) xfree(l->paths[i]);
  xfree(l->paths);
  memset(l, 0, sizeof *l);
}
