# Shared helpers for the shell tests: sourced with BUILD and SRC set.
# Each test works in its own temporary directory, removed on exit.
set -euo pipefail
BUILD="$(realpath "$1")"
SRC="$(realpath "$2")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/unet-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
finish() { if [ "$failures" -gt 0 ]; then echo "$failures failure(s)" >&2; exit 1; fi; echo "all checks passed"; }

# make_data DIR COUNT SIZE VAL SHARDS [SEED]: synthetic pets -> shards
make_data() {
  "$BUILD/unet-synth" --out "$1.raw" --count "$2" --seed "${6:-7}" --size 48 >/dev/null 2>&1
  "$BUILD/unet-preprocess" --images "$1.raw/images" --masks "$1.raw/annotations/trimaps" --out "$1" \
    --size "$3" --val "$4" --shards "$5" >/dev/null 2>&1
}

# csv_col FILE EPOCH COLUMN_NAME: a value from metrics.csv
csv_col() {
  awk -F, -v ep="$2" -v col="$3" 'NR==1{for(i=1;i<=NF;i++) if($i==col) c=i; next} $1==ep{print $c}' "$1"
}

# h5_scalar FILE DATASET: the value of a scalar dataset (h5dump, from hdf5-tools)
h5_scalar() {
  h5dump -d "$2" "$1" 2>/dev/null | awk '/\(0\):/{print $2; exit}'
}
