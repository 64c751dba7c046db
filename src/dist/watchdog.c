/* watchdog.c - the stall watchdog; see watchdog.h.
 *
 * Heartbeat: {step, phase, moves} (24 bytes), moves counting every phase
 * change and watchdog_progress() call, so a rank that repeats a phase still
 * shows movement. Rank r -> rank 0 and rank 0 -> every rank, once per tick,
 * each with at most one send in flight per destination (a stopped receiver
 * never piles up requests). Only the watchdog thread touches the duplicated
 * communicator, except watchdog_start/stop, which run while it is not
 * receiving; probes and receives are all on that one thread, so
 * MPI_Iprobe + MPI_Recv cannot be raced by another receiver. */
#include "unet/watchdog.h"

#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unet/comm.h"
#include "unet/util.h"

typedef struct {
  int64_t step;
  int32_t phase, pad;
  uint64_t moves;
} Beat;

#define TAG_BEAT 7301
#define STEP_RING 31       /* step times kept for the median (automatic timeout) */
#define MAX_LISTED 16      /* ranks listed one per line in a stall report */
typedef char HostName[MPI_MAX_PROCESSOR_NAME];

static const char *const PHASE_NAMES[WD_PHASES] = {
    "starting", "reading data", "forward/backward", "gradient reduction", "validation", "checkpoint",
    "waiting for rank 0's checkpoint", "finished"};
/* UNET_TEST_STOP_IN=RANK:KEY (test hook): the rank stops itself (SIGSTOP) on first entering the phase */
static const char *const PHASE_KEYS[WD_PHASES] = {"starting", "reading", "computing", "reducing",
                                                  "validation", "checkpoint", "waiting", "finished"};

const char *watchdog_phase_name(WatchdogPhase p) { return p >= 0 && p < WD_PHASES ? PHASE_NAMES[p] : "unknown"; }

/* the training thread's position: written by watchdog_phase, read by the thread */
static _Atomic int64_t g_step;
static atomic_int g_phase;
static _Atomic uint64_t g_moves;
static _Atomic uint64_t g_sent_moves; /* moves of the last heartbeat sent (test hook) */
static int g_on;
static int g_test_stop_phase = -1;

static struct {
  WatchdogConfig cfg;
  MPI_Comm comm;
  int rank, size;
  double tick;
  pthread_t thread;
  atomic_int quit;
  HostName *hosts;         /* [size] */
  Beat *seen;              /* [size] last heartbeat from each rank (rank 0 keeps all, the others rank 0's) */
  double *last_heard;      /* [size] when it arrived */
  double *last_move;       /* [size] when it last differed from the one before */
  Beat *outbox;            /* [size] the heartbeat in flight to each destination */
  MPI_Request *req;        /* [size] */
  long *sent, *received;   /* [size] counts, to drain exactly what is in flight at the end */
  int *lag;                /* [size] the laggards of a report */
  int warned;
  /* step times (training thread writes, watchdog thread reads) */
  pthread_mutex_t mu;
  double step_time[STEP_RING];
  long steps_seen;
  double last_read_start;
  int64_t last_read_step;
} W;

static double monotonic(void) { return unet_now(); }

static void record_step_time(int64_t step) {
  double now = monotonic();
  if (W.last_read_start > 0 && step == W.last_read_step + 1) {
    pthread_mutex_lock(&W.mu);
    W.step_time[W.steps_seen++ % STEP_RING] = now - W.last_read_start;
    pthread_mutex_unlock(&W.mu);
  }
  W.last_read_start = now;
  W.last_read_step = step;
}

/* The test hook: stop this process once its heartbeat has announced the phase
 * (as a rank stopped by the OS in the middle of a phase would have). */
static void test_stop(void) {
  g_test_stop_phase = -1;
  uint64_t want = atomic_load(&g_moves);
  double until = monotonic() + 3 * W.tick;
  struct timespec ms10 = {0, 10000000L};
  while (atomic_load(&g_sent_moves) < want && monotonic() < until) nanosleep(&ms10, NULL);
  raise(SIGSTOP);
}

void watchdog_phase(int64_t step, WatchdogPhase phase) {
  if (!g_on) return;
  if (W.cfg.automatic && phase == WD_READING && step != W.last_read_step) record_step_time(step);
  atomic_store_explicit(&g_step, step, memory_order_relaxed);
  atomic_store_explicit(&g_phase, (int)phase, memory_order_relaxed);
  atomic_fetch_add_explicit(&g_moves, 1, memory_order_relaxed);
  if ((int)phase == g_test_stop_phase) test_stop();
}

