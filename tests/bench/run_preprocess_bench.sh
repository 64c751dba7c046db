#!/bin/sh
# Speed of unet-preprocess against tests/bench/preprocess_bench.py (PIL +
# h5py, one process) on the same images, in the same run.
#   tests/bench/run_preprocess_bench.sh [BUILD_DIR] [REPEATS]
# Data: ../shared/data/pets when present, else 300 unet-synth pairs of 300x400.
# Prints images/s of each (best of REPEATS, default 3) and the ratio.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
repeats=${2:-3}
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/unet-prep-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

pets=${UNET_BENCH_PETS:-$root/../shared/data/pets}  # set to a missing path to force synthetic data
if [ -d "$pets/images" ]; then
  images="$pets/images" masks="$pets/annotations/trimaps" data="Oxford pets sample ($pets)"
else
  "$build/unet-synth" --out "$work/synth" --count 300 --size 300x400 --seed 1 2>/dev/null
  images="$work/synth/images" masks="$work/synth/annotations/trimaps" data="300 unet-synth pairs, 300x400"
fi
echo "data: $data; $(nproc) CPU(s)"

now() { date +%s.%N; }
best_c=0 best_py=0
i=0
while [ "$i" -lt "$repeats" ]; do
  i=$((i + 1))
  rm -rf "$work/c" "$work/py"
  t0=$(now)
  "$build/unet-preprocess" --images "$images" --masks "$masks" --out "$work/c" --val 0 2> "$work/c.log"
  t1=$(now)
  n_c=$(sed -n 's/.*wrote \([0-9]*\) pairs.*/\1/p' "$work/c.log")
  "$python" "$here/preprocess_bench.py" --images "$images" --masks "$masks" --out "$work/py" --val 0 \
    > "$work/py.log" 2>/dev/null
  t2=$(now)
  n_py=$(sed -n 's/python: wrote \([0-9]*\) pairs.*/\1/p' "$work/py.log")
  rate_c=$(echo "$n_c $t0 $t1" | awk '{printf "%.1f", $1 / ($3 - $2)}')
  rate_py=$(echo "$n_py $t1 $t2" | awk '{printf "%.1f", $1 / ($3 - $2)}')
  echo "run $i: unet-preprocess $n_c pairs, $rate_c images/s;  python PIL+h5py $n_py pairs, $rate_py images/s"
  best_c=$(echo "$best_c $rate_c" | awk '{print ($2 > $1) ? $2 : $1}')
  best_py=$(echo "$best_py $rate_py" | awk '{print ($2 > $1) ? $2 : $1}')
done
echo "best: unet-preprocess $best_c images/s, python $best_py images/s, ratio $(echo "$best_c $best_py" | awk '{printf "%.2f", $1 / $2}')x (target >= 3x)"
