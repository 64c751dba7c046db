#!/usr/bin/env bash
# Training speed and peak memory, this trainer against the PyTorch model of
# tests/torch_unet.py, in the same run on the same machine (batch 32, 160x160).
# Usage: tests/bench/run_train_bench.sh [BUILD_DIR] [STEPS]
# Needs python3-torch (Debian) for the peer; skips it with a message otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"; steps="${2:-4}"
echo "== unet-c, 1 process x 2 OpenBLAS threads"
"$build/bench-train" --batch 32 --size 160 --steps "$steps" --threads 2
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), 2 threads"
  /usr/bin/python3 "$root/tests/torch_unet.py" --bench --batch 32 --size 160 --steps "$steps" --warmup 1 --threads 2
else
  echo "== PyTorch peer skipped: python3-torch is not installed (apt-get install python3-torch)"
fi
