#!/usr/bin/env bash
# Failures end the whole job promptly with a message naming the rank and the
# cause: never a hang, never a silent wrong answer.
source "$(dirname "$0")/lib.sh"
make_data data 40 32 8 2

expect_failure() { # expect_failure NAME PATTERN CMD...: non-zero exit within 60 s, message matches
  local name=$1 pattern=$2; shift 2
  local rc=0
  timeout 60 "$@" > out.txt 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then fail "$name: succeeded"; return; fi
  if [ $rc -eq 124 ]; then fail "$name: hung (killed after 60 s)"; return; fi
  if grep -qE "$pattern" out.txt; then pass "$name (exit $rc): $(grep -E "$pattern" out.txt | head -1)"
  else fail "$name: message does not match '$pattern': $(head -5 out.txt)"; fi
}

echo "garbage" > bad.weights.h5
expect_failure "bad weights file on 2 ranks" "rank 0.*bad.weights.h5" \
  "${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data data --out r1 --init-weights bad.weights.h5 --threads 1
cp -r data broken
truncate -s 20000 broken/train-00001-of-00002.h5
expect_failure "truncated shard" "train-00001-of-00002.h5" \
  "${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data broken --out r2 --threads 1
expect_failure "missing data directory" "nowhere" "$BUILD/unet-train" --data nowhere --out r3
expect_failure "srun without PMI (SLURM_NTASKS mismatch)" "SLURM_NTASKS=2" \
  env SLURM_NTASKS=2 "$BUILD/unet-train" --data data --out r4 --threads 1
expect_failure "more ranks than samples per batch" "global batch 2 is smaller than the 3 ranks" \
  "${MPIRUN[@]}" -np 3 "$BUILD/unet-train" --data data --out r5 --batch 2 --threads 1
expect_failure "diverging loss" "loss is (NaN|infinite) at step [0-9]+" \
  "$BUILD/unet-train" --data data --out r6 --batch 8 --lr 1e12 --epochs 3 --threads 1
expect_failure "unknown option" "unknown or incomplete option '--bogus'" "$BUILD/unet-train" --data data --out r7 --bogus
expect_failure "resume without a checkpoint" "last.ckpt.h5" "$BUILD/unet-train" --data data --out r8 --resume
finish