void watchdog_progress(void) {
  if (g_on) atomic_fetch_add_explicit(&g_moves, 1, memory_order_relaxed);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* the timeout in force (the watchdog thread's view: it runs only while on) */
static double current_timeout(void) {
  if (!W.cfg.automatic) return W.cfg.timeout;
  double t[STEP_RING];
  pthread_mutex_lock(&W.mu);
  int n = W.steps_seen < STEP_RING ? (int)W.steps_seen : STEP_RING;
  memcpy(t, W.step_time, n * sizeof(double));
  pthread_mutex_unlock(&W.mu);
  if (n == 0) return W.cfg.timeout;
  qsort(t, n, sizeof(double), cmp_double);
  double by_steps = 20 * t[n / 2];
  return by_steps > W.cfg.timeout ? by_steps : W.cfg.timeout;
}

double watchdog_timeout(void) { return g_on ? current_timeout() : 0; }

static Beat my_beat(void) {
  Beat b = {atomic_load_explicit(&g_step, memory_order_relaxed),
            atomic_load_explicit(&g_phase, memory_order_relaxed), 0,
            atomic_load_explicit(&g_moves, memory_order_relaxed)};
  return b;
}

static void note(int r, const Beat *b, double now) {
  W.last_heard[r] = now;
  if (b->step != W.seen[r].step || b->phase != W.seen[r].phase || b->moves != W.seen[r].moves) W.last_move[r] = now;
  W.seen[r] = *b;
}

static void send_to(int dest, const Beat *b) {
  int done = 0;
  MPI_Test(&W.req[dest], &done, MPI_STATUS_IGNORE);
  if (!done) return; /* the last one is still in flight: the receiver is slow or stopped */
  W.outbox[dest] = *b;
  if (MPI_Isend(&W.outbox[dest], sizeof(Beat), MPI_BYTE, dest, TAG_BEAT, W.comm, &W.req[dest]) == MPI_SUCCESS)
    W.sent[dest]++;
}

static void exchange(double now) {
  Beat mine = my_beat();
  note(W.rank, &mine, now);
  if (W.size == 1) {
    atomic_store(&g_sent_moves, mine.moves);
    return;
  }
  if (W.rank == 0)
    for (int r = 1; r < W.size; r++) send_to(r, &mine);
  else
    send_to(0, &mine);
  atomic_store(&g_sent_moves, mine.moves);
  /* every peer sends at most one per tick: this bound only guards against a storm */
  for (int i = 0; i < 4 * W.size; i++) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_BEAT, W.comm, &flag, &st) != MPI_SUCCESS || !flag) break;
    Beat b;
    if (MPI_Recv(&b, sizeof b, MPI_BYTE, st.MPI_SOURCE, TAG_BEAT, W.comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
    W.received[st.MPI_SOURCE]++;
    note(st.MPI_SOURCE, &b, now);
  }
}

static int64_t key_of(const Beat *b) { return b->step * WD_PHASES + b->phase; }

/* A rank whose heartbeats stopped: the process itself is stopped (or its node is). */
static int is_silent(int r, double now, double timeout) {
  return r != W.rank && now - W.last_heard[r] > timeout / 4 + 2 * W.tick;
}

static void describe(char *out, size_t len, int r, double now, double timeout) {
  const Beat *b = &W.seen[r];
  if (is_silent(r, now, timeout))
    snprintf(out, len, "rank %d on host %s: no heartbeat for %.1f s (last heard at step %lld, %s)", r, W.hosts[r],
             now - W.last_heard[r], (long long)b->step, watchdog_phase_name(b->phase));
  else
    snprintf(out, len, "rank %d on host %s at step %lld, %s, for %.1f s", r, W.hosts[r], (long long)b->step,
             watchdog_phase_name(b->phase), now - W.last_move[r]);
}

/* Rank 0: the laggards are the silent ranks, else the ranks furthest behind;
 * final: the stall report and the abort, else the S/2 warning. */
static void report(double now, double idle, double timeout, int final) {
  int *lag = W.lag; /* allocated at the start: the thread never allocates */
  int nlag = 0, active = 0;
  int64_t least = INT64_MAX;
  for (int r = 0; r < W.size; r++) {
    if (W.seen[r].phase == WD_FINISHED) continue;
    active++;
    if (key_of(&W.seen[r]) < least) least = key_of(&W.seen[r]);
    if (is_silent(r, now, timeout)) lag[nlag++] = r;
  }
  if (nlag == 0)
    for (int r = 0; r < W.size; r++)
      if (W.seen[r].phase != WD_FINISHED && key_of(&W.seen[r]) == least) lag[nlag++] = r;
  char names[4096] = "", one[512];
  size_t used = 0;
  for (int i = 0; i < nlag && used < sizeof names - 600; i++) {
    describe(one, sizeof one, lag[i], now, timeout);
    used += snprintf(names + used, sizeof names - used, "%s%s", i ? "; " : "", one);
  }
  if (nlag > 0 && used >= sizeof names - 600) snprintf(names + used, sizeof names - used, "; ...");
  const char *who = nlag == active && active > 1 ? "every rank is stuck: " : "";
  if (!final) {
    unet_warn("no progress for %.1f s (stall timeout %.0f s): %s%s", idle, timeout, who, names);
    return;
  }
  unet_error("stalled: no progress for %.1f s (--stall-timeout %.0f s): %s%s; ending the job with exit code %d",
             idle, timeout, who, names, UNET_EXIT_STALL);
  int listed = 0;
  for (int r = 0; r < W.size && listed < MAX_LISTED; r++) {
    int is_lag = 0;
    for (int i = 0; i < nlag; i++) is_lag |= lag[i] == r;
    if (is_lag) continue;
    describe(one, sizeof one, r, now, timeout);
    fprintf(stderr, "  waiting: %s%s\n", one, W.seen[r].phase == WD_FINISHED ? " (finished)" : "");
    listed++;
  }
  if (active - nlag > listed) fprintf(stderr, "  ... and %d more rank(s)\n", active - nlag - listed);
  int64_t stuck_step = W.seen[nlag > 0 ? lag[0] : W.rank].step;
  if (W.cfg.on_stall) W.cfg.on_stall(stuck_step, W.cfg.ctx);
  comm_abort(UNET_EXIT_STALL);
}

static void judge_root(double now) {
  double timeout = current_timeout(), progress = -1;
  for (int r = 0; r < W.size; r++)
    if (W.seen[r].phase != WD_FINISHED && W.last_move[r] > progress) progress = W.last_move[r];
  if (progress < 0) return; /* every rank has finished */
  double idle = now - progress;
  if (idle >= timeout) report(now, idle, timeout, 1);
  if (idle >= timeout / 2 && !W.warned) {
    report(now, idle, timeout, 0);
    W.warned = 1;
  } else if (idle < timeout / 2 && W.warned) {
    if (!W.cfg.quiet) unet_info("progress resumed: the job is moving again");
    W.warned = 0;
  }
}

/* The other ranks watch rank 0 alone: it is the one that judges. */
static void judge_follower(double now) {
  if (W.seen[0].phase == WD_FINISHED) return;
  double timeout = current_timeout(), silent = now - W.last_heard[0];
  /* rank 1 reports first and writes RUN/status; the others abort a little later, only
   * should rank 1 be stuck too (an earlier abort would cut rank 1's report short) */
  double abort_after = W.rank == 1 ? timeout : timeout + 1.0 + 2 * W.tick;
  if (silent < timeout / 2) {
    W.warned = 0;
    return;
  }
  char me[512];
  describe(me, sizeof me, W.rank, now, timeout);
  const Beat *b = &W.seen[0];
  if (silent >= abort_after) {
    unet_error("stalled: rank 0 on host %s has sent no heartbeat for %.1f s (--stall-timeout %.0f s; last at step "
               "%lld, %s); this is %s; ending the job with exit code %d",
               W.hosts[0], silent, timeout, (long long)b->step, watchdog_phase_name(b->phase), me, UNET_EXIT_STALL);
    if (W.cfg.on_stall) W.cfg.on_stall(b->step, W.cfg.ctx);
    comm_abort(UNET_EXIT_STALL);
  }
  if (!W.warned)
    unet_warn("rank 0 on host %s has sent no heartbeat for %.1f s (stall timeout %.0f s; last at step %lld, %s)",
              W.hosts[0], silent, timeout, (long long)b->step, watchdog_phase_name(b->phase));
  W.warned = 1;
}

static void *watch(void *arg) {
  (void)arg;
  struct timespec pause = {(time_t)W.tick, (long)((W.tick - (time_t)W.tick) * 1e9)};
  while (!atomic_load(&W.quit)) {
    nanosleep(&pause, NULL);
    if (atomic_load(&W.quit)) break;
    double now = monotonic();
    exchange(now);
    if (W.rank == 0)
      judge_root(now);
    else
      judge_follower(now);
  }
  return NULL;
}

static void parse_test_hook(void) {
  const char *hook = getenv("UNET_TEST_STOP_IN"); /* test only: RANK:PHASE, see PHASE_KEYS */
  if (!hook) return;
  char *colon = strchr(hook, ':');
  long rank;
  char num[32];
  if (!colon || colon - hook >= (long)sizeof num) return;
  memcpy(num, hook, colon - hook);
  num[colon - hook] = 0;
  if (unet_parse_int(num, &rank) != 0 || rank != W.rank) return;
  for (int p = 0; p < WD_PHASES; p++)
    if (!strcmp(colon + 1, PHASE_KEYS[p])) g_test_stop_phase = p;
}

void watchdog_start(const WatchdogConfig *cfg) {
  if (g_on || cfg->timeout <= 0) return;
  memset(&W, 0, sizeof W);
  W.cfg = *cfg;
  W.rank = comm_rank();
  W.size = comm_size();
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  if (W.size > 1 && provided < MPI_THREAD_MULTIPLE) { /* the same answer on every rank */
    if (W.rank == 0) unet_warn("the MPI library gives no MPI_THREAD_MULTIPLE: the stall watchdog is off");
    return;
  }
  W.tick = cfg->timeout / 10 < 1.0 ? cfg->timeout / 10 : 1.0;
  if (W.tick < 0.05) W.tick = 0.05;
  W.hosts = xcalloc(W.size, sizeof(HostName), "watchdog host names");
  W.seen = xcalloc(W.size, sizeof(Beat), "watchdog heartbeats");
  W.last_heard = xcalloc(W.size, sizeof(double), "watchdog times");
  W.last_move = xcalloc(W.size, sizeof(double), "watchdog times");
  W.outbox = xcalloc(W.size, sizeof(Beat), "watchdog heartbeats");
  W.req = xcalloc(W.size, sizeof(MPI_Request), "watchdog requests");
  W.sent = xcalloc(W.size, sizeof(long), "watchdog counts");
  W.received = xcalloc(W.size, sizeof(long), "watchdog counts");
  W.lag = xcalloc(W.size, sizeof(int), "watchdog laggards");
  HostName me = "";
  int len = 0;
  MPI_Get_processor_name(me, &len);
  if (W.size > 1) {
    MPI_Comm_dup(MPI_COMM_WORLD, &W.comm);
    MPI_Allgather(me, sizeof(HostName), MPI_BYTE, W.hosts, sizeof(HostName), MPI_BYTE, W.comm);
  } else {
    memcpy(W.hosts[0], me, sizeof me);
  }
  double now = monotonic();
  for (int r = 0; r < W.size; r++) {
    W.req[r] = MPI_REQUEST_NULL;
    W.last_heard[r] = W.last_move[r] = now;
  }
  pthread_mutex_init(&W.mu, NULL);
  W.last_read_step = -1;
  atomic_store(&g_step, 0);
  atomic_store(&g_phase, WD_STARTING);
  atomic_store(&g_moves, 0);
  parse_test_hook();
  /* the thread runs with every signal blocked: SIGTERM/SIGUSR1 go to the training thread */
  g_on = 1; /* before the thread exists: it reads the state set up above, never g_on */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&W.thread, NULL, watch, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) unet_fatal("cannot start the stall watchdog thread");
}

