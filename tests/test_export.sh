#!/usr/bin/env bash
# unet-export: usage errors leave no file; the model declares opset 13, its
# input/output and metadata (decoded by protoc-c, not by our encoder); and ONNX
# Runtime (onnxruntime-node, installed into the build dir by
# tests/onnx/install_ort.sh) reproduces unet-predict --probs on real photos to
# 1e-4 with >= 99.9% of argmaxes equal: 160x160 fixed (float input), 96x128
# fixed, and one --dynamic --input uint8 model at both sizes. A model from
# other BatchNorm statistics must fail the same comparison. Skips the ONNX
# Runtime part (exit 77 after the other checks) where it cannot be installed.
source "$(dirname "$0")/lib.sh"
EXPORT="$BUILD/unet-export"
PROTO=/usr/include/onnx/onnx.proto

# weights with BatchNorm statistics that give unsaturated probabilities: one
# short epoch, best.weights.h5 carrying statistics recomputed over 2 batches
make_data data 48 32 16 1
"$BUILD/unet-train" --data data --out run --epochs 1 --batch 8 --lr 1e-3 --threads 1 --quiet --bn-recalibrate 2
W=run/best.weights.h5

# ---- usage and errors ---------------------------------------------------------
expect_fail() { # expect_fail CODE PATTERN OUT args...: exit code, message, and no OUT left
  local code=$1 pattern=$2 out=$3 rc=0
  shift 3
  "$EXPORT" "$@" 2> err.txt || rc=$?
  if [ $rc -eq "$code" ] && grep -q -- "$pattern" err.txt && ! ls "$out"* > /dev/null 2>&1; then
    pass "exit $code: $(head -1 err.txt)"
  else
    fail "unet-export $*: exit $rc (want $code), '$(cat err.txt)', files: $(ls "$out"* 2>/dev/null)"
  fi
}
expect_fail 2 "multiples of 16" bad.onnx --weights $W --out bad.onnx --size 100x100
expect_fail 2 "exclude each other" bad.onnx --weights $W --out bad.onnx --size 96 --dynamic
expect_fail 2 "neither float nor uint8" bad.onnx --weights $W --out bad.onnx --input int8
expect_fail 2 "usage" bad.onnx --out bad.onnx
expect_fail 1 "missing.h5" bad.onnx --weights missing.h5 --out bad.onnx
expect_fail 1 "cannot create" nodir/ --weights $W --out nodir/m.onnx
"$EXPORT" --help | grep -q "opset 13" && pass "--help" || fail "--help"

# ---- the models -----------------------------------------------------------------
"$EXPORT" --weights $W --out m160.onnx 2> /dev/null
"$EXPORT" --weights $W --out m96x128.onnx --size 96x128 2> /dev/null
"$EXPORT" --weights $W --out dyn.onnx --dynamic --input uint8 2> /dev/null
"$EXPORT" --weights run/last.ckpt.h5 --out keras-stats.onnx 2> /dev/null
ls ./*.tmp.* > /dev/null 2>&1 && fail "temporaries left: $(ls)" || pass "4 models written, no temporaries"

decode() { protoc-c --decode=onnx.ModelProto -I"$(dirname $PROTO)" "$PROTO" < "$1" | grep -v raw_data; }
meta() { # meta MODEL KEY: a metadata_props value
  decode "$1" | awk -v k="\"$2\"" '$1=="key:" && $2==k {getline; sub(/^ *value: "/, ""); sub(/"$/, ""); print}'
}
if command -v protoc-c > /dev/null && [ -f $PROTO ]; then
  decode m160.onnx > m160.txt
  grep -A2 "^opset_import" m160.txt | grep -q "version: 13" && grep -q "^ir_version: 7" m160.txt \
    && pass "opset 13, IR version 7" || fail "opset/IR: $(grep -A2 opset_import m160.txt)"
  [ "$(meta m160.onnx classes)" = 3 ] && [ "$(meta m160.onnx input_size)" = 160x160 ] \
    && [ "$(meta m160.onnx input_type)" = float32 ] && [ "$(meta dyn.onnx input_type)" = uint8 ] \
    && [ "$(meta m160.onnx source_weights)" = "$(realpath $W)" ] && [ "$(meta m160.onnx tool_version)" = "unet-export 0.1.0" ] \
    && meta dyn.onnx input_size | grep -q "^dynamic" \
    && pass "metadata: classes 3, input_size 160x160 / $(meta dyn.onnx input_size), source_weights, $(meta m160.onnx tool_version)" \
    || fail "metadata: $(grep -A2 metadata_props m160.txt)"
  n_bn=$(grep -c 'op_type: "BatchNormalization"' m160.txt)
  [ "$n_bn" -eq 15 ] && pass "15 BatchNormalization nodes (not folded)" || fail "$n_bn BatchNormalization nodes"
else
  fail "protoc-c or $PROTO missing (build dependencies)"
fi

# ---- ONNX Runtime against unet-predict ------------------------------------------
if [ -d "${UNET_SHARED_DIR:-$SRC/../shared}/data/pets/images" ]; then
  # four real pets across the breeds (Abyssinian_34.jpg is a GIF)
  mapfile -t photos < <(ls "${UNET_SHARED_DIR:-$SRC/../shared}"/data/pets/images/*.jpg | grep -v Abyssinian_34 | awk 'NR % 100 == 1')
  echo "photos: ${photos[*]##*/}"
