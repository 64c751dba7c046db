/* comm.h - everything the trainer needs from MPI, in one place: rank/size,
 * failure propagation, broadcasts and checksums, the BatchNorm reducer, and
 * gradient averaging that overlaps the backward pass (buckets reduced with
 * non-blocking allreduce as soon as their layers are done). The layers never
 * see MPI: they get comm_batchnorm_reducer() as a plain function. */
#ifndef UNET_COMM_H
#define UNET_COMM_H
#include <stddef.h>
#include <stdint.h>

#include "unet/layers.h"

void comm_init(int *argc, char ***argv);
/* The same with MPI_THREAD_MULTIPLE requested: the stall watchdog's thread
 * (watchdog.h) makes MPI calls while the training thread does. */
void comm_init_threaded(int *argc, char ***argv);
void comm_finalize(void);
int comm_rank(void);
int comm_size(void);
int comm_local_size(void); /* ranks sharing this node */
/* Ends the whole job at once (MPI_Abort); installed as the fatal hook. */
void comm_abort(int code) __attribute__((noreturn));

void comm_barrier(void);
void comm_bcast(void *buf, size_t bytes, int root);
void comm_allreduce_sum_double(double *values, int count);
void comm_allreduce_sum_i64(int64_t *values, int count);
int comm_allreduce_max_int(int value);
/* Concatenate each rank's doubles on root in rank order (for order-fixed sums). */
void comm_gather_doubles(const double *mine, int count, double *all_on_root, int root);
void comm_gather_floats(const float *mine, int count, float *all_on_root, int root);

/* FNV-1a 64 over bytes; equal on all ranks or the job stops with a message
 * naming the first rank that differs from rank 0. Returns the checksum. */
uint64_t comm_check_identical(const void *data, size_t bytes, const char *what);

/* Sums over all ranks: a synchronized BatchNorm. */
BatchNormReducer comm_batchnorm_reducer(void);

/* Gradient averaging. grads[count] is laid out in model order; the backward
 * pass reports (via gradsync_ready) that grads[offset..count) are final, and
 * each newly final range becomes one bucket reduced with MPI_Iallreduce (sum;
 * the loss is already scaled by 1/global batch pixels, so the sum is the
 * average). With overlap disabled, gradsync_finish does one blocking
 * allreduce. */
typedef struct GradSync GradSync;
GradSync *gradsync_create(float *grads, size_t count, int overlap, size_t min_bucket_floats);
void gradsync_free(GradSync *g);
void gradsync_begin(GradSync *g);
void gradsync_ready(size_t offset, void *gradsync); /* a GradReadyFn */
void gradsync_finish(GradSync *g);
/* seconds the last step waited in gradsync_finish, and the buckets it used */
double gradsync_last_wait(const GradSync *g);
int gradsync_last_buckets(const GradSync *g);

#endif
