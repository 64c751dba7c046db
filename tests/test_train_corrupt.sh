#!/usr/bin/env bash
# Data that cannot rot silently, end to end: a flipped byte inside one image
# chunk of a shard (Fletcher-32) and inside the weights of a checkpoint or a
# weights file (CRC-32 of the arenas) ends the job with exit 1 and a message
# naming the file (and the sample), within 60 s, without writing anything.
source "$(dirname "$0")/lib.sh"
make_data data 24 32 8 2

# flip_byte FILE DATASET [INDEX]: xor 0xff into a byte in the middle of the stored data
flip_byte() {
  local off size
  read -r off size < <("$BUILD/h5-data-offset" "$1" "$2" "${3:-0}")
  local at=$((off + size / 2))
  local old
  old=$(od -An -tu1 -j "$at" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((old ^ 255)))" | dd of="$1" bs=1 seek="$at" conv=notrunc status=none
}

# run_failing NAME PATTERN CMD...: exit 1 within 60 s, a line of the output matches PATTERN
run_failing() {
  local name=$1 pattern=$2; shift 2
  local rc=0
  timeout 60 "$@" > out.txt 2>&1 || rc=$?
  if [ $rc -eq 124 ]; then fail "$name: hung (killed after 60 s)"
  elif [ $rc -ne 1 ]; then fail "$name: exit $rc, want 1: $(head -5 out.txt)"
  elif grep -qE "$pattern" out.txt; then pass "$name (exit 1): $(grep -E "$pattern" out.txt | head -1)"
  else fail "$name: no line matches '$pattern': $(head -5 out.txt)"; fi
}

# 1. a shard with one corrupt image: sample 3 of the second training shard
cp -r data bad
flip_byte bad/train-00001-of-00002.h5 /images 3
cmp -s data/train-00001-of-00002.h5 bad/train-00001-of-00002.h5 && fail "the flip changed nothing"
run_failing "corrupt image chunk, 2 ranks" \
  "bad/train-00001-of-00002.h5: sample 3 \('[^']+'\) is corrupt: its /images chunk fails the Fletcher-32 checksum" \
  "${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data bad --out r1 --batch 4 --epochs 1 --threads 1
# nothing half-written: no weights, no checkpoint, no temporary, no metrics row
found=$(find r1 -name '*.h5*' 2>/dev/null | wc -l)
[ "$found" -eq 0 ] && pass "no .h5 file or temporary in the run folder" || fail "run folder holds: $(ls r1)"
rows=$(wc -l < r1/metrics.csv 2>/dev/null || echo 0)
[ "$rows" -le 1 ] && pass "metrics.csv has no epoch row ($rows line)" || fail "metrics.csv has $rows lines"
# the step the bad sample is met at depends on the shuffle; the epoch is the first
grep -qE '^failed 1 step [0-9]+ epoch 0$' r1/status 2>/dev/null && pass "RUN/status: $(cat r1/status)" ||
  fail "RUN/status is '$(cat r1/status 2>/dev/null)', want 'failed 1 step N epoch 0'"

# a corrupt mask in the validation shard (read by the evaluation pass)
cp -r data badval
flip_byte badval/val.h5 /masks 5
run_failing "corrupt validation mask, 1 rank" \
  "badval/val.h5: sample 5 \('[^']+'\) is corrupt: its /masks chunk fails the Fletcher-32 checksum" \
  "$BUILD/unet-train" --data badval --out r2 --batch 4 --epochs 1 --threads 1

# 2. a checkpoint and a weights file with one flipped byte in a kernel
timeout 300 "$BUILD/unet-train" --data data --out run --batch 4 --epochs 1 --threads 1 > train.txt 2>&1 ||
  fail "clean training failed: $(tail -3 train.txt)"
cp run/last.ckpt.h5 good.ckpt.h5
flip_byte run/last.ckpt.h5 /layers/conv2d_3/vars/0
cp run/last.ckpt.h5 flipped.ckpt.h5
ls -l --time-style=+%s.%N run > before.txt
run_failing "corrupt checkpoint on --resume, 2 ranks" \
  "run/last.ckpt.h5: is corrupt: the layer weights read from it have CRC-32 0x[0-9a-f]{8}, but the file's unet_crc32_params says 0x[0-9a-f]{8}" \
  "${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data data --out run --resume --epochs 2 --batch 4 --threads 1
ls -l --time-style=+%s.%N run > after.txt
cmp -s before.txt after.txt && pass "the run folder is untouched" || fail "the run folder changed: $(diff before.txt after.txt)"
cmp -s flipped.ckpt.h5 run/last.ckpt.h5 && pass "last.ckpt.h5 left as it was" || fail "last.ckpt.h5 was rewritten"

cp run/best.weights.h5 bad.weights.h5
flip_byte bad.weights.h5 /layers/batch_normalization_2/vars/2
run_failing "corrupt BatchNorm statistics in --init-weights" \
  "bad.weights.h5: is corrupt: the BatchNorm statistics read from it have CRC-32" \
  "$BUILD/unet-train" --data data --out r3 --init-weights bad.weights.h5 --epochs 1 --batch 4 --threads 1
[ ! -e r3/last.ckpt.h5 ] && pass "no checkpoint written from corrupt weights" || fail "r3/last.ckpt.h5 exists"

cp good.ckpt.h5 adam.ckpt.h5
flip_byte adam.ckpt.h5 /optimizer/vars/9
mkdir -p r4 && cp adam.ckpt.h5 r4/last.ckpt.h5
run_failing "corrupt Adam moment on --resume" \
  "r4/last.ckpt.h5: is corrupt: the Adam moments \(m, v\) read from it have CRC-32" \
  "$BUILD/unet-train" --data data --out r4 --resume --epochs 2 --batch 4 --threads 1

# the untouched copy resumes (the checksums of a good file agree)
mkdir -p r5 && cp good.ckpt.h5 r5/last.ckpt.h5
if timeout 300 "$BUILD/unet-train" --data data --out r5 --resume --epochs 2 --batch 4 --threads 1 > ok.txt 2>&1 &&
   [ "$(csv_col r5/metrics.csv 2 epoch)" = 2 ]; then pass "the intact checkpoint resumes to epoch 2"
else fail "the intact checkpoint did not resume: $(tail -3 ok.txt)"; fi
finish
