#!/usr/bin/env bash
# Crash-safe training: a run stopped after epoch k (or mid-epoch, or by
# SIGUSR1/SIGTERM) and resumed ends with the same weights, bit for bit, as one
# that never stopped (same rank count); kill -9 at any moment, even during a
# checkpoint write, leaves last.ckpt.h5 loadable.
source "$(dirname "$0")/lib.sh"
make_data data 56 32 8 2
TRAIN=("${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data data --batch 8 --lr 1e-3 --threads 1 --quiet)

"${TRAIN[@]}" --out straight --epochs 4
# stopped after epoch 2, resumed to 4
"${TRAIN[@]}" --out split --epochs 2
"${TRAIN[@]}" --out split --epochs 4 --resume
out=$("$BUILD/compare-h5" split/last.ckpt.h5 straight/last.ckpt.h5 --exact) && pass "resume after epoch 2: $out" || fail "resume after epoch 2: $out"
[ "$(wc -l < split/metrics.csv)" -eq 5 ] && pass "metrics.csv continues: 4 epoch rows" || fail "metrics.csv: $(cat split/metrics.csv)"
out=$("$BUILD/compare-h5" split/best.weights.h5 straight/best.weights.h5 --exact) && pass "same best weights" || fail "best weights differ: $out"
cmp -s split/curves.svg straight/curves.svg && pass "the resumed run's curves.svg equals the straight run's" \
  || fail "curves.svg differs after resume"

# stopped mid-epoch by --steps, resumed
"${TRAIN[@]}" --out mid --epochs 4 --steps 9
"${TRAIN[@]}" --out mid --epochs 4 --resume
out=$("$BUILD/compare-h5" mid/last.ckpt.h5 straight/last.ckpt.h5 --exact) && pass "resume mid-epoch (step 9): $out" || fail "resume mid-epoch: $out"

total=$(h5_scalar straight/last.ckpt.h5 /train/step) # steps of the 4-epoch reference run
spe=$((total / 4))                                  # steps per epoch at batch 8

# a resumed run continues the checkpoint's seed and batch unless given, and
# records what it uses: /train/seed drives the data order, so a resume without
# --seed of a --seed 5 run ends bit-identical to the uninterrupted one
"${TRAIN[@]}" --out seed5 --epochs 3 --seed 5
"${TRAIN[@]}" --out seed5r --epochs 1 --seed 5
"${TRAIN[@]}" --out seed5r --epochs 3 --resume
[ "$(h5_scalar seed5r/last.ckpt.h5 /train/seed)" = 5 ] && [ "$(h5_scalar seed5r/last.ckpt.h5 /train/global_batch)" = 8 ] \
  && pass "resume without --seed/--batch records the checkpoint's seed 5 and batch 8" \
  || fail "resumed run records seed $(h5_scalar seed5r/last.ckpt.h5 /train/seed), batch $(h5_scalar seed5r/last.ckpt.h5 /train/global_batch)"
out=$("$BUILD/compare-h5" seed5r/last.ckpt.h5 seed5/last.ckpt.h5 --exact) && pass "resume uses the checkpoint's seed for the data order: $out" \
  || fail "resume without --seed changed the data order: $out"
if "$BUILD/compare-h5" seed5/last.ckpt.h5 straight/last.ckpt.h5 --exact > /dev/null 2>&1; then
  fail "--seed 5 trains like the default seed: the comparison above proves nothing"
fi
# given on the command line, a new batch and seed replace the checkpoint's (with a warning) and are recorded
"${TRAIN[@]}" --out seed5r --epochs 4 --resume --batch 4 --seed 9 2> change.log
[ "$(h5_scalar seed5r/last.ckpt.h5 /train/seed)" = 9 ] && [ "$(h5_scalar seed5r/last.ckpt.h5 /train/global_batch)" = 4 ] \
  && pass "resume with --batch 4 --seed 9 records batch 4 and seed 9" \
  || fail "resume with new options records seed $(h5_scalar seed5r/last.ckpt.h5 /train/seed), batch $(h5_scalar seed5r/last.ckpt.h5 /train/global_batch)"
grep -q "global batch 8 at batch 4" change.log && grep -q "seed 5 at seed 9" change.log \
  && pass "the changes are warned about" || fail "no warning about the changed batch/seed: $(cat change.log)"
[ "$(h5_scalar seed5r/last.ckpt.h5 /train/step)" = $((3 * spe + 2 * spe)) ] && pass "epoch 4 ran $((2 * spe)) steps of batch 4" \
  || fail "steps after the batch change: $(h5_scalar seed5r/last.ckpt.h5 /train/step), want $((3 * spe + 2 * spe))"

# SIGUSR1 (SLURM's pre-timeout signal) through mpirun: checkpoint at the next step, exit 3.
# Sent as soon as the first checkpoint (end of epoch 1) exists, so the stop lands within
# the reference run's steps and the resumed run can be compared with it.
"${TRAIN[@]}" --out sig --epochs 40 > sig.log 2>&1 &
pid=$!
for _ in $(seq 1000); do [ -f sig/last.ckpt.h5 ] && break; sleep 0.01; done
kill -USR1 $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 3 ] && pass "SIGUSR1: exit code 3" || fail "SIGUSR1: exit code $rc: $(cat sig.log)"
grep -q "stop signal after step" sig.log && pass "SIGUSR1: $(grep 'stop signal' sig.log | head -1)" || fail "no stop message: $(cat sig.log)"
stopped_at=$(grep -o "after step [0-9]*" sig.log | head -1 | grep -o "[0-9]*$")
grep -q "^stopped 3 step ${stopped_at:-x} " sig/status && pass "SIGUSR1: RUN/status says $(cat sig/status)" || fail "SIGUSR1: RUN/status: $(cat sig/status)"
if [ "${stopped_at:-999999}" -lt "$total" ]; then
  rc=0; "${TRAIN[@]}" --out sig --epochs 4 --resume 2> sig-resume.log || rc=$?
  [ $rc -eq 0 ] || fail "resume after SIGUSR1 exited $rc: $(cat sig-resume.log)"
  out=$("$BUILD/compare-h5" sig/last.ckpt.h5 straight/last.ckpt.h5 --exact) && pass "resume after SIGUSR1 at step $stopped_at: $out" \
    || fail "resume after SIGUSR1: $out"