else
  echo "shared pets absent: using synthetic photos instead"
  photos=(data.raw/images/synth_0000[1-4].jpg)
fi
reference() { # reference WEIGHTS HxW NAME: resized input NAME.u8 and unet-predict probabilities NAME.f32
  "$BUILD/unet-predict" --weights "$1" --out "pred-$3" --size "$2" --probs "$3.h5" --threads 1 "${photos[@]}" 2> /dev/null
  "$BUILD/resized-rgb" --size "$2" --out "$3.u8" "${photos[@]}"
  h5dump -d probs -b LE -o "$3.f32" "$3.h5" > /dev/null
}
reference $W 160x160 p160
reference $W 96x128 p96x128
reference run/last.ckpt.h5 160x160 keras160

if ! "$SRC/tests/onnx/install_ort.sh" "$BUILD/onnxruntime-node"; then
  finish > /dev/null
  echo "SKIP: ONNX Runtime for Node could not be installed (npm install --ignore-scripts onnxruntime-node)"
  exit 77
fi
ort() { # ort MODEL SIZE REF TYPE SHAPE
  node "$SRC/tests/onnx/check_onnx.js" --ort "$BUILD/onnxruntime-node" --model "$1" --size "$2" --batch ${#photos[@]} \
    --input "$3.u8" --probs "$3.f32" --classes 3 --type "$4" --shape "$5" --min-unsaturated 0.01
}
out=$(ort m160.onnx 160x160 p160 float N,160,160,3 2>&1) && pass "160x160 float: $out" || fail "160x160 float: $out"
out=$(ort m96x128.onnx 96x128 p96x128 float N,96,128,3 2>&1) && pass "96x128 float: $out" || fail "96x128 float: $out"
out=$(ort dyn.onnx 160x160 p160 uint8 N,H,W,3 2>&1) && pass "--dynamic uint8 at 160x160: $out" || fail "dynamic 160x160: $out"
out=$(ort dyn.onnx 96x128 p96x128 uint8 N,H,W,3 2>&1) && pass "--dynamic uint8 at 96x128: $out" || fail "dynamic 96x128: $out"
out=$(ort keras-stats.onnx 160x160 keras160 float N,160,160,3 2>&1) && pass "Keras-statistics model: $out" \
  || fail "Keras-statistics model: $out"
# the comparison must be able to fail: other BatchNorm statistics, same kernels
if out=$(ort keras-stats.onnx 160x160 p160 float N,160,160,3 2>&1); then
  fail "a model with other BatchNorm statistics passed: $out"
else
  pass "a model with other BatchNorm statistics fails the comparison: $(echo "$out" | grep -m1 FAIL)"
fi
finish
