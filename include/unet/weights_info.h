/* weights_info.h - what a weights file (ours or Keras's) says about the model
 * it holds, without loading it: the class count (from the head's kernel shape)
 * and the input size it was trained at. The size is the root attribute
 * `unet_input_size` (int32 [2] = height, width) that this project writes into
 * every weights file and checkpoint; Keras never reads attributes of a
 * .weights.h5 (its H5IOStore only looks up groups and datasets), so the file
 * stays a valid Keras file. A file Keras wrote has no such attribute. */
#ifndef UNET_WEIGHTS_INFO_H
#define UNET_WEIGHTS_INFO_H
#include <stddef.h>

#define UNET_INPUT_SIZE_ATTR "unet_input_size"

typedef struct {
  int num_classes;   /* from the head layer's kernel (weights_num_classes) */
  int height, width; /* 0 when the file does not record its training size */
} WeightsInfo;

/* 0 ok; -1 with a reason naming the file in err (missing file, not HDF5, an
 * HDF5 file that is not a weights file, no head layer). */
int weights_read_info(const char *path, WeightsInfo *info, char *err, size_t err_len);

#endif
