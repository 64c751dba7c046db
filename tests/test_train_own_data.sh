#!/usr/bin/env bash
# unet-train on users' own data: the shards' ignored pixels (here the trimaps' border band,
# preprocessed with --ignore-value 3) and --class-weights. The mean loss runs over the counted
# pixels of the global batch (one allreduce of the count per step), so the gradient is the same
# on 1, 2 and 3 ranks; validation and unet-evaluate leave the ignored pixels out alike.
source "$(dirname "$0")/lib.sh"
"$BUILD/unet-synth" --out raw --count 40 --seed 7 --size 48 > /dev/null 2>&1
"$BUILD/unet-preprocess" --images raw/images --masks raw/annotations/trimaps --out data --size 64 --val 8 --shards 3 \
  --mask-values 1,2 --ignore-value 3 2> pre.txt || fail "preprocess: $(cat pre.txt)"
grep -q "ignore value 3:" pre.txt && pass "preprocess: $(grep 'ignore value' pre.txt)" || fail "no ignore summary: $(cat pre.txt)"
B=12
grad() { # grad NAME RANKS [options]
  local name=$1 n=$2; shift 2
  "${MPIRUN[@]}" -np "$n" "$BUILD/unet-train" --data data --batch $B --max-train $B --threads 1 --dump-gradients "$name.h5" \
    --quiet "$@" 2> "$name.err" || fail "$name on $n ranks: $(cat "$name.err")"
}
for n in 1 2 3; do grad ign$n $n; done
for n in 2 3; do
  out=$("$BUILD/compare-h5" ign$n.h5 ign1.h5 --rtol 1e-5 --atol 1e-6) && pass "ignored pixels: $n ranks = 1 rank: $out" \
    || fail "ignored pixels: $n ranks differ from 1: $out"
done
# class weights: printed, rank-count independent, and they change the gradient
grad cw1 1 --class-weights auto
grad cw2 2 --class-weights auto
out=$("$BUILD/compare-h5" cw2.h5 cw1.h5 --rtol 1e-5 --atol 1e-6) && pass "--class-weights auto: 2 ranks = 1 rank: $out" \
  || fail "--class-weights auto: 2 ranks differ: $out"
if "$BUILD/compare-h5" cw1.h5 ign1.h5 --rtol 1e-3 --atol 1e-6 > /dev/null 2>&1; then fail "class weights changed nothing"
else pass "class weights change the gradient"; fi
"$BUILD/unet-train" --data data --batch $B --max-train $B --threads 1 --dump-gradients cwq.h5 --class-weights auto 2> cw.txt
line=$(grep "class weights (median frequency of the training data):" cw.txt) || fail "no class weights line: $(cat cw.txt)"
# two classes: the median is the mean of the two frequencies, so one weight is above 1 and one below
echo "$line" | awk '{ a = $(NF-1); b = $NF; exit !((a > 1 && b < 1) || (a < 1 && b > 1)) }' && pass "$line" \
  || fail "weights not balanced around 1: $line"
# an explicit list, its class count checked
grad cwl 1 --class-weights 1,1
out=$("$BUILD/compare-h5" cwl.h5 ign1.h5 --exact) && pass "--class-weights 1,1 = no weights, bit for bit" || fail "--class-weights 1,1: $out"
rc=0; "$BUILD/unet-train" --data data --out x1 --class-weights 1,2,3 --threads 1 2> err.txt || rc=$?
[ $rc = 1 ] && grep -q "gives 3 weights, but the data has 2 classes" err.txt && pass "wrong weight count: exit 1" || fail "weight count: $rc $(cat err.txt)"
rc=0; "$BUILD/unet-train" --data data --out x2 --class-weights heavy 2> err.txt || rc=$?
[ $rc = 2 ] && grep -q "neither auto nor a list" err.txt && pass "--class-weights heavy: exit 2" || fail "bad weights: $rc $(cat err.txt)"

# a short run; unet-evaluate of its last weights = its last validation row (ignored pixels out of both)
"${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data data --out run --epochs 2 --batch 8 --lr 1e-3 --threads 1 --quiet \
  --class-weights auto 2> train.txt || fail "train: $(cat train.txt)"
"$BUILD/unet-evaluate" --weights run/last.ckpt.h5 --data data/val.h5 --out ev --threads 1 --quiet > ev.txt 2> ev.err \
  || fail "evaluate: $(cat ev.err)"
vl=$(csv_col run/metrics.csv 2 val_loss); va=$(csv_col run/metrics.csv 2 val_accuracy)
read -r _ el _ ea _ < ev.txt
awk -v a="$vl" -v b="$el" -v c="$va" -v d="$ea" 'BEGIN { exit !(a - b < 2e-6 && b - a < 2e-6 && c - d < 2e-6 && d - c < 2e-6) }' \
  && pass "unet-evaluate = the trainer's validation (unweighted, ignored pixels out): val_loss $vl, accuracy $va" \
  || fail "evaluate $el/$ea vs metrics.csv $vl/$va"
counted=$(awk -F, 'NR == 2 { print $5 }' ev/metrics.csv)
[ "$counted" -lt $((8 * 64 * 64)) ] && [ "$counted" -gt 0 ] && pass "evaluate counted $counted of $((8 * 64 * 64)) pixels (the band left out)" \
  || fail "counted pixels: $counted"
finish
