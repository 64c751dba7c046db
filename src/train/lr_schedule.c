/* lr_schedule.c - see lr_schedule.h */
#include "unet/lr_schedule.h"

#include <math.h>
#include <string.h>

double lr_at_step(const LrSchedule *s, int64_t step) {
  if (step < 0) step = 0;
  if (s->warmup_steps > 0 && step < s->warmup_steps) return s->base * (double)(step + 1) / (double)s->warmup_steps;
  switch (s->kind) {
    case LR_COSINE: {
      int64_t span = s->total_steps - s->warmup_steps;
      if (span <= 0) return s->base;
      double t = (double)(step - s->warmup_steps) / (double)span;
      if (t > 1) t = 1;
      return s->base * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
    }
    case LR_STEP: {
      double lr = s->base;
      if (2 * step >= s->total_steps) lr *= s->gamma;
      if (4 * step >= 3 * s->total_steps) lr *= s->gamma;
      return lr;
    }
    case LR_CONSTANT:
    default:
      return s->base;
  }
}

int lr_schedule_parse(const char *name, LrScheduleKind *kind) {
  if (!strcmp(name, "constant")) *kind = LR_CONSTANT;
  else if (!strcmp(name, "cosine")) *kind = LR_COSINE;
  else if (!strcmp(name, "step")) *kind = LR_STEP;
  else return -1;
  return 0;
}

const char *lr_schedule_name(LrScheduleKind kind) {
  return kind == LR_COSINE ? "cosine" : kind == LR_STEP ? "step" : "constant";
}
