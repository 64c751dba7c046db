/* validation.c - the trainer's validation: evaluate_set (evaluate.c, shared
 * with unet-evaluate) on val.h5 with the plain Keras loss (ignored pixels left
 * out, class weights never applied); see validation.h. */
#include "validation.h"

#include <string.h>

#include "unet/evaluate.h"
#include "unet/metrics.h"

void validate(Run *r, ValResult *out) {
  UNet *m = &r->model;
  const int C = m->num_classes;
  EvalResult e;
  (r->cfg->flip_tta ? evaluate_set_flip_tta : evaluate_set)(m, &r->val, &r->val_spec, r->x, r->labels, r->probs,
                                                             r->scratch, &e);
  if (r->rank == 0) {
    out->loss = e.loss;
    out->accuracy = e.accuracy;
    out->mean_iou = e.mean_iou;
    for (int k = 0; k < C; k++) out->iou[k] = confusion_iou(e.confusion, C, k);
  }
  eval_result_free(&e);
}
