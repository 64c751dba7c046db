#!/usr/bin/env bash
# What a newcomer meets on the command line: one exit-code and usage convention for
# every tool, the refusal to overwrite a run folder, unet-predict's argument order,
# training size, duplicate stems and full disk, --size checked where it is typed,
# no empty output folders after a failure, and the misleading messages fixed.
source "$(dirname "$0")/lib.sh"

# expect CODE NAME PATTERN CMD...: exit code CODE and stderr matching PATTERN
expect() {
  local want=$1 name=$2 pattern=$3; shift 3
  local rc=0
  "$@" > out.txt 2> err.txt || rc=$?
  if [ "$rc" -ne "$want" ]; then fail "$name: exit $rc, want $want: $(head -3 err.txt)"; return; fi
  if grep -qE -- "$pattern" err.txt; then pass "$name (exit $rc): $(grep -E -- "$pattern" err.txt | head -1)"
  else fail "$name: stderr does not match '$pattern': $(head -3 err.txt)"; fi
}
absent() { if [ -e "$1" ]; then fail "$2: $1 exists: $(ls -la "$1")"; else pass "$2: no $1 left"; fi; }

make_data data 40 32 8 2

# ---- one convention: 2 and the bad option named, for every tool -----------------------
for tool in unet-synth unet-preprocess unet-train unet-predict; do
  expect 2 "$tool unknown option" "error: unknown( or incomplete)? option '--bogus' \(see $tool --help\)" \
    "$BUILD/$tool" --bogus 1
  "$BUILD/$tool" --help > help.txt 2>&1 && grep -q "exit codes: 0" help.txt && pass "$tool --help: exit 0, lists exit codes" \
    || fail "$tool --help: $(head -3 help.txt)"
done
expect 2 "unet-synth missing value" "error: --count needs a value" "$BUILD/unet-synth" --out s --count
expect 2 "unet-synth bad value" "error: --count 0: want an integer" "$BUILD/unet-synth" --out s --count 0
expect 2 "unet-preprocess missing required" "error: --images, --masks and --out are required" \
  "$BUILD/unet-preprocess" --images data.raw/images
expect 2 "unet-train missing required" "error: --data and --out are required" "$BUILD/unet-train" --epochs 2
expect 2 "unet-predict no image" "error: no input image given" "$BUILD/unet-predict" --weights w.h5 --out p
absent s "usage errors"

# ---- unet-preprocess --size is checked where it is typed ------------------------------
expect 2 "--size 17" "error: --size 17: the model needs sides that are multiples of 16 .*nearest is 16x16" \
  "$BUILD/unet-preprocess" --images data.raw/images --masks data.raw/annotations/trimaps --out p17 --size 17
expect 2 "--size 160x100" "nearest is 160x96" \
  "$BUILD/unet-preprocess" --images data.raw/images --masks data.raw/annotations/trimaps --out p17 --size 160x100
absent p17 "--size 17"

# ---- no empty output folders after a failure ------------------------------------------
expect 1 "preprocess, missing images folder" "cannot read images directory nowhere" \
  "$BUILD/unet-preprocess" --images nowhere --masks data.raw/annotations/trimaps --out new/pp1 --size 32
absent new "preprocess, missing input"
expect 1 "preprocess, --val too large" "--val 40 needs more than 40 pairs, only 40 image/mask pairs found" \
  "$BUILD/unet-preprocess" --images data.raw/images --masks data.raw/annotations/trimaps --out new/pp2 --size 32 --val 40
absent new "preprocess, --val too large"
touch afile
expect 1 "preprocess, output under a file" "cannot write the output directory afile/x" \
  "$BUILD/unet-preprocess" --images data.raw/images --masks data.raw/annotations/trimaps --out afile/x --size 32
expect 1 "train, bad --init-weights" "nope.weights.h5: cannot open: No such file or directory" \
  "$BUILD/unet-train" --data data --out new/r1 --init-weights nope.weights.h5 --threads 1
absent new "train, bad --init-weights"
expect 1 "train, --resume without checkpoint" "last.ckpt.h5: cannot open" \
  "$BUILD/unet-train" --data data --out new/r2 --resume --threads 1
absent new "train, --resume without a checkpoint"

# ---- messages that said the wrong thing -----------------------------------------------
expect 1 "--init-weights given a data shard" "data/val.h5: is an HDF5 file but not a weights file.*unet-preprocess data shard" \
  "$BUILD/unet-train" --data data --out r3 --init-weights data/val.h5 --threads 1
