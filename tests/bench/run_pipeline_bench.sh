#!/usr/bin/env bash
# What the data pipeline costs a real training run: unet-train at batch 32,
# 160x160, 2 MPI ranks x 1 thread, on unet-synth data, in three configurations
# run in turn (A B C A B C ...) so that the machine's drift hits all of them:
#   plain     the training thread reads each batch itself (--no-prefetch)
#   prefetch  the default: a background thread reads the next batch
#   augment   prefetch + --augment flip,scale,color
# Each run trains EPOCHS epochs of COUNT images without validation; images/s is
# the mean of metrics.csv's images_per_s over epochs 2.. (epoch 1 warms up).
# The ratios are taken round by round and their median is printed.
# Usage: tests/bench/run_pipeline_bench.sh [BUILD_DIR] [ROUNDS] [EPOCHS] [COUNT]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"; rounds="${2:-5}"; epochs="${3:-3}"; count="${4:-96}"
[ "$epochs" -ge 2 ] || { echo "EPOCHS must be at least 2 (epoch 1 is not counted)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"$build/unet-synth" --out "$work/raw" --count "$count" --size 160 >/dev/null 2>&1
"$build/unet-preprocess" --images "$work/raw/images" --masks "$work/raw/annotations/trimaps" \
  --out "$work/data" --size 160 --val 0 --shards 2 >/dev/null 2>&1

declare -A flags=([plain]="--no-prefetch" [prefetch]="" [augment]="--augment flip,scale,color")
configs=(plain prefetch augment)
run() { # config round -> images/s
  local out="$work/run-$1-$2"
  # shellcheck disable=SC2086
  mpirun -np 2 --bind-to core "$build/unet-train" --data "$work/data" --out "$out" --epochs "$epochs" --batch 32 \
    --threads 1 --quiet ${flags[$1]} >/dev/null
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "images_per_s") c = i }
           NR > 2 { s += $c; n++ } END { printf "%.3f\n", s / n }' "$out/metrics.csv"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for r in $(seq "$rounds"); do
  line="round $r:"
  for c in "${configs[@]}"; do
    ips=$(run "$c" "$r")
    echo "$ips" >> "$work/$c"
    line+=" $c $ips"
  done
  echo "$line"
  p=$(tail -1 "$work/plain"); f=$(tail -1 "$work/prefetch"); a=$(tail -1 "$work/augment")
  awk -v p="$p" -v f="$f" -v a="$a" 'BEGIN { print f / p > "/dev/stderr" }' 2>> "$work/prefetch_vs_plain"
  awk -v f="$f" -v a="$a" 'BEGIN { print a / f > "/dev/stderr" }' 2>> "$work/augment_vs_prefetch"
  awk -v p="$p" -v a="$a" 'BEGIN { print a / p > "/dev/stderr" }' 2>> "$work/augment_vs_plain"
done
echo "images/s, median of $rounds rounds (2 ranks x 1 thread, batch 32, 160x160, $count images, epochs 2..$epochs):"
for c in "${configs[@]}"; do printf "  %-9s %s\n" "$c" "$(median < "$work/$c")"; done
echo "median ratio of a round (1.00 = same speed):"
printf "  prefetch / plain    %.3f\n" "$(median < "$work/prefetch_vs_plain")"
printf "  augment  / prefetch %.3f\n" "$(median < "$work/augment_vs_prefetch")"
printf "  augment  / plain    %.3f\n" "$(median < "$work/augment_vs_plain")"
