/* loss_setup.h - private to src/train: what the training loss counts, for
 * users' own data (README "Your own data"): the training shards' ignore value
 * and --class-weights (a list, or median-frequency balancing computed from the
 * training samples), set into the model's LossSpec. */
#ifndef UNET_TRAIN_LOSS_SETUP_H
#define UNET_TRAIN_LOSS_SETUP_H
#include "run.h"

/* Collective (auto weights count over every rank's slice). After it,
 * r->model.loss says what the step counts; the validation spec is r->val_spec. */
void loss_setup(Run *r);

/* The denominator of this step's mean loss: the loss weight of the global
 * batch, one small allreduce of each rank's count (or the pixel count, with
 * no allreduce, for the plain Keras loss). */
double loss_global_weight(Run *r, const uint8_t *labels, double global_pixels);

#endif
