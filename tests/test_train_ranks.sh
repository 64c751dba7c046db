#!/usr/bin/env bash
# Results independent of the rank count: with synchronized BatchNorm, 1, 2, 3
# and 4 (oversubscribed) ranks compute the same averaged gradient for the same
# global batch (relative 1e-5), and validation metrics are identical.
source "$(dirname "$0")/lib.sh"
make_data data 40 64 8 3
B=12
# --max-train B: the ranks' slices together are exactly the first global batch
# (each rank shuffles its own slice: the order within the batch differs too).
for n in 1 2 3 4; do
  "${MPIRUN[@]}" -np $n "$BUILD/unet-train" --data data --batch $B --max-train $B --threads 1 \
    --dump-gradients g$n.h5 --quiet || fail "$n ranks: unet-train failed"
done
# float precision: relative 1e-5 per variable (L2); atol: the biases feeding a
# BatchNorm have an exact zero gradient, computed as ~1e-7 noise
for n in 2 3 4; do
  if out=$("$BUILD/compare-h5" g$n.h5 g1.h5 --rtol 1e-5 --atol 1e-6); then
    pass "$n ranks = 1 rank: $out"
  else
    fail "$n ranks differ from 1 rank: $out"; "$BUILD/compare-h5" g$n.h5 g1.h5 --rtol 1e-5 --atol 1e-6 2>&1 | head -5
  fi
done
# without synchronized BatchNorm the gradients really differ (the check above has teeth)
"${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data data --batch $B --max-train $B --threads 1 --no-sync-bn \
  --dump-gradients nosync.h5 --quiet
if out=$("$BUILD/compare-h5" nosync.h5 g1.h5 --rtol 0.1 --atol 1e-6); then fail "--no-sync-bn matched: $out"; else pass "--no-sync-bn differs: $out"; fi
# the blocking (non-overlapped) reduction gives the same gradient
"${MPIRUN[@]}" -np 2 "$BUILD/unet-train" --data data --batch $B --max-train $B --threads 1 --no-overlap \
  --dump-gradients blocking.h5 --quiet
out=$("$BUILD/compare-h5" blocking.h5 g2.h5 --rtol 1e-6 --atol 1e-8) && pass "--no-overlap = overlapped: $out" || fail "--no-overlap differs: $out"

# validation spread over 1, 2 or 3 ranks: identical metrics
"$BUILD/unet-train" --data data --out run --epochs 1 --batch 6 --threads 1 --quiet
for n in 1 2 3; do
  "${MPIRUN[@]}" -np $n "$BUILD/unet-train" --data data --init-weights run/best.weights.h5 --evaluate --batch 6 \
    --threads 1 --quiet > eval$n.txt
done
if cmp -s eval1.txt eval2.txt && cmp -s eval1.txt eval3.txt; then pass "validation independent of ranks: $(cat eval1.txt)"
else fail "validation differs: $(cat eval1.txt eval2.txt eval3.txt)"; fi
finish
