/* run_folder.c - see run_folder.h */
#include "unet/run_folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unet/util.h"

static const char *const RESULT_FILES[] = {"last.ckpt.h5", "best.weights.h5", "metrics.csv"};

/* A metrics.csv with a line after its header: at least one finished epoch. */
static int csv_has_rows(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int lines = 0, c, last = '\n';
  while ((c = fgetc(f)) != EOF && lines < 2) {
    if (c == '\n') lines++;
    last = c;
  }
  fclose(f);
  return lines >= 2 || (lines == 1 && last != '\n');
}

int run_folder_has_run(const char *dir, char *what, size_t what_len) {
  for (size_t i = 0; i < sizeof RESULT_FILES / sizeof RESULT_FILES[0]; i++) {
    char path[UNET_PATH_MAX];
    if (unet_path_join(path, sizeof path, dir, RESULT_FILES[i]) != 0) continue;
    if (access(path, F_OK) != 0) continue;
    if (!strcmp(RESULT_FILES[i], "metrics.csv") && !csv_has_rows(path)) continue;
    snprintf(what, what_len, "%s", path);
    return 1;
  }
  return 0;
}

static int remove_file(const char *path, char *err, size_t err_len) {
  if (unlink(path) == 0 || errno == ENOENT) return 0;
  snprintf(err, err_len, "--overwrite: cannot remove %s: %s", path, strerror(errno));
  return -1;
}

int run_folder_clear(const char *dir, char *err, size_t err_len) {
  char path[UNET_PATH_MAX];
  for (size_t i = 0; i < sizeof RESULT_FILES / sizeof RESULT_FILES[0]; i++) {
    unet_path_join(path, sizeof path, dir, RESULT_FILES[i]);
    if (remove_file(path, err, err_len) != 0) return -1;
  }
  unet_path_join(path, sizeof path, dir, "status");
  if (remove_file(path, err, err_len) != 0) return -1;
  char pred[UNET_PATH_MAX];
  unet_path_join(pred, sizeof pred, dir, "predictions");
  DIR *d = opendir(pred);
  if (!d) return 0;
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    size_t n = strlen(de->d_name);
    if (strncmp(de->d_name, "val_", 4) || n < 8 || strcmp(de->d_name + n - 4, ".png")) continue;
    char file[UNET_PATH_MAX];
    if (unet_path_join(file, sizeof file, pred, de->d_name) == 0) rc = remove_file(file, err, err_len);
  }
  closedir(d);
  return rc;
}

void run_status_write(const char *dir, const char *state, int code, int64_t step, int64_t epoch) {
  char path[UNET_PATH_MAX], tmp[UNET_TMP_PATH_MAX];
  unet_path_join(path, sizeof path, dir, "status");
  unet_tmp_path(tmp, sizeof tmp, path);
  FILE *f = fopen(tmp, "w");
  int ok = f != NULL;
  if (f) {
    if (code >= 0)
      fprintf(f, "%s %d step %lld epoch %lld\n", state, code, (long long)step, (long long)epoch);
    else
      fprintf(f, "%s - step %lld epoch %lld\n", state, (long long)step, (long long)epoch);
    ok = !ferror(f);
    if (fclose(f) != 0) ok = 0;
  }
  if (!ok || unet_commit_file(tmp, path) != 0) {
    unet_warn("cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
  }
}
