/* probs_file.h - unet-predict's probabilities file: dataset `probs`, float32
 * [N,H,W,C] (softmax per pixel, images in argument order), written atomically
 * with the same disk-full-safe save as the weights files. */
#ifndef UNET_PROBS_FILE_H
#define UNET_PROBS_FILE_H
#include <stddef.h>

/* 0 ok; -1 with a reason naming the file in err (nothing is left at path or
 * at its temporary). */
int probs_save(const char *path, const float *probs, int n, int h, int w, int c, char *err, size_t err_len);

#endif
