#!/usr/bin/env bash
# The README's second command (and CI's): install what is missing, build, and run
# the whole CTest suite, then the same suite under AddressSanitizer + UBSan.
# Tests that need the shared data (UNET_SHARED_DIR) or a SLURM cluster skip with a message when absent.
# Browser and ONNX Runtime tests need Debian's chromium and Node's npm (ONNX Runtime
# itself is installed by the test into the build dir); they skip where those
# cannot be installed.
# A third pass builds the libFuzzer harnesses with clang and runs each for a bounded time
# (jobs/fuzz.sh; README "Fuzzing").
# Usage: jobs/run-tests.sh   Environment: SKIP_SANITIZE=1 to skip the sanitizer pass,
#   SKIP_FUZZ=1 to skip the fuzz pass, FUZZ_SECONDS per harness (default 35).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/jobs/install-deps.sh" slurm-wlm munge
optional=(chromium fonts-dejavu-core)
command -v npm >/dev/null || optional+=(nodejs npm)
"$root/jobs/install-deps.sh" "${optional[@]}" ||
  echo "warning: could not install ${optional[*]}: the browser and ONNX Runtime tests will skip" >&2
"$root/jobs/build.sh" "$root/build"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
(cd "$root/build" && ctest --output-on-failure -j2 --timeout 900)
if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  "$root/jobs/build.sh" "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNET_SANITIZE=ON
  # the sanitizer pass leaves out the long-running end-to-end tests (label "slow")
  (cd "$root/build-asan" && ctest --output-on-failure -j2 --timeout 900 -LE slow)
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-35}" "$root/jobs/fuzz.sh" "$root/build-fuzz"
fi
