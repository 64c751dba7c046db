#!/usr/bin/env bash
# The stall watchdog (--stall-timeout): a rank of 3 stopped with SIGSTOP at a
# random step, a rank stopped during validation, and rank 0 stopped while it
# writes the checkpoint each end the job within S + 15 s with exit code 5, the
# stopped rank named and RUN/status "stalled 5"; a rank whose read hangs (alive,
# still sending heartbeats) is named as the one behind; a slow but healthy data
# read (below the timeout) is not stopped.
source "$(dirname "$0")/lib.sh"
make_data data 60 32 12 3
S=4 # seconds: small, so the test stays short

# every process this test stops is continued and killed at the end, whatever happens
STOPPED=()
cleanup() {
  local p
  for p in "${STOPPED[@]}"; do # only if that pid is still one of ours (not reused by another process)
    [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$WORK" ] || continue
    kill -CONT "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# rank_pid MPIRUN_PID RANK: the pid of that rank (a child of mpirun here)
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$p"; return; fi
  done
}
stopped_state() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }

# check_stall NAME RUN OUT RC SECONDS_AFTER_STOP PATTERN
check_stall() {
  local name=$1 run=$2 out=$3 rc=$4 after=$5 pattern=$6
  if [ "$rc" != 5 ]; then fail "$name: exit $rc, expected 5: $(grep -E 'error|warning' "$out" | head -3)"; return; fi
  if awk -v a="$after" -v b=$((S + 15)) 'BEGIN{exit !(a > b)}'; then fail "$name: ended $after s after the stop (bound $((S + 15)) s)"; fi
  if grep -E "stalled: .*$pattern" "$out" >/dev/null; then pass "$name: exit 5, ${after} s after the stop: $(grep -E 'stalled: ' "$out" | head -1)"
  else fail "$name: no stall report matching '$pattern': $(grep -E 'error|warning' "$out" | head -3)"; fi
  read -r state code _ < "$run/status" || state=""
  [ "$state $code" = "stalled 5" ] && pass "$name: $run/status: $(cat "$run/status")" || fail "$name: $run/status is '$state $code'"
}

