#!/usr/bin/env bash
# The ISBI 2012 membrane set end to end, as a user with their own data would run it:
# preprocess the 30 EM images (0/255 masks, 512x512) at 128x128, a short training on 2
# ranks, unet-evaluate on the validation file (which must agree with the trainer's own
# validation of the same weights), and unet-predict --original-size at 512x512.
# Skips when the shared data folder (UNET_SHARED_DIR) is absent.
source "$(dirname "$0")/lib.sh"
isbi="${UNET_SHARED_DIR:-$SRC/../shared}/data/isbi-membrane"
if [ ! -d "$isbi/images" ] || [ ! -d "$isbi/masks" ]; then
  echo "SKIP: no ISBI membrane set at $isbi (set UNET_SHARED_DIR)"
  exit 77
fi

"$BUILD/unet-preprocess" --images "$isbi/images" --masks "$isbi/masks" --out em --size 128 --val 6 \
  --mask-threshold 128 2> pre.txt || fail "preprocess: $(cat pre.txt)"
grep -q "wrote 30 pairs to em: 24 train in 1 shard(s), 6 val; 128x128, 2 classes" pre.txt && pass "preprocess: $(grep wrote pre.txt)" \
  || fail "preprocess summary: $(cat pre.txt)"
# the same masks read as --mask-values 0,255 give the same shards (0/255 masks: the threshold is exact)
"$BUILD/unet-preprocess" --images "$isbi/images" --masks "$isbi/masks" --out em255 --size 128 --val 6 \
  --mask-values 0,255 2> /dev/null
cmp -s <(h5dump -d /masks em/val.h5 | tail -n +3) <(h5dump -d /masks em255/val.h5 | tail -n +3) \
  && pass "--mask-threshold 128 stores the same class ids as --mask-values 0,255" || fail "threshold and values disagree"

"${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data em --out run --epochs 3 --batch 8 --lr 1e-3 --threads 1 \
  --val-images 2 --quiet 2> train.txt || fail "train: $(cat train.txt)"
[ "$(wc -l < run/metrics.csv)" -eq 4 ] && pass "3 epochs of training: $(tail -1 run/metrics.csv | cut -d, -f1-5)" \
  || fail "metrics.csv: $(cat run/metrics.csv)"

# unet-evaluate on val.h5 with the final weights = the trainer's validation of them (--evaluate)
"$BUILD/unet-train" --data em --out run --resume --evaluate --batch 8 --threads 1 --quiet > trainer_eval.txt 2> trainer_eval_err.txt \
  || fail "unet-train --evaluate: $(cat trainer_eval_err.txt)"
"${MPIRUN[@]}" -np 2 "$BUILD/unet-evaluate" --weights run/last.ckpt.h5 --data em/val.h5 --out eval --threads 1 \
  > eval.txt 2> eval_err.txt || fail "unet-evaluate: $(cat eval_err.txt)"
read -r _ tl _ ta _ tm _ < trainer_eval.txt
read -r _ el _ ea _ em_ _ < eval.txt
if awk -v a="$tl" -v b="$el" -v c="$ta" -v d="$ea" -v e="$tm" -v f="$em_" \
   'BEGIN { exit !(a - b < 1e-6 && b - a < 1e-6 && c - d < 1e-6 && d - c < 1e-6 && e - f < 1e-6 && f - e < 1e-6) }'; then
  pass "unet-evaluate = unet-train --evaluate: loss $el, pixel accuracy $ea, mean IoU $em_"
else
  fail "evaluate ($(cat eval.txt)) differs from the trainer ($(cat trainer_eval.txt))"
fi
for f in metrics.csv per_class.csv confusion.csv confusion.png; do [ -s "eval/$f" ] || fail "no eval/$f"; done
awk -F, 'NR == 2 { exit !($3 == "\"moving\"" && $4 == 6 && $5 == 6 * 128 * 128) }' eval/metrics.csv \
  && pass "eval/metrics.csv: moving statistics, 6 samples, all 98304 pixels" || fail "eval/metrics.csv: $(cat eval/metrics.csv)"
# --bn-recalibrate: statistics from 3 batches of 8 training samples; the same on 1 and 2 ranks
# (to float summation order), and not the moving statistics' numbers
for n in 1 2; do
  "${MPIRUN[@]}" -np $n "$BUILD/unet-evaluate" --weights run/last.ckpt.h5 --data em/val.h5 --out evr$n --bn-recalibrate 3 \
    --batch 8 --threads 1 --quiet > evr$n.txt 2> evr_err.txt || fail "evaluate --bn-recalibrate on $n: $(cat evr_err.txt)"
done
read -r _ r1 _ a1 _ < evr1.txt
read -r _ r2 _ a2 _ < evr2.txt
awk -v a="$r1" -v b="$r2" -v c="$el" 'BEGIN { d = a - b; if (d < 0) d = -d; e = a - c; if (e < 0) e = -e; exit !(d < 1e-4 * a && e > 1e-3) }' \
  && grep -q '"recalibrated over 3 x 8 training samples"' evr2/metrics.csv \
  && pass "--bn-recalibrate 3: loss $r1 (1 rank) / $r2 (2 ranks), accuracy $a1; moving statistics: $el" \
  || fail "--bn-recalibrate: $(cat evr1.txt) / $(cat evr2.txt) vs $(cat eval.txt)"

# predictions at the photos' own size: 512x512
"$BUILD/unet-predict" --weights run/best.weights.h5 --out pred --original-size "$isbi/images/0.png" "$isbi/images/7.png" \
  --threads 1 2> pred.txt || fail "predict: $(cat pred.txt)"
size=$(od -An -tu1 -j16 -N8 pred/7_mask.png | awk '{printf "%dx%d", $3*256+$4, $7*256+$8}')
[ "$size" = 512x512 ] && [ -s pred/0_overlay.png ] && pass "predict --original-size: masks and overlays at 512x512" \
  || fail "predict output size $size: $(ls pred)"
finish
