#!/usr/bin/env bash
# Training over TCP (loopback) instead of shared memory: `--mca btl tcp,self` leaves
# Open MPI no other way between the ranks; the run ends bit-identical to the same
# run over shared memory (two ranks: the sums are the same either way).
source "$(dirname "$0")/lib.sh"
make_data data 40 32 8 2
TRAIN=(--data data --epochs 1 --batch 6 --threads 1 --quiet)
"${MPIRUN[@]}" -np 2 "$BUILD/unet-train" "${TRAIN[@]}" --out shm || fail "shared memory: unet-train failed"
timeout 120 "${MPIRUN[@]}" -np 2 --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
  "$BUILD/unet-train" "${TRAIN[@]}" --out tcp || fail "tcp: unet-train failed"
[ "$(cut -d' ' -f1-2 tcp/status 2>/dev/null)" = "done 0" ] && pass "training over TCP: $(cat tcp/status)" \
  || fail "training over TCP: status '$(cat tcp/status 2>/dev/null)'"
out=$("$BUILD/compare-h5" tcp/last.ckpt.h5 shm/last.ckpt.h5 --exact 2>&1) && pass "TCP = shared memory: $out" \
  || fail "TCP and shared memory differ: $out"
finish