# run_and_stop NAME RUN STOP_RANK [env...]: starts 3 ranks for many epochs, waits until
# STOP_RANK is stopped (by the test hook, or with kill -STOP at a random moment when no
# hook is given), and returns the exit code and the seconds from the stop to the end
run_and_stop() {
  local name=$1 run=$2 rank=$3; shift 3
  local start=$SECONDS mp pid t_stop t_end rc=0
  env "$@" timeout 120 "${MPIRUN[@]}" -np 3 "$BUILD/unet-train" --data data --out "$run" --epochs 200 --batch 6 \
    --threads 1 --stall-timeout $S > "$run.out" 2>&1 &
  mp=$!
  # the ranks are mpirun's children (timeout's grandchildren)
  local mpirun_pid=""
  while [ -z "$mpirun_pid" ] && kill -0 $mp 2>/dev/null; do mpirun_pid=$(pgrep -P $mp mpirun || true); sleep 0.1; done
  while [ -z "${pid:-}" ] && kill -0 $mp 2>/dev/null; do pid=$(rank_pid "$mpirun_pid" "$rank"); sleep 0.1; done
  if [ -z "${pid:-}" ]; then wait $mp || true; fail "$name: rank $rank never started"; LAST_RC=-1; return; fi
  STOPPED+=("$pid")
  if [ $# -eq 0 ]; then
    while [ ! -f "$run/status" ] && kill -0 $mp 2>/dev/null; do sleep 0.1; done # training has begun
    sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.1f", 0.5 + r % 25 / 10}')"
    kill -STOP "$pid"
  else
    while ! stopped_state "$pid" && kill -0 $mp 2>/dev/null; do sleep 0.1; done
  fi
  t_stop=$(date +%s.%N)
  wait $mp || rc=$?
  t_end=$(date +%s.%N)
  LAST_RC=$rc
  LAST_AFTER=$(awk -v a="$t_stop" -v b="$t_end" 'BEGIN{printf "%.1f", b - a}')
  echo "$name: $((SECONDS - start)) s in all"
}

run_and_stop "rank 1 stopped at a random step" r1 1
check_stall "rank 1 stopped at a random step" r1 r1.out "$LAST_RC" "$LAST_AFTER" "rank 1 on host [^ ]+: no heartbeat"
grep -q "warning: no progress for" r1.out && pass "the S/2 warning came first: $(grep 'warning: no progress' r1.out | head -1)" \
  || fail "no S/2 warning: $(head -5 r1.out)"

run_and_stop "rank 2 stopped during validation" r2 2 UNET_TEST_STOP_IN=2:validation
check_stall "rank 2 stopped during validation" r2 r2.out "$LAST_RC" "$LAST_AFTER" "rank 2 on host [^ ]+: no heartbeat .*validation"

run_and_stop "rank 0 stopped writing the checkpoint" r0 0 UNET_TEST_STOP_IN=0:checkpoint
check_stall "rank 0 stopped writing the checkpoint" r0 r0.out "$LAST_RC" "$LAST_AFTER" "rank 0 on host [^ ]+ has sent no heartbeat.*checkpoint"

# a hung read (a dead NFS mount): rank 1's batch read never returns while its process and
# its heartbeats live on; it is named as the rank behind the others, "reading data"
rc=0
start=$SECONDS
ONE=("$BUILD/unet-train" --data data --out hung --epochs 5 --batch 6 --threads 1 --stall-timeout $S)
timeout 120 "${MPIRUN[@]}" -np 1 "${ONE[@]}" : -np 1 env UNET_TEST_SLOW_READ_MS=100000 "${ONE[@]}" : -np 1 "${ONE[@]}" \
  > hung.out 2>&1 || rc=$?
msg=$(grep -E "stalled: .*rank 1 on host [^ ]+ at step [0-9]+, reading data" hung.out | head -1)
if [ $rc -eq 5 ] && [ -n "$msg" ] && [ $((SECONDS - start)) -le $((S + 15 + 10)) ]; then
  pass "a hung read on rank 1: exit 5 after $((SECONDS - start)) s in all: $msg"
else
  fail "hung read: exit $rc after $((SECONDS - start)) s: $(grep -E 'error|warning' hung.out | head -3)"
fi

# slow but healthy: every batch read takes 3.2 s, 40% of the timeout of 8 s (the watchdog
# sees a move up to two ticks, 2 x 0.8 s, late, so it may warn at S/2): not stopped
rc=0
UNET_TEST_SLOW_READ_MS=3200 timeout 120 "${MPIRUN[@]}" -np 3 "$BUILD/unet-train" --data data --out slow --epochs 1 \
  --batch 6 --max-train 18 --threads 1 --stall-timeout 8 > slow.out 2>&1 || rc=$?
if [ $rc -eq 0 ] && ! grep -q "stalled" slow.out && [ "$(cut -d' ' -f1-2 slow/status)" = "done 0" ]; then
  pass "a slow read (3.2 s a batch, --stall-timeout 8) is not stopped: $(cat slow/status)"
else
  fail "slow read: exit $rc: $(grep -E 'error|warning' slow.out | head -3)"
fi
# the reads really were slow: the 3 steps waited > 3 x S/2 for data (without the hook: ~0;
# less than 3 x 3.2 s because the next read overlaps the step's compute)
wait_s=$(csv_col slow/metrics.csv 1 data_wait_seconds)
awk -v w="${wait_s:-0}" 'BEGIN{exit !(w >= 7.5)}' && pass "the 3 steps waited ${wait_s} s for data" \
  || fail "slow read: data wait ${wait_s:-?} s, expected >= 7.5 s (is UNET_TEST_SLOW_READ_MS read?)"
# --stall-timeout 0: no watchdog at all (plain MPI_Init), the same slow read is silent
UNET_TEST_SLOW_READ_MS=3200 "${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data data --out off --epochs 1 --batch 6 \
  --max-train 6 --threads 1 --stall-timeout 0 > off.out 2>&1 && ! grep -q "no progress" off.out \
  && pass "--stall-timeout 0: no watchdog" || fail "--stall-timeout 0: $(head -3 off.out)"
finish
