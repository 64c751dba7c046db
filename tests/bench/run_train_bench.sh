#!/usr/bin/env bash
# Training speed and peak memory at batch 32, 160x160, in one run on one
# machine: this trainer as 1 rank x 2 OpenBLAS threads and as 2 MPI ranks x 1
# thread, and the PyTorch model of tests/torch_unet.py with 2 threads.
# Also 1 rank x 1 thread (what 2 ranks gain over one). With BASE_BUILD (an
# earlier build of the project) its 2x1 and 1x1 run in the same rounds, and
# the median over rounds of the per-round ratio this/base is printed.
# Each configuration runs ROUNDS times, interleaved, and the best round is
# reported: the machine is noisy, so compare the ratios of one run.
# Usage: tests/bench/run_train_bench.sh [BUILD_DIR] [STEPS] [ROUNDS] [BASE_BUILD]
# Needs python3-torch (Debian) for the peer; skips it with a message otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"; steps="${2:-3}"; rounds="${3:-2}"; base="${4:-}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
log="$(mktemp)"; trap 'rm -f "$log"' EXIT
have_torch=0; /usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
for r in $(seq "$rounds"); do
  "$build/bench-train" --batch 32 --size 160 --steps "$steps" --threads 2 | sed "s/^/1x2 /" >> "$log"
  mpirun -np 2 --bind-to core "$build/bench-train" --batch 32 --size 160 --steps "$steps" --threads 1 | sed "s/^/2x1 /" >> "$log"
  "$build/bench-train" --batch 32 --size 160 --steps "$steps" --threads 1 | sed "s/^/1x1 /" >> "$log"
  if [ -n "$base" ]; then
    mpirun -np 2 --bind-to core "$base/bench-train" --batch 32 --size 160 --steps "$steps" --threads 1 | sed "s/^/base2x1 /" >> "$log"
    "$base/bench-train" --batch 32 --size 160 --steps "$steps" --threads 1 | sed "s/^/base1x1 /" >> "$log"
  fi
  if [ $have_torch = 1 ]; then
    /usr/bin/python3 "$root/tests/torch_unet.py" --bench --batch 32 --size 160 --steps "$steps" --warmup 1 --threads 2 \
      | sed "s/^/torch /" >> "$log"
  fi
done
best() { grep "^$1 " "$log" | grep -o "images_per_s=[0-9.]*" | cut -d= -f2 | sort -g | tail -1; }
rss() { grep "^$1 " "$log" | grep -o "$2=[0-9.]*" | cut -d= -f2 | sort -g | tail -1; }
c12=$(best 1x2); c21=$(best 2x1)
echo "convolution GEMMs: $(grep -o "gemm=[a-z0-9]*" "$log" | sort -u | cut -d= -f2 | tr '\n' ' ')(UNET_GEMM=openblas|avx512|auto chooses; README 'Speed and memory')"
echo "unet-c  1 rank  x 2 threads: $c12 images/s, peak RSS $(rss 1x2 peak_rss_mb_total) MB"
echo "unet-c  2 ranks x 1 thread : $c21 images/s, peak RSS $(rss 2x1 peak_rss_mb_total) MB in all ($(rss 2x1 peak_rss_mb_max_rank) MB per rank)"
c11=$(best 1x1)
echo "unet-c  1 rank  x 1 thread : $c11 images/s, peak RSS $(rss 1x1 peak_rss_mb_total) MB"
awk -v a="$c21" -v b="$c12" 'BEGIN{printf "2x1 / 1x2 = %.2f\n", a/b}'
awk -v a="$c21" -v b="$c11" 'BEGIN{printf "2x1 / 1x1 = %.2f (scaling efficiency of 2 ranks: %.0f%%)\n", a/b, 50*a/b}'
if [ -n "$base" ]; then
  # per-round ratio this/base, median over the rounds
  ratio() {
    paste <(grep "^$1 " "$log" | grep -o "images_per_s=[0-9.]*" | cut -d= -f2) \
          <(grep "^base$1 " "$log" | grep -o "images_per_s=[0-9.]*" | cut -d= -f2) |
      awk '{print $1 / $2}' | sort -g | awk '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                                               printf "%.3f (rounds %s..%s)", m, v[1], v[NR]}'
  }
  echo "base $base: 2x1 $(best base2x1) images/s, 1x1 $(best base1x1) images/s"
  echo "this / base, median of per-round ratios: 2x1 $(ratio 2x1), 1x1 $(ratio 1x1)"
fi
grep "^2x1 gradient" "$log" | tail -1 | sed 's/^2x1 //'
if [ $have_torch = 1 ]; then
  t=$(best torch)
  echo "PyTorch 2 threads          : $t images/s, peak RSS $(rss torch peak_rss_mb) MB"
  awk -v a="$c21" -v b="$c12" -v t="$t" 'BEGIN{printf "speed-up over PyTorch: %.2fx (2x1), %.2fx (1x2)\n", a/t, b/t}'
else
  echo "PyTorch peer skipped: python3-torch is not installed (apt-get install python3-torch)"
fi
echo "time per step by layer kind, 2 ranks x 1 thread (rank 0, last round):"
grep "^2x1 " "$log" | sed 's/^2x1 //' | sed -n '/time per step/,/other/p' | tail -11
