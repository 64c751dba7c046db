/* run_folder.h - the run directory's life cycle around the trainer: a new run
 * never mixes silently into an earlier one, --overwrite clears the earlier
 * one, and RUN/status records how the last start ended, for launchers whose
 * exit code does not carry unet-train's (mpirun after SIGTERM returns 1).
 *
 * RUN/status is one line, "<state> <code> step <S> epoch <E>":
 *   running -   (the start is under way, or it was killed without a chance to say)
 *   done 0  |  stopped 3 (signal; last.ckpt.h5 is current)  |  nonfinite 4
 *   stalled 5 (the stall watchdog ended the job; S is the stuck rank's step)
 * Written by rank 0 (a stall of rank 0 itself: by rank 1), atomically. */
#ifndef UNET_RUN_FOLDER_H
#define UNET_RUN_FOLDER_H
#include <stddef.h>
#include <stdint.h>

/* 1 when dir holds an earlier run's results (last.ckpt.h5, best.weights.h5,
 * or a metrics.csv with an epoch row), naming the first such file in what;
 * 0 otherwise (no folder, an empty one, or a start that never finished an
 * epoch nor wrote a checkpoint). */
int run_folder_has_run(const char *dir, char *what, size_t what_len);

/* --overwrite: remove the earlier run's files (checkpoint, best weights,
 * metrics.csv, status, predictions/val_*.png) so none of them survives into
 * the new run. 0 ok, -1 with the file at fault in err. */
int run_folder_clear(const char *dir, char *err, size_t err_len);

/* Writes RUN/status; code < 0 writes "-". Failure only warns. */
void run_status_write(const char *dir, const char *state, int code, int64_t step, int64_t epoch);

#endif
