#!/usr/bin/env bash
# Three "hosts" as network namespaces of their own (h1, h2, h3 on a bridge in a
# fourth, switch namespace; 10.233.0.1-3/24, no route anywhere else), mpirun in
# h1 starting the others through tests/netns_rsh_agent.sh with TCP only. Checks:
# the ranks run on three hosts; the gradient equals the single-process one; a
# run split by --steps and resumed across the hosts ends bit-identical to an
# uninterrupted one; a rank killed on h2 ends the job on every host, naming
# rank and host; a rank stopped on h3 is caught by the stall watchdog (exit 5).
# Everything it made (namespaces, bridge, veths, processes) goes in a trap on
# EXIT. Skips (77) without root, without ip/unshare, or where `ip netns add` fails.
source "$(dirname "$0")/lib.sh"

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
command -v ip >/dev/null || skip "no 'ip' (Debian package iproute2)"
command -v unshare >/dev/null || skip "no 'unshare' (Debian package util-linux)"

P="unet$$-" # namespace names: ${P}sw (the switch), ${P}h1 ${P}h2 ${P}h3
HOSTS=(h1 h2 h3)
cleanup() {
  local ns pid
  for ns in "${HOSTS[@]/#/$P}" "${P}sw"; do
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -CONT "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true # its veth ends and the bridge go with it
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "${P}sw" 2>/dev/null || skip "ip netns add fails here (no CAP_SYS_ADMIN, or no network namespaces)"
ip -n "${P}sw" link add br0 type bridge
ip -n "${P}sw" link set br0 up
i=0
for h in "${HOSTS[@]}"; do
  i=$((i + 1))
  ip netns add "$P$h"
  # the veth pair is made in the host namespace with its peer put straight into the switch:
  # nothing of this test ever appears in the machine's own namespace
  ip -n "$P$h" link add eth0 type veth peer name "p$i" netns "${P}sw"
  ip -n "${P}sw" link set "p$i" master br0
  ip -n "${P}sw" link set "p$i" up
  ip -n "$P$h" addr add "10.233.0.$i/24" dev eth0
  ip -n "$P$h" link set eth0 up
  ip -n "$P$h" link set lo up
done
export UNET_NETNS_PREFIX="$P"
# no traffic can leave: the only route in a host is the bridge's subnet
if ip netns exec "${P}h1" ip route get 1.1.1.1 >/dev/null 2>&1; then fail "h1 has a route out of the test's namespaces"
else pass "no route out of the namespaces: $(ip netns exec "${P}h1" ip route | tr '\n' ' ')"; fi

printf '%s slots=1\n' "${HOSTS[@]}" > hostfile
NET=10.233.0.0/24
# in_h1 CMD...: run in h1 (its network, hostname h1), at most 120 s: mpirun starts there, h1's rank is local
in_h1() { timeout 120 ip netns exec "${P}h1" unshare --uts sh -c 'hostname h1 && exec "$@"' in-h1 "$@"; }
MH=(mpirun --hostfile "$WORK/hostfile" --map-by node --bind-to none -x OPENBLAS_NUM_THREADS
  --mca plm_rsh_agent "$SRC/tests/netns_rsh_agent.sh" --mca plm_rsh_no_tree_spawn 1
  --mca btl tcp,self --mca oob_tcp_if_include $NET --mca btl_tcp_if_include $NET)

# the launch itself: one process per host, each seeing its own host name
# (stderr apart: Open MPI's rsh launcher may warn "setpgid ... failed" when a
# child has already exec'd, which says nothing about the launch)
names=$(in_h1 "${MH[@]}" -np 3 hostname 2>launch.err | sort | tr '\n' ' ') || true
[ "$names" = "h1 h2 h3 " ] && pass "mpirun reaches the three hosts: $names" ||
  fail "launch across the hosts: '$names' (stderr: $(tr '\n' ' ' < launch.err))"

make_data data 40 32 8 3
B=6
TRAIN=(--data "$WORK/data" --batch $B --threads 1 --quiet)

# the gradient across hosts (TCP) equals the single-process one
"$BUILD/unet-train" "${TRAIN[@]}" --max-train $B --dump-gradients g1.h5 || fail "1 process: unet-train failed"
in_h1 "${MH[@]}" -np 3 "$BUILD/unet-train" "${TRAIN[@]}" --max-train $B --dump-gradients "$WORK/g3.h5" \
  || fail "3 hosts: --dump-gradients failed"
if out=$("$BUILD/compare-h5" g3.h5 g1.h5 --rtol 1e-5 --atol 1e-6 2>&1); then pass "3 hosts over TCP = 1 process: $out"
else fail "3 hosts differ from 1 process: $out"; fi

# training across the hosts, and resume: 2 epochs straight vs stopped at step 5 and resumed
in_h1 "${MH[@]}" -np 3 "$BUILD/unet-train" "${TRAIN[@]}" --out "$WORK/straight" --epochs 2 \
  || fail "3 hosts: training failed"
[ "$(cut -d' ' -f1-2 straight/status 2>/dev/null)" = "done 0" ] && [ "$(wc -l < straight/metrics.csv)" -eq 3 ] \
  && pass "training across the hosts: $(cat straight/status)" || fail "training across the hosts: status '$(cat straight/status 2>/dev/null)'"
in_h1 "${MH[@]}" -np 3 "$BUILD/unet-train" "${TRAIN[@]}" --out "$WORK/split" --epochs 2 --steps 5 \
  || fail "3 hosts: training to step 5 failed"
in_h1 "${MH[@]}" -np 3 "$BUILD/unet-train" "${TRAIN[@]}" --out "$WORK/split" --epochs 2 --resume \
  || fail "3 hosts: resume failed"
if out=$("$BUILD/compare-h5" split/last.ckpt.h5 straight/last.ckpt.h5 --exact 2>&1); then pass "resume across the hosts (step 5): $out"
else fail "resumed across the hosts differs from the straight run: $out"; fi

# rank_on_host NS RANK: the pid of that rank among the namespace's processes
rank_on_host() {
  local pid
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$pid"; return; fi
  done
}
# start_long NAME: a long training across the hosts in the background (pid in LONG_PID)
start_long() {
  timeout 120 ip netns exec "${P}h1" unshare --uts sh -c 'hostname h1 && exec "$@"' in-h1 "${MH[@]}" -np 3 \
    "$BUILD/unet-train" --data "$WORK/data" --batch $B --threads 1 --out "$WORK/$1" --epochs 500 --stall-timeout 4 \
    > "$1.out" 2>&1 &
  LONG_PID=$!
  while [ ! -f "$1/status" ] && kill -0 $LONG_PID 2>/dev/null; do sleep 0.1; done # training has begun
  sleep 1
}
# wait_end NAME: waits for the job, sets END_RC and END_AFTER (seconds)
wait_end() {
  local t0=$SECONDS
  END_RC=0
  wait "$LONG_PID" || END_RC=$?
  END_AFTER=$((SECONDS - t0))
}

# a rank killed on h2 ends the job on every host, naming the rank and the host
start_long killed
pid=$(rank_on_host "${P}h2" 1)
if [ -z "$pid" ]; then fail "no rank 1 in h2"; else
  kill -KILL "$pid"
  wait_end killed
  msg=$(grep -iE "rank 1 .*(node|host) h2" killed.out | head -1)
  if [ "$END_RC" -ne 0 ] && [ "$END_RC" -ne 124 ] && [ -n "$msg" ]; then
    pass "kill -9 of rank 1 on h2 ends the job in ${END_AFTER} s (exit $END_RC): $msg"
  else
    fail "kill -9 on h2: exit $END_RC after ${END_AFTER} s: $(tail -5 killed.out)"
  fi
  left=$(for h in "${HOSTS[@]}"; do ip netns pids "$P$h"; done | xargs -r ps -o comm= -p 2>/dev/null | grep -c unet-train || true)
  [ "$left" = 0 ] && pass "no rank left on any host" || fail "$left rank(s) still running after the kill"
fi

# a rank stopped on h3 is caught by the stall watchdog
start_long stalled
pid=$(rank_on_host "${P}h3" 2)
if [ -z "$pid" ]; then fail "no rank 2 in h3"; else
  kill -STOP "$pid"
  wait_end stalled
  msg=$(grep -E "stalled: .*rank 2 on host h3" stalled.out | head -1)
  if [ "$END_RC" -eq 5 ] && [ "$END_AFTER" -le 19 ] && [ -n "$msg" ]; then
    pass "SIGSTOP of rank 2 on h3: exit 5 in ${END_AFTER} s: $msg"
  else
    fail "SIGSTOP on h3: exit $END_RC after ${END_AFTER} s: $(grep -E 'error|warning' stalled.out | head -3)"
  fi
fi
finish
