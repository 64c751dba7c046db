/* threads.c - OpenBLAS threads per rank; see default_threads_per_rank in trainer.h. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "unet/trainer.h"
#include "unet/util.h"

int default_threads_per_rank(int local_ranks) {
  const char *slurm = getenv("SLURM_CPUS_PER_TASK");
  long v;
  if (slurm && unet_parse_int(slurm, &v) == 0 && v > 0) return (int)v;
  cpu_set_t set;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int mine = CPU_COUNT(&set);
    if (mine > 0 && mine < online) return mine; /* the launcher bound us: use what we got */
  }
  int t = (int)(online / (local_ranks > 0 ? local_ranks : 1));
  return t > 0 ? t : 1;
}

