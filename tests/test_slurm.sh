#!/usr/bin/env bash
# End-to-end test of the SLURM job scripts on a single-node cluster on this machine.
#   tests/test_slurm.sh BUILD_DIR SOURCE_DIR
# 1. jobs/slurm-local.sh start (skip, exit 77, when not root / no slurm-wlm / daemons fail)
# 2. small synthetic data: unet-synth (48 pairs, 64x64) -> jobs/preprocess.sbatch
#    (unet-preprocess to 32x32, 8 val, 2 shards) -> COMPLETED, train-*.h5 + val.h5
# 3. job 1: train.sbatch, 2 tasks x 1 cpu, 2 epochs, batch 8 -> COMPLETED, exit 0,
#    metrics.csv has epochs 1,2, best.weights.h5 + last.ckpt.h5, no temporary files
# 4. job 2: long run; `scancel --signal=USR1` while it trains (the signal goes to the job
#    steps, as --signal=USR1@120 does) -> the ranks checkpoint and exit 3, the script
#    requeues, the restart resumes from last.ckpt.h5 and finishes all epochs:
#    Restarts>=1, a "resuming" line, metrics.csv epochs 1..N without gaps or repeats.
# 5. jobs/scaling.sbatch on 2 tasks: a table with rows for 1 and 2 ranks, speedup 1 at 1.
# The cluster is stopped at the end if this test started it.
set -uo pipefail

BUILD="${1:?usage: test_slurm.sh BUILD_DIR SOURCE_DIR}"
SRC="${2:?usage: test_slurm.sh BUILD_DIR SOURCE_DIR}"
BUILD="$(cd "$BUILD" && pwd)"
SRC="$(cd "$SRC" && pwd)"
LOCAL="$SRC/jobs/slurm-local.sh"
T0=$SECONDS

skip() { echo "SKIP: $*"; exit 77; }
note() { echo "[$((SECONDS - T0))s] $*"; }

# ---- can SLURM run here? ---------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "needs root to start the SLURM and munge daemons"
for prog in slurmctld slurmd sbatch squeue scontrol munged; do
  command -v "$prog" >/dev/null || [ -x "/usr/sbin/$prog" ] ||
    skip "$prog not found: install Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge)"
done
for prog in unet-train unet-synth unet-preprocess; do
  [ -x "$BUILD/$prog" ] || { echo "FAIL: $BUILD/$prog is missing: build the project first"; exit 1; }
done

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
started=0
if ! bash "$LOCAL" status >/dev/null 2>&1; then
  out="$(bash "$LOCAL" start 2>&1)" || { echo "$out"; skip "the local SLURM cluster did not start (messages above)"; }
  started=1
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/unet-slurm-test.XXXXXX")"
jobs_submitted=()
cleanup() {
  local rc=$?
  for j in "${jobs_submitted[@]}"; do scancel "$j" 2>/dev/null; done
  if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "work folder kept: $WORK"; fi
  [ "$started" = 1 ] && bash "$LOCAL" stop >/dev/null 2>&1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "FAIL: $*"
  for f in "$WORK"/job*.out; do
    [ -f "$f" ] && { echo "---- $f ----"; tail -n 30 "$f"; }
  done
  exit 1
}

# job_field JOBID NAME: a field of `scontrol show job` (kept MinJobAge after the end)
job_field() {
  scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# wait_job JOBID SECONDS: until the job has left the queue for good (not requeued)
wait_job() {
  local jid="$1" limit="$2" t=$SECONDS state
  while [ $((SECONDS - t)) -lt "$limit" ]; do
    state="$(job_field "$jid" JobState)"
    case "$state" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) return 0 ;;
      "") fail "job $jid is unknown to scontrol" ;;
    esac
    sleep 1
  done
  fail "job $jid still $(job_field "$jid" JobState) after $limit s"
}

