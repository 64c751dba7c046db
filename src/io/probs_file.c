/* probs_file.c - see probs_file.h */
#include "unet/probs_file.h"

#include "unet/h5_io.h"

typedef struct {
  const float *probs;
  int dims[4];
  const char *path;
} ProbsWrite;

static int write_probs(hid_t file, void *ctx, char *err, size_t err_len) {
  const ProbsWrite *p = ctx;
  return h5_write_f32(file, "probs", p->probs, 4, p->dims, p->path, err, err_len);
}

int probs_save(const char *path, const float *probs, int n, int h, int w, int c, char *err, size_t err_len) {
  ProbsWrite p = {probs, {n, h, w, c}, path};
  return h5_save_atomic(path, write_probs, &p, err, err_len);
}