else
  fail "the SIGUSR1 stop landed at step ${stopped_at:-?}, not within the $total steps of the reference run"
fi

# SIGTERM to mpirun itself: Open MPI ends the job its own way (SIGCONT to the ranks, SIGTERM
# odls_base_sigkill_timeout = 1 s later, SIGKILL 1 s after that) and exits 1 whatever the ranks
# did. The ranks (short steps here) still stop at a step boundary with a checkpoint, and
# RUN/status says so: that, not mpirun's exit code, is what a wrapper reads (README, Faults).
"${TRAIN[@]}" --out mterm --epochs 40 > mterm.log 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f mterm/last.ckpt.h5 ] && break; sleep 0.1; done
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 1 ] && pass "SIGTERM to mpirun: mpirun exits 1 (as the README says)" || fail "SIGTERM to mpirun: exit code $rc (README says 1)"
if grep -q "^stopped 3 step [0-9]* epoch [0-9]*$" mterm/status; then
  pass "SIGTERM to mpirun: RUN/status says $(cat mterm/status)"
  # on a loaded machine the stop can land after the reference's 4 epochs: then
  # resume to the end of the stop's epoch and compare with a reference that long
  stop_epoch=$(awk '{print $6}' mterm/status)
  ref=straight ref_epochs=4
  if [ "$stop_epoch" -ge 4 ]; then
    ref_epochs=$((stop_epoch + 1)) ref=straight_mterm
    "${TRAIN[@]}" --out $ref --epochs $ref_epochs
  fi
  "${TRAIN[@]}" --out mterm --epochs $ref_epochs --resume && out=$("$BUILD/compare-h5" mterm/last.ckpt.h5 $ref/last.ckpt.h5 --exact) \
    && pass "resume after SIGTERM to mpirun (to epoch $ref_epochs): $out" || fail "resume after SIGTERM to mpirun: ${out:-unet-train failed}"
else
  fail "SIGTERM to mpirun: RUN/status: $(cat mterm/status 2>&1); log: $(tail -3 mterm.log)"
fi

# SIGTERM to a single process behaves the same
"$BUILD/unet-train" --data data --batch 8 --threads 1 --quiet --out term --epochs 40 > term.log 2>&1 &
pid=$!
for _ in $(seq 1000); do [ -f term/last.ckpt.h5 ] && break; sleep 0.01; done
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 3 ] && [ -f term/last.ckpt.h5 ] && grep -q "^stopped 3 " term/status && pass "SIGTERM: exit code 3 with a checkpoint, RUN/status $(cat term/status)" \
  || fail "SIGTERM: exit code $rc: $(cat term.log) status $(cat term/status)"

# kill -9 while checkpoints are written every ~0.3 s: every other kill at a random
# moment, the others the instant a temporary (a write in progress) appears, so some
# kills surely interrupt a write; last.ckpt.h5 must load after every one.
make_data tiny 24 32 4 1
# a first checkpoint, so every kill below interrupts a run that resumes from one
"$BUILD/unet-train" --data tiny --batch 4 --threads 1 --quiet --out k9 --epochs 1
hits=0
for i in $(seq 12); do
  "$BUILD/unet-train" --data tiny --batch 4 --threads 1 --quiet --out k9 --epochs 1000 --resume > /dev/null 2>&1 &
  pid=$!
  if [ $((i % 2)) -eq 1 ]; then
    sleep "$((RANDOM % 2)).$((RANDOM % 10))"
  else
    # spin until this process has a write in progress (NAME.tmp.<pid>)
    end=$((SECONDS + 20))
    while ! compgen -G "k9/*.tmp.$pid" > /dev/null && [ $SECONDS -lt $end ]; do :; done
  fi
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  compgen -G "k9/*.tmp.$pid" > /dev/null && hits=$((hits + 1))
  "$BUILD/unet-train" --data tiny --out k9 --resume --evaluate --batch 4 --threads 1 --quiet > /dev/null 2> k9.err \
    || fail "after kill -9 #$i last.ckpt.h5 does not load: $(cat k9.err)"
done
[ $hits -ge 1 ] && pass "kill -9 x12 ($hits during a write): last.ckpt.h5 always loadable" \
  || fail "no kill -9 hit a write in progress: the test did not test it"
# the next start removes the leftovers of the killed writes
"$BUILD/unet-train" --data tiny --batch 4 --threads 1 --quiet --out k9 --epochs 1000 --resume --steps 1 > /dev/null 2> k9.err \
  || fail "resume after the kills: $(cat k9.err)"
compgen -G "k9/*.tmp.*" > /dev/null && fail "temporaries left after a resume: $(ls k9)" || pass "a resume removes the killed writes' temporaries"
finish
