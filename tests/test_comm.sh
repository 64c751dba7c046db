#!/usr/bin/env bash
# The MPI layer alone: exact bucketed allreduce on 1-3 ranks, and a weight
# checksum mismatch between ranks stopping the job with the rank named.
source "$(dirname "$0")/lib.sh"
for n in 1 2 3; do
  if out=$("${MPIRUN[@]}" -np $n "$BUILD/test-comm" sums 2>&1); then pass "$n rank(s): $(echo "$out" | tail -1)"
  else fail "$n rank(s): $out"; fi
done
rc=0
timeout 60 "${MPIRUN[@]}" -np 2 "$BUILD/test-comm" mismatch > out.txt 2>&1 || rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "model weights differ between ranks: rank 1 has checksum" out.txt; then
  pass "checksum mismatch stops the job (exit $rc): $(grep 'differ between ranks' out.txt | head -1)"
else
  fail "checksum mismatch: exit $rc: $(head -5 out.txt)"
fi
finish
