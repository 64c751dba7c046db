/* prefetch.c - see prefetch.h */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "unet/prefetch.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unet/util.h"

typedef struct {
  float *x;        /* [max_batch, H, W, 3] */
  uint8_t *labels; /* [max_batch, H, W] */
} Buffer;

struct Prefetcher {
  ShardSet *set;
  int max_batch, threaded;
  Buffer buf[2];
  int back;           /* buffer the next request fills */
  uint8_t *scratch;   /* SHARDSET_SCRATCH_BYTES, used by whoever reads */
  /* the request */
  long *index;
  int n;
  AugmentConfig aug;
  int has_aug;
  uint64_t seed;
  int64_t epoch;
  int rc;
  char err[1024];
  /* state, under mu: 0 idle, 1 requested, 2 done; quit ends the thread */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int state, quit;
  int outstanding;    /* main thread only: a request was submitted and not yet taken */
  pthread_t thread;
};

/* UNET_TEST_SLOW_READ_MS (test only): every batch read takes this much longer,
 * a slow but healthy file system for the stall watchdog's tests */
static void test_slow_read(void) {
  const char *ms = getenv("UNET_TEST_SLOW_READ_MS");
  long n;
  if (!ms || unet_parse_int(ms, &n) != 0 || n <= 0) return;
  struct timespec t = {n / 1000, (n % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static void run_request(Prefetcher *p) {
  Buffer *b = &p->buf[p->back];
  test_slow_read();
  p->rc = shardset_read_batch(p->set, p->index, p->n, p->has_aug ? &p->aug : NULL, p->seed, p->epoch, b->x, b->labels,
                              p->scratch, p->err, sizeof p->err);
}

static void *worker(void *arg) {
  Prefetcher *p = arg;
#ifdef SCHED_IDLE
  /* Idle priority: the reader runs on a core nobody computes on, or while the
   * step waits for it, but never preempts a step. On a node whose every core
   * runs a rank (2 ranks on 2 cores), a reader at normal priority took time
   * slices in the middle of a step, and each one held up every other rank at
   * the next synchronised BatchNorm reduction: 4.5% fewer images/s than
   * reading in the step (tests/bench/run_pipeline_bench.sh). Where the call
   * is refused, the reader simply keeps normal priority. */
  struct sched_param idle = {0};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
#endif
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->state != 1 && !p->quit) pthread_cond_wait(&p->cv, &p->mu);
    if (p->quit) break;
    pthread_mutex_unlock(&p->mu);
    run_request(p);
    pthread_mutex_lock(&p->mu);
    p->state = 2;
    pthread_cond_broadcast(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

Prefetcher *prefetch_create(ShardSet *set, int max_batch, int threaded) {
  Prefetcher *p = xcalloc(1, sizeof *p, "prefetcher");
  size_t pixels = (size_t)set->height * set->width;
  p->set = set;
  p->max_batch = max_batch;
  for (int i = 0; i < 2; i++) {
    p->buf[i].x = xmalloc((size_t)max_batch * pixels * 3 * sizeof(float), "prefetch batch");
    p->buf[i].labels = xmalloc((size_t)max_batch * pixels, "prefetch labels");
  }
  p->scratch = xmalloc(SHARDSET_SCRATCH_BYTES(set->height, set->width), "prefetch scratch");
  p->index = xmalloc((size_t)max_batch * sizeof(long), "prefetch index");
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  /* the thread starts with every signal blocked, so SIGTERM/SIGUSR1 (the
   * trainer's stop flag) and SIGINT always reach the training thread */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  p->threaded = threaded && pthread_create(&p->thread, NULL, worker, p) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return p;
}

void prefetch_free(Prefetcher *p) {
  if (!p) return;
  if (p->threaded) {
    pthread_mutex_lock(&p->mu);
    while (p->state == 1) pthread_cond_wait(&p->cv, &p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
  }
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  for (int i = 0; i < 2; i++) {
    xfree(p->buf[i].x);
    xfree(p->buf[i].labels);
  }
  xfree(p->scratch);
  xfree(p->index);
  xfree(p);
}

void prefetch_submit(Prefetcher *p, const long *index, int n, const AugmentConfig *aug, uint64_t seed, int64_t epoch) {
  if (n > p->max_batch) unet_fatal("prefetch: batch of %d exceeds the planned %d", n, p->max_batch);
  prefetch_drain(p);
  p->outstanding = 1;
  memcpy(p->index, index, (size_t)n * sizeof(long));
  p->n = n;
  p->has_aug = aug != NULL;
  if (aug) p->aug = *aug;
  p->seed = seed;
  p->epoch = epoch;
  pthread_mutex_lock(&p->mu);
  p->state = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* Waits until the outstanding request is done and marks the worker idle. */
static void wait_done(Prefetcher *p) {
  p->outstanding = 0;
  if (!p->threaded) {
    run_request(p);
    p->state = 0;
    return;
  }
  pthread_mutex_lock(&p->mu);
  while (p->state == 1) pthread_cond_wait(&p->cv, &p->mu);
  p->state = 0;
  pthread_mutex_unlock(&p->mu);
}

int prefetch_take(Prefetcher *p, float **x, uint8_t **labels, double *waited_s, char *err, size_t err_len) {
  double t0 = unet_now();
  if (!p->outstanding) {
    snprintf(err, err_len, "prefetch: nothing was submitted");
    return -1;
  }
  wait_done(p);
  if (waited_s) *waited_s = unet_now() - t0;
  if (p->rc != 0) {
    snprintf(err, err_len, "%s", p->err);
    return -1;
  }
  *x = p->buf[p->back].x;
  *labels = p->buf[p->back].labels;
  p->back ^= 1;
  return 0;
}

void prefetch_drain(Prefetcher *p) {
  if (p->outstanding) wait_done(p);
}
