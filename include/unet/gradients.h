/* gradients.h - `unet-train --dump-gradients`: the gradient arena in the
 * weights-file layout (src/io/gradients.c), so any other framework's
 * gradients can be compared by name. */
#ifndef UNET_GRADIENTS_H
#define UNET_GRADIENTS_H
#include <stddef.h>

#include "unet/model.h"

/* The gradients in m->grads as /layers/<name>/vars/<i> for the trainable
 * variables only (BatchNorm: gamma and beta). Atomic, like the weights file. */
int gradients_save_keras(const UNet *m, const char *path, char *err, size_t err_len);

#endif
