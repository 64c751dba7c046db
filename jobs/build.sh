#!/usr/bin/env bash
# Configures and builds (Release, warnings are errors for us: -Wall -Wextra must stay clean).
# Usage: jobs/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/build}"
shift || true
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" && cmake --build "$dir" -j"$(nproc)"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "build failed in $dir" >&2
  exit 1
fi
if grep -q "warning:" "$log"; then
  grep -B2 -A4 "warning:" "$log" >&2
  echo "build has compiler warnings (the project builds warning-free)" >&2
  exit 1
fi
echo "built in $dir" >&2