void watchdog_stop(void) {
  if (!g_on) return;
  watchdog_phase(atomic_load(&g_step), WD_FINISHED);
  if (W.size > 1) MPI_Barrier(W.comm); /* every rank is done: nothing is left to stall */
  atomic_store(&W.quit, 1);
  pthread_join(W.thread, NULL);
  g_on = 0;
  if (W.size > 1) {
    /* receive exactly the heartbeats still in flight, both ways, then free */
    long *counts = W.rank == 0 ? xcalloc(W.size, sizeof(long), "watchdog counts") : NULL;
    MPI_Gather(&W.sent[0], 1, MPI_LONG, counts, 1, MPI_LONG, 0, W.comm);
    Beat b;
    if (W.rank == 0) {
      for (int r = 1; r < W.size; r++)
        for (; W.received[r] < counts[r]; W.received[r]++)
          MPI_Recv(&b, sizeof b, MPI_BYTE, r, TAG_BEAT, W.comm, MPI_STATUS_IGNORE);
    } else {
      MPI_Wait(&W.req[0], MPI_STATUS_IGNORE);
    }
    long from_root = 0;
    MPI_Scatter(W.sent, 1, MPI_LONG, &from_root, 1, MPI_LONG, 0, W.comm);
    if (W.rank == 0)
      MPI_Waitall(W.size, W.req, MPI_STATUSES_IGNORE);
    else
      for (; W.received[0] < from_root; W.received[0]++)
        MPI_Recv(&b, sizeof b, MPI_BYTE, 0, TAG_BEAT, W.comm, MPI_STATUS_IGNORE);
    xfree(counts);
    MPI_Comm_free(&W.comm);
  }
  pthread_mutex_destroy(&W.mu);
  xfree(W.hosts);
  xfree(W.seen);
  xfree(W.last_heard);
  xfree(W.last_move);
  xfree(W.outbox);
  xfree(W.req);
  xfree(W.sent);
  xfree(W.received);
  xfree(W.lag);
}