expect 2 "--evaluate without weights" "--evaluate scores given weights: add --init-weights FILE or --resume" \
  "$BUILD/unet-train" --data data --evaluate --threads 1
expect 1 "predict, missing weights file" "--weights: nope.h5: cannot open: No such file or directory" \
  "$BUILD/unet-predict" --weights nope.h5 --out new/p data.raw/images/synth_00001.jpg
absent new "predict, missing weights"

# ---- an earlier run is never overwritten silently -------------------------------------
"$BUILD/unet-train" --data data --out run --epochs 1 --batch 8 --threads 1 --quiet
cp run/last.ckpt.h5 before.ckpt.h5
expect 2 "train into an earlier run" "run holds an earlier run \(run/last.ckpt.h5\): continue it with --resume, or replace it with --overwrite" \
  "$BUILD/unet-train" --data data --out run --epochs 1 --batch 8 --threads 1 --quiet
cmp -s run/last.ckpt.h5 before.ckpt.h5 && [ "$(wc -l < run/metrics.csv)" -eq 2 ] && pass "refused run left the folder untouched" \
  || fail "refused run changed the folder"
expect 2 "--resume with --overwrite" "--resume and --overwrite exclude each other" \
  "$BUILD/unet-train" --data data --out run --resume --overwrite
# --overwrite replaces it; a run without validation must not keep the old best weights or PNGs
make_data noval 24 32 0 1
"$BUILD/unet-train" --data noval --out run --epochs 1 --batch 8 --threads 1 --quiet --overwrite \
  && [ ! -e run/best.weights.h5 ] && [ -z "$(ls run/predictions 2>/dev/null)" ] && [ "$(wc -l < run/metrics.csv)" -eq 2 ] \
  && ! cmp -s run/last.ckpt.h5 before.ckpt.h5 && pass "--overwrite: a new run, nothing of the old one left: $(ls run)" \
  || fail "--overwrite: $(ls run run/predictions)"
# a start that never finished an epoch nor wrote a checkpoint is no earlier run (SLURM requeue)
mkdir hdr && head -1 run/metrics.csv > hdr/metrics.csv
"$BUILD/unet-train" --data data --out hdr --epochs 1 --batch 8 --threads 1 --quiet && pass "a header-only metrics.csv is not protected" \
  || fail "a header-only metrics.csv was refused"
grep -q "^done 0 step 4 epoch 1$" hdr/status && pass "RUN/status after a finished run: $(cat hdr/status)" || fail "RUN/status: $(cat hdr/status)"

# ---- unet-predict ---------------------------------------------------------------------
img1=data.raw/images/synth_00001.jpg; img2=data.raw/images/synth_00002.jpg
# options after the images, and the training size (32) from the weights file, not 160
"$BUILD/unet-predict" --weights run/last.ckpt.h5 "$img1" --out pred "$img2" --batch 1 2> err.txt \
  && python3 - pred/synth_00001_mask.png pred/synth_00002_overlay.png <<'PY' && pass "options after images; size 32x32 read from the weights file" || fail "predict: $(cat err.txt)"
import struct, sys
for p in sys.argv[1:]:
    with open(p, "rb") as f:
        head = f.read(24)
    w, h = struct.unpack(">II", head[16:24])
    assert (w, h) == (32, 32), (p, w, h)
PY
if command -v h5dump > /dev/null; then
  for f in hdr/best.weights.h5 run/last.ckpt.h5; do
    h5dump -a /unet_input_size "$f" | grep -q "(0): 32, 32" && pass "$f records unet_input_size 32, 32" \
      || fail "no unet_input_size in $f: $(h5dump -a /unet_input_size "$f" 2>&1 | head -5)"
  done
fi
expect 0 "--size overrides the recorded size" "trained at 32x32; predicting at 64x64" \
  "$BUILD/unet-predict" --weights run/last.ckpt.h5 --out pred64 --size 64 "$img1"
expect 2 "predict --size 50" "--size 50: the model needs sides that are multiples of 16" \
  "$BUILD/unet-predict" --weights run/last.ckpt.h5 --out pred50 --size 50 "$img1"