# check_run RUN EPOCHS: the finished run folder
check_run() {
  local run="$1" epochs="$2"
  [ -s "$run/metrics.csv" ] || fail "$run/metrics.csv missing"
  local got want
  got="$(tail -n +2 "$run/metrics.csv" | cut -d, -f1 | tr '\n' ' ')"
  want="$(seq -s ' ' 1 "$epochs") "
  [ "$got" = "$want" ] || fail "$run/metrics.csv epochs are '$got', expected '$want'"
  [ "$(head -n 1 "$run/metrics.csv" | cut -d, -f1)" = epoch ] || fail "$run/metrics.csv has no header"
  [ -s "$run/best.weights.h5" ] || fail "$run/best.weights.h5 missing"
  [ -s "$run/last.ckpt.h5" ] || fail "$run/last.ckpt.h5 missing"
  local tmp
  tmp="$(find "$run" -name '*.tmp*' | head -n 3)"
  [ -z "$tmp" ] || fail "temporary files left in $run: $tmp"
}

# ---- data ------------------------------------------------------------------------------
"$BUILD/unet-synth" --out "$WORK/raw" --count 48 --size 64 --seed 7 --threads 2 >"$WORK/synth.log" 2>&1 ||
  { cat "$WORK/synth.log"; fail "unet-synth failed"; }
jid="$(sbatch --parsable --job-name=unet-test-preprocess --cpus-per-task=2 --output="$WORK/job0.out" \
  --export="ALL,UNET_BIN=$BUILD,IMAGES=$WORK/raw/images,MASKS=$WORK/raw/annotations/trimaps,OUT=$WORK/data,SIZE=32,VAL=8,SHARDS=2" \
  "$SRC/jobs/preprocess.sbatch")" || fail "sbatch jobs/preprocess.sbatch failed"
jobs_submitted+=("$jid")
wait_job "$jid" 120
[ "$(job_field "$jid" JobState)" = COMPLETED ] || fail "preprocess job $jid ended $(job_field "$jid" JobState)"
grep -q "2 thread(s)" "$WORK/job0.out" || fail "preprocess job did not use its 2 cpus"
for f in train-00000-of-00002.h5 train-00001-of-00002.h5 val.h5; do
  [ -s "$WORK/data/$f" ] || fail "preprocess job wrote no $WORK/data/$f"
done
note "data ready (preprocess.sbatch, job $jid): 40 train + 8 val at 32x32 in $WORK/data"

submit() { # submit NAME EPOCHS: prints the job id
  sbatch --parsable --job-name="unet-test-$1" --ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 --time=10 \
    --output="$WORK/$1.out" \
    --export="ALL,UNET_BIN=$BUILD,DATA=$WORK/data,RUN=$WORK/$1,EPOCHS=$2,BATCH=8,LR=1e-3" \
    "$SRC/jobs/train.sbatch"
}

# ---- job 1: a short complete run -------------------------------------------------------
jid="$(submit job1 2)" || fail "sbatch jobs/train.sbatch failed"
jobs_submitted+=("$jid")
note "job1 = $jid (2 ranks, 2 epochs)"
wait_job "$jid" 180
[ "$(job_field "$jid" JobState)" = COMPLETED ] || fail "job1 $jid ended $(job_field "$jid" JobState)"
[ "$(job_field "$jid" ExitCode)" = 0:0 ] || fail "job1 $jid exit code $(job_field "$jid" ExitCode)"
grep -q "2 rank(s) x 1 thread(s)" "$WORK/job1.out" || fail "job1 did not run 2 MPI ranks with 1 thread each"
check_run "$WORK/job1" 2
note "job1 ok: COMPLETED 0:0, 2 epochs, weights and checkpoint written"

# ---- job 2: stopped by USR1, requeued, resumed ------------------------------------------
EPOCHS2=40
jid="$(submit job2 "$EPOCHS2")" || fail "sbatch jobs/train.sbatch failed"
jobs_submitted+=("$jid")
note "job2 = $jid (2 ranks, $EPOCHS2 epochs)"
t=$SECONDS
until [ -f "$WORK/job2/metrics.csv" ] && [ "$(wc -l <"$WORK/job2/metrics.csv")" -ge 4 ]; do
  [ $((SECONDS - t)) -lt 180 ] || fail "job2 did not finish 3 epochs in 180 s"
  state="$(job_field "$jid" JobState)"
  case "$state" in RUNNING|PENDING|CONFIGURING) ;; *) fail "job2 ended ($state) before it could be signalled" ;; esac
  sleep 0.5
