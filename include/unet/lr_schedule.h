/* lr_schedule.h - the learning rate of every optimizer step as a pure
 * function of the step number, so a resumed run takes exactly the rates an
 * uninterrupted one takes.
 *
 * step is the 0-based index of the step about to be taken (Adam's iterations
 * before it). With W warm-up steps and T steps in all:
 *   warm-up   (step < W):  base * (step + 1) / W
 *   constant:              base
 *   cosine:                base * 0.5 * (1 + cos(pi * (step - W) / (T - W)))
 *   step:                  base * gamma^k, k = milestones passed: 1/2 and 3/4 of T
 * Constant without warm-up returns base exactly (the Keras recipe, bit for bit). */
#ifndef UNET_LR_SCHEDULE_H
#define UNET_LR_SCHEDULE_H
#include <stddef.h>
#include <stdint.h>

typedef enum { LR_CONSTANT = 0, LR_COSINE = 1, LR_STEP = 2 } LrScheduleKind;

typedef struct {
  LrScheduleKind kind;
  double base;          /* --lr (after --lr-scaling) */
  int64_t warmup_steps; /* --warmup-epochs x steps per epoch */
  int64_t total_steps;  /* --epochs x steps per epoch */
  double gamma;         /* step schedule factor, 0.1 */
} LrSchedule;

double lr_at_step(const LrSchedule *s, int64_t step);
/* "constant", "cosine", "step" -> kind; 0 ok, -1 unknown. */
int lr_schedule_parse(const char *name, LrScheduleKind *kind);
const char *lr_schedule_name(LrScheduleKind kind);

#endif
