/* watchdog.h - the stall watchdog: ends a job that has stopped making
 * progress (a stopped or swapping rank, a hung file system) with exit code
 * UNET_EXIT_STALL instead of letting it wait until the allocation runs out.
 *
 * Every rank publishes where it is (step, phase) with watchdog_phase(): a few
 * relaxed atomic stores, nothing else on the training thread. A watchdog
 * thread per rank sends that position as a 24-byte heartbeat to rank 0 every
 * tick (min(1 s, S/10)) on a duplicated communicator; rank 0's thread polls
 * them with non-blocking probes and sends its own position back. When no rank
 * has moved for S/2 seconds rank 0 warns, naming the laggards (ranks whose
 * heartbeats stopped, else the ranks furthest behind); at S it prints which
 * rank(s) are stuck at which step and phase, calls on_stall, and aborts the
 * job (MPI_Abort with UNET_EXIT_STALL). The other ranks watch rank 0's
 * heartbeats the same way, so a stopped rank 0 is named too. The watchdog
 * needs MPI_THREAD_MULTIPLE (comm_init_threaded); without it, it is off.
 *
 * All MPI stays in src/dist; the trainer only calls the functions below. */
#ifndef UNET_WATCHDOG_H
#define UNET_WATCHDOG_H
#include <stdint.h>

#define UNET_EXIT_STALL 5 /* no progress for --stall-timeout seconds (see trainer.h for 3, 4) */

/* Where a rank is, in the order a step goes through them: a rank at an
 * earlier (step, phase) than the others is behind them. */
typedef enum {
  WD_STARTING = 0,
  WD_READING,     /* waiting for the training batch */
  WD_COMPUTING,   /* forward/backward (gradient buckets already going out) */
  WD_REDUCING,    /* waiting for the gradient allreduce and the loss */
  WD_VALIDATING,  /* BatchNorm recalibration and validation */
  WD_CHECKPOINT,  /* rank 0: best weights, checkpoint, metrics.csv, PNGs */
  WD_WAIT_ROOT,   /* the other ranks while rank 0 writes */
  WD_FINISHED,
  WD_PHASES
} WatchdogPhase;

const char *watchdog_phase_name(WatchdogPhase p);

typedef struct {
  double timeout;    /* S in seconds; <= 0 leaves the watchdog off */
  int automatic;     /* 1: S is a floor, raised to 20 x the median step time once known */
  /* called once on the rank that detects the stall, from the watchdog thread,
   * before the abort (the trainer writes RUN/status there); step is the
   * (first) stuck rank's step as last heard */
  void (*on_stall)(int64_t step, void *ctx);
  void *ctx;
  int quiet;         /* no "progress resumed" notes */
} WatchdogConfig;

/* Collective over MPI_COMM_WORLD: starts the thread. */
void watchdog_start(const WatchdogConfig *cfg);
/* Collective: stops the thread and drains the heartbeats in flight; call
 * before MPI_Finalize on every normal exit. */
void watchdog_stop(void);

/* The training thread's position: cheap enough for every phase of every step. */
void watchdog_phase(int64_t step, WatchdogPhase phase);
/* Progress inside a long phase (one validation chunk): counts as movement. */
void watchdog_progress(void);
/* The timeout in force now (0 when off): the floor, or 20 x the median step. */
double watchdog_timeout(void);

#endif