# -- ends the options: a file whose name starts with a dash
cp "$img1" ./-dash.jpg
expect 0 "-- then a file named -dash.jpg" "wrote 1 mask" "$BUILD/unet-predict" --weights run/last.ckpt.h5 --out pdash -- -dash.jpg
[ -f pdash/-dash_mask.png ] && pass "-dash_mask.png written" || fail "pdash: $(ls pdash)"
# two inputs with one stem are refused before anything is written
mkdir other && cp "$img2" other/synth_00001.jpg
expect 2 "duplicate stems" "$img1 and other/synth_00001.jpg have the same stem 'synth_00001'" \
  "$BUILD/unet-predict" --weights run/last.ckpt.h5 --out pdup "$img1" other/synth_00001.jpg
absent pdup "duplicate stems"
# a full disk (a file-size limit): one message, nothing left, no crash. (Open MPI's start-up
# writes shared-memory files larger than the limit: PMIx's hash store and the self BTL avoid them.)
export PMIX_MCA_gds=hash OMPI_MCA_btl=self
expect 1 "full disk during PNGs" "error: pfull/synth_0000[0-9]_overlay.png: .*nothing is left: removed the [0-9]+ file\(s\) this run had written" \
  sh -c "ulimit -f 4; exec '$BUILD/unet-predict' --weights run/last.ckpt.h5 --out pfull --size 128 data.raw/images/synth_0000[1-8].jpg"
[ "$(grep -c error err.txt)" -eq 1 ] && pass "full disk: one error line" || fail "full disk: $(grep -c error err.txt) error lines"
absent pfull "full disk during PNGs"
expect 1 "full disk writing probabilities" "error: pprobs/probs.h5: cannot write .*File too large; nothing is left: removed the 16 file\(s\)" \
  sh -c "ulimit -f 100; exec '$BUILD/unet-predict' --weights run/last.ckpt.h5 --out pprobs --probs pprobs/probs.h5 --size 128 data.raw/images/synth_0000[1-8].jpg"
absent pprobs "full disk writing probabilities"
unset PMIX_MCA_gds OMPI_MCA_btl

# ---- stale files of earlier runs ------------------------------------------------------
"$BUILD/unet-synth" --out syn --count 6 --size 32 > /dev/null 2>&1
"$BUILD/unet-synth" --out syn --count 3 --size 32 2> err.txt
[ "$(ls syn/images | wc -l)" -eq 3 ] && [ "$(ls syn/annotations/trimaps | wc -l)" -eq 3 ] && grep -q "removed 6 file" err.txt \
  && pass "unet-synth rerun with fewer pairs: $(grep removed err.txt)" || fail "unet-synth stale pairs: $(ls syn/images) $(cat err.txt)"
mkdir pst && (sleep 0.01 & echo $! > dead.pid; wait)
dead=$(cat dead.pid)
touch "pst/train-00000-of-00001.h5.tmp.$dead" "pst/val.h5.tmp.$dead" "pst/val.h5.tmp.$$" pst/mine.tmp.1
"$BUILD/unet-preprocess" --images syn/images --masks syn/annotations/trimaps --out pst --size 32 --val 1 2> err.txt
[ ! -e "pst/train-00000-of-00001.h5.tmp.$dead" ] && [ ! -e "pst/val.h5.tmp.$dead" ] && [ -e "pst/val.h5.tmp.$$" ] && [ -e pst/mine.tmp.1 ] \
  && pass "preprocess removed a killed run's temporaries, kept a live one's and foreign files" || fail "preprocess temporaries: $(ls pst)"

# ---- cmake --install puts every program in PREFIX/bin --------------------------------
if cmake --install "$BUILD" --prefix "$WORK/prefix" > install.log 2>&1; then
  for tool in unet-synth unet-preprocess unet-train unet-predict; do
    "$WORK/prefix/bin/$tool" --help > /dev/null 2>&1 && pass "installed $tool runs" || fail "installed $tool: $(ls "$WORK/prefix/bin")"
  done
else
  fail "cmake --install: $(tail -5 install.log)"
fi

# ---- train.sbatch checks its numbers before srun --------------------------------------
expect 1 "train.sbatch EPOCHS=abc" "EPOCHS must be a positive integer, not 'abc'" \
  env SLURM_JOB_ID=0 UNET_BIN="$BUILD" DATA=data RUN=sb EPOCHS=abc bash "$SRC/jobs/train.sbatch"
expect 1 "train.sbatch LR=fast" "LR must be a positive number such as 1e-4, not 'fast'" \
  env SLURM_JOB_ID=0 UNET_BIN="$BUILD" DATA=data RUN=sb LR=fast bash "$SRC/jobs/train.sbatch"
finish
