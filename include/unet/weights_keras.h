/* weights_keras.h - the Keras 3 `.weights.h5` layout (model.save_weights /
 * model.load_weights), written and read by us (src/io/weights_keras.c).
 *
 * HDF5, one group per layer in model order, /layers/<name>/vars/<i> float32
 * datasets in Keras shapes (BN: gamma, beta, moving_mean, moving_variance), an
 * empty vars group for layers without variables, and a top-level /vars group;
 * so model.load_weights() in the Keras script takes our file and we take a
 * file Keras saved. Written to a temporary, made durable and renamed: a kill
 * at any moment leaves the previous file intact. */
#ifndef UNET_WEIGHTS_KERAS_H
#define UNET_WEIGHTS_KERAS_H
#include <stddef.h>

#include "unet/model.h"

/* 0 ok; -1 with a reason naming the file (and layer) in err. */
int weights_save_keras(const UNet *m, const char *path, char *err, size_t err_len);
/* Loads every variable; a missing layer/variable or a wrong shape fails with a
 * message naming the layer and both shapes, leaving the model unchanged. */
int weights_load_keras(UNet *m, const char *path, char *err, size_t err_len);
/* The class count of the model a weights file (or checkpoint) was saved from:
 * the output channels of its head, the model's last layer. */
int weights_num_classes(const char *path, int *classes, char *err, size_t err_len);

#endif
