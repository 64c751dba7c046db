#!/bin/sh
# Speed of unet-preprocess against tests/bench/preprocess_bench.py (PIL +
# h5py, one process) on the same images, in the same run.
#   tests/bench/run_preprocess_bench.sh [BUILD_DIR] [REPEATS]
# Data: ../shared/data/pets when present (UNET_BENCH_PETS overrides; a missing
# path forces synthetic data), else 300 unet-synth pairs of 300x400.
# Prints, for each tool, wall images/s (best of REPEATS, default 3) and CPU ms
# per pair (user+sys), then the wall ratio. On a machine shared with other
# jobs the wall ratio understates the two-thread speed-up; the load average is
# printed so a reader can tell.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
repeats=${2:-3}
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/unet-prep-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

pets=${UNET_BENCH_PETS:-$root/../shared/data/pets}
if [ -d "$pets/images" ]; then
  images="$pets/images" masks="$pets/annotations/trimaps" data="Oxford pets sample ($pets)"
else
  "$build/unet-synth" --out "$work/synth" --count 300 --size 300x400 --seed 1 2>/dev/null
  images="$work/synth/images" masks="$work/synth/annotations/trimaps" data="300 unet-synth pairs, 300x400"
fi
echo "data: $data; $(nproc) CPU(s); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME COMMAND...: wall/user/sys seconds into $work/NAME.time
run() {
  name=$1
  shift
  /usr/bin/time -f "%e %U %S" -o "$work/$name.time" "$@" > "$work/$name.log" 2>&1
}
best_c=0 best_py=0
i=0
while [ "$i" -lt "$repeats" ]; do
  i=$((i + 1))
  rm -rf "$work/c" "$work/py"
  run c "$build/unet-preprocess" --images "$images" --masks "$masks" --out "$work/c" --val 0
  run py "$python" "$here/preprocess_bench.py" --images "$images" --masks "$masks" --out "$work/py" --val 0
  n_c=$(sed -n 's/.*wrote \([0-9]*\) pairs.*/\1/p' "$work/c.log")
  n_py=$(sed -n 's/python: wrote \([0-9]*\) pairs.*/\1/p' "$work/py.log")
  line_c=$(awk -v n="$n_c" '{printf "%.1f images/s, %.2f CPU ms/pair", n / $1, 1000 * ($2 + $3) / n}' "$work/c.time")
  line_py=$(awk -v n="$n_py" '{printf "%.1f images/s, %.2f CPU ms/pair", n / $1, 1000 * ($2 + $3) / n}' "$work/py.time")
  echo "run $i: unet-preprocess $n_c pairs: $line_c | python PIL+h5py $n_py pairs: $line_py"
  rate_c=$(awk -v n="$n_c" '{printf "%.1f", n / $1}' "$work/c.time")
  rate_py=$(awk -v n="$n_py" '{printf "%.1f", n / $1}' "$work/py.time")
  best_c=$(echo "$best_c $rate_c" | awk '{print ($2 > $1) ? $2 : $1}')
  best_py=$(echo "$best_py $rate_py" | awk '{print ($2 > $1) ? $2 : $1}')
done
echo "best: unet-preprocess $best_c images/s, python $best_py images/s," \
  "ratio $(echo "$best_c $best_py" | awk '{printf "%.2f", $1 / $2}')x (target >= 3x);" \
  "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
