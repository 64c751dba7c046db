/* predict_inputs.h - the list of images unet-predict works on: image files
 * named on the command line, every image file of a directory argument (sorted
 * by name, not recursive, hidden files skipped), and the paths of a --list file
 * (one per line; blank lines and lines starting with # skipped). Outputs are
 * named by file stem, so two inputs with one stem are refused. */
#ifndef UNET_PREDICT_INPUTS_H
#define UNET_PREDICT_INPUTS_H
#include <stddef.h>

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
