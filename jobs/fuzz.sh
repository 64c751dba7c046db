#!/usr/bin/env bash
# The fuzz pass of jobs/run-tests.sh: builds the libFuzzer harnesses of
# tests/fuzz with clang (ASan + UBSan + coverage, BUILD_DIR, default
# build-fuzz), runs each for FUZZ_SECONDS on a copy of its committed seed
# corpus (tests/fuzz/corpus/<harness>, never written to), and judges every
# crash, leak, timeout or out-of-memory it found by reproducing it:
#  - in the project's code, or any ASan memory error (overflow, use after
#    free) or UBSan report wherever it is: a FAILURE (exit 1);
#  - a SEGV, leak, timeout or OOM whose first frame below the sanitizer
#    runtime and libc is inside libhdf5 itself, a memory error there on
#    buffers libhdf5 allocated itself (ASan's "allocated by" stacks) or on a
#    wild pointer (in no allocation, so in no buffer of ours), or any
#    memory error in its global heap reader H5HG_read: listed as a known libhdf5
#    defect on crafted files (README "Fuzzing"), not a failure. libFuzzer's
#    fork mode (-fork=1 -ignore_crashes=1) keeps fuzzing after one.
# Usage: jobs/fuzz.sh [BUILD_DIR]
#        jobs/fuzz.sh --classify REPORT [ARTIFACT_NAME]   (judge one saved report)
# Environment: FUZZ_SECONDS (per harness, default 35), FUZZ_HARNESSES
# (default "image mask shard weights").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/build-fuzz}"
secs="${FUZZ_SECONDS:-35}"
harnesses="${FUZZ_HARNESSES:-image mask shard weights}"
# origin_frame REPORT: the first stack frame that is not the sanitizer
# runtime, libFuzzer or libc, including glibc's own string routines
# (__memcpy_avx512_unaligned_erms in string/../sysdeps/...), which ASan
# symbolises with a source file rather than libc.so (where the fault or the
# allocation happened)
origin_frame() {
  grep -E '^ *#[0-9]+ 0x' "$1" |
    grep -vE 'asan|ubsan|sanitizer|libclang_rt|fuzzer::|libc\.so|libc_start|__interceptor|in (malloc|calloc|realloc|free|strdup|memcpy|memmove|memset|strlen) |in __(mem|str|wmem|wcs)[a-z0-9_]* |sysdeps/' |
    head -1 || true
}

# hdf5_owned_buffers REPORT: 0 when the report names the buffers a memory
# error touched (heap, stack frame or global) and every one belongs to
# libhdf5 (HDF5 overran its own buffer, not one the project passed it), or
# the address is a wild pointer
hdf5_owned_buffers() {
  local origins
  # heap: the first frame of "allocated by thread T0 here:" below malloc;
  # stack: the frame named by "is located in stack of thread T0 ... in frame";
  # globals: the module of "global variable 'x' defined in '...' (module)"
  origins=$(awk '/allocated by thread|is located in stack of thread/{grab=1; next}
                 grab && /^ *#[0-9]+ 0x/ && !/in (malloc|calloc|realloc) /{print; grab=0}
                 /global variable .* defined in/{print}' "$1")
  # a wild pointer lies in no allocation at all, so in none of the project's
  # (its heap buffers are tracked by ASan, its stack and globals are named)
  grep -q "is a wild pointer" "$1" && return 0
  [ -n "$origins" ] && ! grep -qv libhdf5 <<<"$origins"
}

# classify REPORT ARTIFACT_NAME: prints "known<TAB><kind> in <where>",
# "flaky" (does not reproduce) or "bad<TAB><kind><TAB><frame>"
classify() {
  local report="$1" name="$2" frame kind where
  frame=$(origin_frame "$report")
  kind=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-zA-Z-]+|runtime error|ERROR: libFuzzer: [a-z-]+' "$report" || true)
  case "$name" in
    timeout-*) kind="${kind:-timeout}" ;;
    oom-*) kind="${kind:-out-of-memory}" ;;
  esac
  # known: a SEGV, leak, timeout or OOM inside libhdf5, a memory error
  # inside it on buffers it allocated itself, or any memory error inside its
  # global heap reader (H5HG_read: variable-length strings on a crafted
  # heap, the names and string attributes every shard has)
  if [[ "$frame" == *libhdf5* ]] && { [[ "$kind" =~ SEGV|LeakSanitizer|timeout|out-of-memory|rss-limit|deadly ]] ||
                                      [[ "$frame" == *H5HG_read* ]] || hdf5_owned_buffers "$report"; }; then
    # where, without the run's addresses: "H5HG_read" or "libhdf5_serial.so.103+0x1233e4"
    where=$(sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ +(in ([A-Za-z0-9_]+))? *\(([^ )]*\/)?([^ )]+)\).*/\2 \4/' <<<"$frame")
    printf 'known\t%s in %s\n' "${kind#ERROR: }" "$where"
  elif [ -z "$kind" ] && ! grep -qE 'ERROR|runtime error|deadly signal' "$report"; then
    echo flaky
  else
    printf 'bad\t%s\t%s\n' "${kind:-crash}" "${frame:-?}"
  fi
}

