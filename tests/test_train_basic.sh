#!/usr/bin/env bash
# unet-train on one process: the loss falls on synthetic data, the run
# directory has what the README promises, --val 0 and --steps behave, and
# unet-predict writes masks, overlays and probabilities.
source "$(dirname "$0")/lib.sh"
make_data data 96 32 16 2
make_data noval 64 32 0 1

"$BUILD/unet-train" --data data --out run --epochs 4 --batch 8 --lr 1e-3 --threads 1 --quiet
l1=$(csv_col run/metrics.csv 1 train_loss); l4=$(csv_col run/metrics.csv 4 train_loss)
awk -v a="$l1" -v b="$l4" 'BEGIN{exit !(b < 0.7 * a)}' && pass "training loss falls: $l1 -> $l4" || fail "loss did not fall enough: $l1 -> $l4"
[ "$(wc -l < run/metrics.csv)" -eq 5 ] && pass "metrics.csv has 4 epoch rows" || fail "metrics.csv rows: $(cat run/metrics.csv)"
head -1 run/metrics.csv | grep -q "epoch,step,train_loss,val_loss,val_accuracy,iou_0,iou_1,iou_2,mean_iou,images_per_s" \
  && pass "metrics.csv header" || fail "metrics.csv header: $(head -1 run/metrics.csv)"
[ -f run/best.weights.h5 ] && [ -f run/last.ckpt.h5 ] && pass "best.weights.h5 and last.ckpt.h5" || fail "missing weights files"
[ "$(ls run/predictions/*.png | wc -l)" -eq 4 ] && pass "4 prediction PNGs" || fail "prediction PNGs: $(ls run/predictions)"
ls run | grep -q tmp && fail "temporary files left: $(ls run)" || pass "no temporary files left"
grep -q ">4 epochs; best epoch" run/curves.svg && pass "curves.svg: $(grep -o '4 epochs; best epoch [0-9]*' run/curves.svg)" \
  || fail "curves.svg: $(ls run)"

# --bn-recalibrate: validation with recomputed BN statistics, training untouched
"$BUILD/unet-train" --data data --out runr --epochs 4 --batch 8 --lr 1e-3 --threads 1 --quiet --bn-recalibrate 3
out=$("$BUILD/compare-h5" runr/last.ckpt.h5 run/last.ckpt.h5 --exact) && pass "--bn-recalibrate leaves training as Keras: $out" \
  || fail "--bn-recalibrate changed training: $out"
if "$BUILD/compare-h5" runr/best.weights.h5 run/best.weights.h5 --exact > /dev/null 2>&1; then
  fail "--bn-recalibrate: best weights carry the same BN statistics"
else
  pass "--bn-recalibrate: val_loss $(csv_col runr/metrics.csv 4 val_loss) (Keras statistics: $(csv_col run/metrics.csv 4 val_loss)), best weights carry the recomputed statistics"
fi

# --val 0: no validation, no best weights, still a checkpoint
"$BUILD/unet-train" --data noval --out run0 --epochs 1 --batch 8 --threads 1 --quiet
[ -f run0/last.ckpt.h5 ] && [ ! -f run0/best.weights.h5 ] && pass "--val 0 keeps only last.ckpt.h5" || fail "--val 0 outputs: $(ls run0)"
grep -q "no validation data" run0/curves.svg && pass "--val 0: curves.svg of the training loss" || fail "--val 0 curves: $(ls run0)"
# every row has the header's fields, images_per_s in its column (it was one field early without validation)
awk -F, 'NR == 1 { n = NF; for (i = 1; i <= NF; i++) if ($i == "images_per_s") c = i; next }
         NF != n || $c + 0 <= 1 || $(c - 1) != "" { bad = 1 } END { exit bad }' run0/metrics.csv &&
  pass "--val 0: metrics.csv rows have the header's columns" || fail "--val 0 metrics.csv: $(cat run0/metrics.csv)"

# --steps N stops after step N with a checkpoint
"$BUILD/unet-train" --data data --out runs --epochs 10 --batch 8 --threads 1 --steps 3 --quiet
[ -f runs/last.ckpt.h5 ] && [ "$(wc -l < runs/metrics.csv)" -eq 1 ] && pass "--steps 3 ends mid-epoch with a checkpoint" \
  || fail "--steps outputs: $(ls runs)"

# unet-predict on the original images (any size, decoded by content)
imgs=(data.raw/images/synth_0000[1-3].jpg)
"$BUILD/unet-predict" --weights run/best.weights.h5 --out pred --size 32 --probs pred/probs.h5 "${imgs[@]}" 2>/dev/null
[ "$(ls pred/*_mask.png | wc -l)" -eq 3 ] && [ "$(ls pred/*_overlay.png | wc -l)" -eq 3 ] && pass "predict writes masks and overlays" \
  || fail "predict outputs: $(ls pred)"
if command -v h5ls >/dev/null; then
  h5ls pred/probs.h5 | grep -q "probs  *Dataset {3, 32, 32, 3}" && pass "probs.h5 is [3,32,32,3]" || fail "probs.h5: $(h5ls pred/probs.h5)"
fi
# a bad image stops predict before any output
echo "not an image" > bad.jpg
if "$BUILD/unet-predict" --weights run/best.weights.h5 --out pred2 --size 32 "${imgs[0]}" bad.jpg 2> err.txt; then
  fail "predict accepted a bad image"
else
  grep -q "bad.jpg" err.txt && [ -z "$(ls pred2 2>/dev/null)" ] && pass "bad image named, no output: $(cat err.txt)" \
    || fail "bad image message/output: $(cat err.txt); $(ls pred2)"
fi
# a weights file for another class count is refused with names and shapes
if "$BUILD/unet-predict" --weights run/best.weights.h5 --classes 5 --out pred3 --size 32 "${imgs[0]}" 2> err.txt; then
  fail "predict accepted a wrong class count"
else
  grep -q "conv2d_8" err.txt && pass "wrong class count: $(cat err.txt)" || fail "wrong class count message: $(cat err.txt)"
fi
finish
