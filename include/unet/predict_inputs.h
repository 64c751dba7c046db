/* predict_inputs.h - the list of images unet-predict works on: image files
 * named on the command line, every image file of a directory argument (sorted
 * by name, not recursive, hidden files skipped), and the paths of a --list file
 * (one per line; blank lines and lines starting with # skipped). Outputs are
 * named by file stem, so two inputs with one stem are refused. */
#ifndef UNET_PREDICT_INPUTS_H
#define UNET_PREDICT_INPUTS_H
#include <stddef.h>

#include "unet/util.h"

/* A stem (a file name without its extension) fits in INPUT_STEM_MAX; an
 * output path OUT/<stem>_overlay.png in INPUT_OUTPUT_PATH_MAX. */
#define INPUT_STEM_MAX 512
#define INPUT_OUTPUT_PATH_MAX (UNET_PATH_MAX + INPUT_STEM_MAX + 64)

typedef struct {
  char **paths;
  int count, cap;
} InputList;

/* A file is added as given; a directory adds its image files (by extension).
 * 0 ok; -1 with the reason in err (a missing path, a folder without images). */
int inputs_add_path(InputList *l, const char *path, char *err, size_t err_len);
int inputs_add_list_file(InputList *l, const char *list_path, char *err, size_t err_len);
/* 0 when all stems differ; else -1 naming the first two files sharing one. */
int inputs_check_stems(const InputList *l, char *err, size_t err_len);
void inputs_free(InputList *l);
/* "dir/x.tar.jpg" -> "x.tar" */
void input_stem(const char *path, char *out, size_t len);

#endif