# jobs/fuzz.sh --classify REPORT [ARTIFACT_NAME]: judge one saved report
# (tests/fuzz/reports: the classifier's own test)
if [ "${1:-}" = --classify ]; then
  [ -r "${2:-}" ] || { echo "usage: jobs/fuzz.sh --classify REPORT [ARTIFACT_NAME] (cannot read '${2:-}')" >&2; exit 2; }
  classify "$2" "${3:-crash-x}"
  exit 0
fi

"$root/jobs/install-deps.sh" clang libclang-rt-14-dev
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { CC=clang cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNET_FUZZ=ON -DBUILD_TESTING=OFF &&
       cmake --build "$dir" -j"$(nproc)" --target fuzz_all; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "fuzz build failed in $dir" >&2
  exit 1
fi
work="$dir/fuzz-work"
rm -rf "$work"
mkdir -p "$work/extra-weights"
# the whole weights file (8 MB: made here rather than committed)
"$dir/fuzz-make-seeds" --full-weights "$work/extra-weights/full.weights.h5"
export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

failed=0
summary=""
for h in $harnesses; do
  hw="$work/$h"
  mkdir -p "$hw/corpus" "$hw/artifacts"
  : >"$hw/known.txt"
  seeds=("$root/tests/fuzz/corpus/$h")
  [ "$h" = weights ] && seeds+=("$work/extra-weights")
  rc=0
  (cd "$hw" && timeout $((secs + 120)) "$dir/fuzz_$h" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
     -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$hw/artifacts/" \
     "$hw/corpus" "${seeds[@]}") >"$hw/log" 2>&1 || rc=$?
  # fork mode's progress lines: "#<execs>: cov: ... corp: <n> ... crash: <n> ..."
  execs=$(grep -E '^#[0-9]+: cov:' "$hw/log" | tail -1 | sed -E 's/^#([0-9]+):.*/\1/')
  cov=$(grep -E '^#[0-9]+: cov:' "$hw/log" | tail -1 | sed -E 's/.* cov: ([0-9]+).*/\1/')
  if [ -z "$execs" ]; then
    echo "fuzz_$h: did not run (exit $rc):" >&2
    tail -20 "$hw/log" >&2
    failed=1
    continue
  fi
  known=0 bad=0
  for a in "$hw"/artifacts/*; do
    [ -e "$a" ] || continue
    report="$a.report"
    "$dir/fuzz_$h" -runs=1 -timeout=10 -rss_limit_mb=2048 "$a" >"$report" 2>&1 || true
    verdict=$(classify "$report" "$(basename "$a")")
    case "$verdict" in
      known*)
        known=$((known + 1))
        cut -f2 <<<"$verdict" >>"$hw/known.txt" ;;
      flaky)
        echo "fuzz_$h: $(basename "$a") does not reproduce (flaky; kept in $hw/artifacts)" ;;
      *)
        bad=$((bad + 1))
        echo "FAIL: fuzz_$h: $(cut -f2 <<<"$verdict") at: $(cut -f3 <<<"$verdict")  [$a]" >&2
        grep -E 'ERROR|SUMMARY|runtime error|^ *#[0-9]+ ' "$report" | head -25 >&2 ;;
    esac
  done
  [ "$bad" -gt 0 ] && failed=1
  if [ -s "$hw/known.txt" ]; then
    echo "fuzz_$h: known libhdf5 defects (count, kind, where; inputs in $hw/artifacts):"
    sort "$hw/known.txt" | uniq -c | sort -rn | sed 's/^/  /'
  fi
  summary+="$(printf '%-14s %9s executions in %ss, coverage %s, findings: %d in the project, %d known libhdf5' \
    "fuzz_$h" "$execs" "$secs" "$cov" "$bad" "$known")"$'\n'
done
printf '%s' "$summary"
[ "$failed" -eq 0 ] || { echo "fuzzing found failures (inputs and reports in $work/*/artifacts)" >&2; exit 1; }
echo "fuzzing: no failures"
