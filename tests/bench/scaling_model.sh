#!/usr/bin/env bash
# Measured here, projected beyond: per-rank training throughput at each local
# batch size (1 rank, 1 thread), the measured cost of allreducing this model's
# 8.2 MB of gradients between 2 ranks on this machine, and a model of strong
# (global batch 32) and weak (16 per rank) scaling to 64 nodes of 2 ranks
# with ring allreduce on 10 and 100 Gbit/s networks.
# Usage: tests/bench/scaling_model.sh [BUILD_DIR] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"; steps="${2:-2}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
table="$(mktemp)"; trap 'rm -f "$table"' EXIT
echo "== per-rank throughput (1 rank, 1 OpenBLAS thread, 160x160)"
for b in 1 2 4 8 16 32; do
  ips=$("$build/bench-train" --batch $b --size 160 --steps "$steps" --threads 1 | grep -o "images_per_s=[0-9.]*" | cut -d= -f2)
  echo "$b $ips" >> "$table"
  printf "  local batch %2d: %6.2f images/s (%.3f s per step)\n" "$b" "$ips" "$(awk -v b=$b -v r=$ips 'BEGIN{print b/r}')"
done
ar=$(mpirun -np 2 --bind-to core "$build/bench-train" --batch 4 --size 160 --steps 1 --threads 1 \
     | grep -o "blocking allreduce takes [0-9.]*" | grep -o "[0-9.]*$")
echo "== allreduce of 8.2 MB between 2 ranks on this machine (shared memory): $ar s"
echo
echo "== projection: nodes of 2 ranks x 1 core like this one; ring allreduce 2(P-1)/P * 8.2 MB / bandwidth"
echo "   + 2(P-1) * latency, plus 45 small BatchNorm allreduces per step at log2(P) * latency each;"
echo "   no overlap assumed (conservative: the benchmark hides most of it)"
awk -v S=8.22e6 -v table="$table" 'BEGIN {
  best = 0
  while ((getline line < table) > 0) { split(line, f, " "); t[f[1]] = f[1] / f[2]; if (f[2] > best) best = f[2] }
  printf "efficiency = images/s / (ranks x best per-rank rate, %.2f images/s)\n", best
  nets[1] = "10 Gbit/s"; bw[1] = 1.25e9; lat[1] = 20e-6
  nets[2] = "100 Gbit/s"; bw[2] = 12.5e9; lat[2] = 2e-6
  for (k = 1; k <= 2; k++) {
    printf "\n%s network (latency %g us)\n", nets[k], lat[k] * 1e6
    printf "%6s %6s | %-33s | %-33s\n", "nodes", "ranks", "strong, global batch 32", "weak, 16 per rank"
    printf "%6s %6s | %8s %8s %8s %6s | %8s %8s %8s %6s\n", "", "", "local", "step s", "img/s", "eff", "global", "step s", "img/s", "eff"
    for (n = 1; n <= 64; n *= 2) {
      P = 2 * n
      ar = (P > 1) ? 2 * (P - 1) / P * S / bw[k] + 2 * (P - 1) * lat[k] : 0
      bn = (P > 1) ? 45 * log(P) / log(2) * lat[k] : 0
      b = 32 / P
      if (b >= 1) {
        ts = t[b] + ar + bn; ips = 32 / ts; eff = ips / (P * best)
        strong = sprintf("%8d %8.3f %8.1f %6.2f", b, ts, ips, eff)
      } else strong = sprintf("%8s %8s %8s %6s", "-", "-", "-", "-")
      tw = t[16] + ar + bn
      printf "%6d %6d | %s | %8d %8.3f %8.1f %6.2f\n", n, P, strong, 16 * P, tw, 16 * P / tw, 16 * P / tw / (P * best)
    }
  }
}'