done
# No --batch/--full: like --signal=USR1@120 this signals the job steps only, i.e. the
# unet-train ranks started by srun, not the batch shell.
scancel --signal=USR1 "$jid" || fail "scancel --signal=USR1 $jid failed"
note "sent SIGUSR1 to the steps of job2 after $(($(wc -l <"$WORK/job2/metrics.csv") - 1)) epochs"
wait_job "$jid" 400
state="$(job_field "$jid" JobState)"
[ "$state" = COMPLETED ] || fail "job2 $jid ended $state"
[ "$(job_field "$jid" ExitCode)" = 0:0 ] || fail "job2 $jid exit code $(job_field "$jid" ExitCode)"
restarts="$(job_field "$jid" Restarts)"
[ "${restarts:-0}" -ge 1 ] || fail "job2 $jid was not requeued (Restarts=$restarts)"
log="$WORK/job2.out"
# (unet-train logs "stop signal after step N" when the signal lands during training; one
# that lands during validation/checkpointing ends the epoch silently, so only the exit
# code is certain)
grep -q "tasks 0-1: Exited with exit code 3" "$log" || fail "the ranks did not both exit with code 3 (stopped by the signal)"
grep -q "requeueing (restart 1)" "$log" || fail "train.sbatch did not requeue on exit code 3"
grep -q "start 2: resuming from $WORK/job2/last.ckpt.h5" "$log" || fail "the restart did not resume from last.ckpt.h5"
! grep -q "batch shell got" "$log" || fail "the batch shell was signalled: expected the signal on the steps only"
check_run "$WORK/job2" "$EPOCHS2"
[ "$(tail -n 1 "$WORK/job2/metrics.csv" | cut -d, -f2)" = $((EPOCHS2 * 5)) ] ||
  fail "job2 ran $(tail -n 1 "$WORK/job2/metrics.csv" | cut -d, -f2) optimizer steps, expected $((EPOCHS2 * 5))"
grep -q "^done 0 step $((EPOCHS2 * 5)) epoch $EPOCHS2\$" "$WORK/job2/status" || fail "job2 RUN/status: $(cat "$WORK/job2/status")"
note "job2 ok: stopped by USR1, requeued (Restarts=$restarts), resumed, $EPOCHS2 epochs / $((EPOCHS2 * 5)) steps in metrics.csv"
# ---- job 3: scaling table ----------------------------------------------------------------
jid="$(sbatch --parsable --job-name=unet-test-scaling --ntasks=2 --cpus-per-task=1 --output="$WORK/job3.out" \
  --export="ALL,UNET_BIN=$BUILD,DATA=$WORK/data,OUT=$WORK/scaling,STEPS=2,REPEATS=1,BATCH_PER_RANK=4" \
  "$SRC/jobs/scaling.sbatch")" || fail "sbatch jobs/scaling.sbatch failed"
jobs_submitted+=("$jid")
wait_job "$jid" 180
[ "$(job_field "$jid" JobState)" = COMPLETED ] || fail "scaling job $jid ended $(job_field "$jid" JobState)"
table="$WORK/scaling/scaling.txt"
[ -s "$table" ] || fail "scaling job wrote no $table"
# rows "ranks global_batch images/s speedup efficiency": 1 rank at batch 4 is the
# reference (speedup 1.00), 2 ranks at batch 8 (weak scaling) with positive numbers
rows="$(grep -v '^#' "$table" | awk 'NR > 1 { printf "%s:%s ", $1, $2 }')"
[ "$rows" = "1:4 2:8 " ] || fail "scaling table rows (ranks:batch) are '$rows', expected '1:4 2:8 '"
awk '!/^#/ && $1 == 1 { exit !($3 > 0 && $4 == "1.00" && $5 == "1.00") }' "$table" || fail "bad 1-rank row in $table"
awk '!/^#/ && $1 == 2 { exit !($3 > 0 && $4 > 0 && $5 > 0) }' "$table" || fail "bad 2-rank row in $table"
note "scaling ok: $(awk '!/^#/ && $1 == 2 { print "2 ranks " $3 " img/s, efficiency " $5 }' "$table")"
echo "PASS: test_slurm ($((SECONDS - T0)) s)"
