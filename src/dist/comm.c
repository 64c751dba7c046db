/* comm.c - MPI wrapper for the trainer; see comm.h */
#include "unet/comm.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "unet/util.h"

static int g_rank = 0, g_size = 1, g_local_size = 1;

static void fatal_hook(int code) { comm_abort(code); }

static void init(int *argc, char ***argv, int threaded) {
  int inited = 0, provided = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    if (threaded)
      MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided); /* watchdog.c checks what it got */
    else
      MPI_Init(argc, argv);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &g_local_size);
  MPI_Comm_free(&local);
  /* errors in MPI calls come back to us instead of a bare abort */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (g_size > 1) {
    char ctx[32];
    snprintf(ctx, sizeof ctx, "rank %d", g_rank);
    unet_set_context(ctx);
  }
  unet_set_fatal_hook(fatal_hook);
}

void comm_init(int *argc, char ***argv) { init(argc, argv, 0); }
void comm_init_threaded(int *argc, char ***argv) { init(argc, argv, 1); }

void comm_finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

int comm_rank(void) { return g_rank; }
int comm_size(void) { return g_size; }
int comm_local_size(void) { return g_local_size; }

void comm_abort(int code) {
  fflush(stdout);
  fflush(stderr);
  int inited = 0, fin = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&fin);
  if (inited && !fin && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  _Exit(code);
}

static void check(int rc, const char *what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    unet_fatal("MPI %s failed: %s", what, msg);
  }
}

void comm_barrier(void) { check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }

void comm_bcast(void *buf, size_t bytes, int root) {
  char *p = buf;
  while (bytes > 0) { /* MPI counts are int */
    int chunk = bytes > (1u << 30) ? (1 << 30) : (int)bytes;
    check(MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
    p += chunk;
    bytes -= chunk;
  }
}

void comm_allreduce_sum_double(double *values, int count) {
  if (g_size == 1) return;
  check(MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "allreduce");
}

void comm_allreduce_sum_i64(int64_t *values, int count) {
  if (g_size == 1) return;
  check(MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "allreduce");
}

int comm_allreduce_max_int(int value) {
  if (g_size == 1) return value;
  int out = value;
  check(MPI_Allreduce(&value, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "allreduce");
  return out;
}

/* Gatherv of count elements of `type` from every rank, concatenated in rank order on root. */
static void gather_in_rank_order(const void *mine, int count, void *all_on_root, int root, MPI_Datatype type,
                                 size_t elem) {
  if (g_size == 1) {
    memcpy(all_on_root, mine, (size_t)count * elem);
    return;
  }
  int *counts = NULL, *displs = NULL;
  if (g_rank == root) {
    counts = xmalloc(g_size * sizeof(int), "gather counts");
    displs = xmalloc(g_size * sizeof(int), "gather displacements");
  }
  check(MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, root, MPI_COMM_WORLD), "gather");
  if (g_rank == root) {
    int off = 0;
    for (int r = 0; r < g_size; r++) {
      displs[r] = off;
      off += counts[r];
    }
  }
  check(MPI_Gatherv(mine, count, type, all_on_root, counts, displs, type, root, MPI_COMM_WORLD), "gatherv");
  xfree(counts);
  xfree(displs);
}

void comm_gather_doubles(const double *mine, int count, double *all_on_root, int root) {
  gather_in_rank_order(mine, count, all_on_root, root, MPI_DOUBLE, sizeof(double));
}

void comm_gather_floats(const float *mine, int count, float *all_on_root, int root) {
  gather_in_rank_order(mine, count, all_on_root, root, MPI_FLOAT, sizeof(float));
}

uint64_t comm_check_identical(const void *data, size_t bytes, const char *what) {
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = data;
  for (size_t i = 0; i < bytes; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  if (g_size == 1) return h;
  uint64_t *all = xmalloc(g_size * sizeof(uint64_t), "checksums");
  check(MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD), "allgather");
  int first_bad = -1;
  for (int r = 1; r < g_size && first_bad < 0; r++)
    if (all[r] != all[0]) first_bad = r;
  if (first_bad >= 0) {
    if (g_rank == 0)
      unet_fatal("%s differ between ranks: rank %d has checksum %016llx, rank 0 has %016llx", what, first_bad,
                 (unsigned long long)all[first_bad], (unsigned long long)all[0]);
    /* rank 0 reports and aborts the job; wait for it */
    MPI_Barrier(MPI_COMM_WORLD);
    comm_abort(1);
  }
  xfree(all);
  return h;
}

static void bn_sum(double *values, int count, void *ctx) {
  (void)ctx;
  comm_allreduce_sum_double(values, count);
}

BatchNormReducer comm_batchnorm_reducer(void) {
  BatchNormReducer r = {g_size > 1 ? bn_sum : NULL, NULL};
  return r;
}

/* ---- gradient averaging ---------------------------------------------------- */

#define MAX_BUCKETS 64

struct GradSync {
  float *grads;
  size_t count;
  int overlap;
  size_t min_bucket;
  size_t posted_from;   /* grads[posted_from..count) already posted; newly final ranges
                         * wait there until they make a bucket of min_bucket */
  MPI_Request req[MAX_BUCKETS];
  int nreq, buckets;
  double last_wait;
};

GradSync *gradsync_create(float *grads, size_t count, int overlap, size_t min_bucket_floats) {
  GradSync *g = xcalloc(1, sizeof *g, "gradient sync");
  g->grads = grads;
  g->count = count;
  g->overlap = overlap;
  g->min_bucket = min_bucket_floats;
  return g;
}

void gradsync_free(GradSync *g) { xfree(g); }

void gradsync_begin(GradSync *g) {
  g->posted_from = g->count;
  g->nreq = 0;
  g->buckets = 0;
}

static void post(GradSync *g, size_t from) {
  if (from >= g->posted_from) return;
  size_t n = g->posted_from - from;
  if (g->nreq == MAX_BUCKETS) { /* cannot happen with the model's ~10 buckets; stay correct anyway */
    check(MPI_Waitall(g->nreq, g->req, MPI_STATUSES_IGNORE), "waitall");
    g->nreq = 0;
  }
  check(MPI_Iallreduce(MPI_IN_PLACE, g->grads + from, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g->req[g->nreq++]),
        "iallreduce");
  g->posted_from = from;
  g->buckets++;
}

void gradsync_ready(size_t offset, void *ctx) {
  GradSync *g = ctx;
  if (g_size == 1 || !g->overlap) return;
  if (g->posted_from - offset >= g->min_bucket) post(g, offset);
  /* let Open MPI progress the collectives already in flight */
  if (g->nreq > 0) {
    int done;
    MPI_Testall(g->nreq, g->req, &done, MPI_STATUSES_IGNORE);
    if (done) g->nreq = 0;
  }
}

void gradsync_finish(GradSync *g) {
  double t0 = unet_now();
  if (g_size > 1) {
    if (g->overlap) {
      post(g, 0);
      check(MPI_Waitall(g->nreq, g->req, MPI_STATUSES_IGNORE), "waitall");
      g->nreq = 0;
    } else {
      check(MPI_Allreduce(MPI_IN_PLACE, g->grads, (int)g->count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "allreduce");
      g->buckets = 1;
    }
  }
  g->last_wait = unet_now() - t0;
}

double gradsync_last_wait(const GradSync *g) { return g->last_wait; }
int gradsync_last_buckets(const GradSync *g) { return g->buckets; }
