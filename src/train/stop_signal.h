/* stop_signal.h - private to src/train: SIGTERM and SIGUSR1 set a flag; the
 * trainer acts on it at the next step boundary (checkpoint, exit code 3). */
#ifndef UNET_TRAIN_STOP_SIGNAL_H
#define UNET_TRAIN_STOP_SIGNAL_H

void stop_signal_install(void);
int stop_signal_pending(void); /* the signal number, 0 when none arrived */

#endif
