#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying and testing the job scripts
# (jobs/*.sbatch) without a real cluster. Uses Debian's slurm-wlm and munge.
#
# Usage: jobs/slurm-local.sh start|stop|status      (as root)
#
#   start   install slurm-wlm + munge if missing, write the config, start munged,
#           slurmctld and slurmd, and wait until the node is idle. Idempotent: what
#           already runs with the same config is left alone; a changed config restarts
#           the SLURM daemons.
#   stop    stop slurmctld and slurmd (and munged if this script started it).
#   status  daemons, node state and the MPI plugins srun offers; exit 0 only when the
#           node accepts jobs.
#
# Environment:
#   SLURM_LOCAL_STATE   state, spool and logs (default /var/spool/slurm-local)
#   SLURM_LOCAL_CONF    the slurm.conf to write (default /etc/slurm/slurm.conf, where
#                       the daemons and sbatch/srun/squeue look without SLURM_CONF).
#                       An existing slurm.conf that this script did not write is never
#                       overwritten.
#   SLURM_LOCAL_WAIT    seconds to wait for the node to become idle (default 60)
#
# Configuration choices (see write_conf): one node named after `hostname -s` at
# 127.0.0.1 (no DNS needed), its real topology from `slurmd -C`; daemons run as root
# (SlurmUser=root: no permission juggling on spool dirs); proctrack/linuxproc +
# task/none (no cgroups needed, works in containers); select/cons_tres with CR_Core so
# jobs get cores, not the whole node, and memory is not a consumable; MpiDefault=pmix
# when the pmix plugin is installed (Debian's Open MPI is built against the same PMIx);
# JobRequeue=1 so jobs can requeue themselves; no accounting daemon, so use squeue and
# `scontrol show job` (kept MinJobAge=3600 s after the end) instead of sacct.
set -euo pipefail

STATE="${SLURM_LOCAL_STATE:-/var/spool/slurm-local}"
CONF="${SLURM_LOCAL_CONF:-/etc/slurm/slurm.conf}"
WAIT="${SLURM_LOCAL_WAIT:-60}"
MARK="# written by unet jobs/slurm-local.sh"
# Clients must read the same file as the daemons.
export SLURM_CONF="$CONF"

say() { echo "slurm-local: $*" >&2; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }

# The last lines of a daemon log, to put the cause next to the failure.
show_log() {
  local f="$STATE/log/$1.log"
  if [ -s "$f" ]; then
    echo "---- last lines of $f ----" >&2
    tail -n 15 "$f" >&2
    echo "----" >&2
  fi
}

# A pid file whose process still runs, with the expected program name.
pid_alive() {
  local file="$1" name="$2" pid
  [ -s "$file" ] || return 1
  pid="$(cat "$file" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q "$name" "/proc/$pid/comm" 2>/dev/null
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons need it); try: sudo $0 $*"
}

install_packages() {
  local missing=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "packages ${missing[*]} are missing and apt-get is not available (Debian/Ubuntu only)"
  say "installing ${missing[*]} (apt-get)"
  local log="$STATE/log/apt.log"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "apt-get install ${missing[*]} failed (full log: $log)"
  fi
}

plugin_dir() {
  local so
  so="$(ls /usr/lib/*/slurm-wlm/select_cons_tres.so /usr/lib/slurm/select_cons_tres.so 2>/dev/null | head -n 1)" ||
    true
  [ -n "$so" ] || die "no SLURM plugins found (select_cons_tres.so): is slurm-wlm-basic-plugins installed?"
  dirname "$so"
}

# The node line: slurmd -C reports the real sockets/cores/threads and memory, which
# slurmd compares against the config (a mismatch would drain the node).
node_line() {
  local node="$1" line
  line="$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1)" || true
  if [ -n "$line" ]; then
    # own name and address; keep CPUs/Boards/Sockets/Cores/Threads/RealMemory
    line="$(echo "$line" | sed -E "s/^NodeName=[^ ]+/NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node/")"
  else
    local mem
    mem="$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
    line="NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$(nproc) RealMemory=$mem"
  fi
  # leave a little memory to the OS so a rounding difference never drains the node
  echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^RealMemory=/) { split($i, a, "="); $i = "RealMemory=" int(a[2] * 0.95) } print}'
}

write_conf() {
  local node="$1" plugins mpi
  plugins="$(plugin_dir)"
  mpi=none
  [ -e "$plugins/mpi_pmix.so" ] && mpi=pmix
  cat <<EOF
$MARK: single-node cluster for testing the job scripts.
# Regenerated on every start; edits are lost. Stop with: jobs/slurm-local.sh stop
ClusterName=unetlocal
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire + 1 s before it may start again (default 120 s); a
# single node on one clock needs far less, so restarts happen within ~30 s.
AuthInfo=cred_expire=20
CredType=cred/munge
PluginDir=$plugins
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: plain /proc process tracking; task/affinity binds tasks with sched_setaffinity (srun --cpu-bind)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
# cores are the consumable resource, memory is not (jobs need no --mem)
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# look at the queue often: a requeued job starts as soon as its begin time has passed
SchedulerParameters=sched_interval=5,bf_interval=5
MpiDefault=$mpi
SwitchType=switch/none
JobRequeue=1
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# timeouts: generous for a busy 2-core machine, short enough to notice a dead daemon
SlurmctldTimeout=120
SlurmdTimeout=300
InactiveLimit=0
KillWait=30
# finished jobs stay visible to scontrol show job / squeue -t all for an hour
MinJobAge=3600
$(node_line "$node") State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  local key=/etc/munge/munge.key
  if [ ! -s "$key" ]; then
    say "creating $key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$key" --force
    else
      dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
    fi
  fi
  chown munge:munge "$key" /etc/munge 2>/dev/null || true
  chmod 0400 "$key"
  chmod 0700 /etc/munge
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0755 /run/munge
  say "starting munged"
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || { tail -n 5 /var/log/munge/munged.log >&2 2>/dev/null; die "munged did not start (log: /var/log/munge/munged.log)"; }
  else
    /usr/sbin/munged --force || die "munged did not start"
  fi
  touch "$STATE/munged.ours"
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged runs but 'munge -n | unmunge' fails (key /etc/munge/munge.key, log /var/log/munge/munged.log)"
}

stop_daemon() {
  local name="$1" pidfile="$STATE/$1.pid" pid
  pid_alive "$pidfile" "$name" || return 0
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  say "$name (pid $pid) ignored SIGTERM for 10 s: killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

node_state() {
  sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1
}

cmd_start() {
  need_root start
  mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log"
  install_packages
  local node
  node="$(hostname -s)"
  [ -n "$node" ] || die "hostname -s is empty: SLURM needs a node name"

  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: not overwriting a real configuration; set SLURM_LOCAL_CONF=/some/other/slurm.conf (and export SLURM_CONF to the same path when using sbatch)"
  fi
  mkdir -p "$(dirname "$CONF")"
  local tmp="$CONF.tmp.$$" changed=0
  write_conf "$node" >"$tmp"
  if ! cmp -s "$tmp" "$CONF"; then
    mv -f "$tmp" "$CONF"
    changed=1
  else
    rm -f "$tmp"
  fi

  start_munge

  if [ "$changed" = 1 ]; then
    if pid_alive "$STATE/slurmctld.pid" slurmctld || pid_alive "$STATE/slurmd.pid" slurmd; then
      say "configuration changed: restarting the SLURM daemons"
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
  fi

  if ! pid_alive "$STATE/slurmctld.pid" slurmctld; then
    say "starting slurmctld"
    slurmctld -f "$CONF" >>"$STATE/log/slurmctld.start.log" 2>&1 || {
      cat "$STATE/log/slurmctld.start.log" >&2; show_log slurmctld; die "slurmctld did not start"; }
  fi
  for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q "is UP" && break
    sleep 0.2
  done
  scontrol ping 2>/dev/null | grep -q "is UP" || { show_log slurmctld; die "slurmctld does not answer 'scontrol ping' after 20 s"; }

  if ! pid_alive "$STATE/slurmd.pid" slurmd; then
    say "starting slurmd"
    slurmd -f "$CONF" -N "$node" >>"$STATE/log/slurmd.start.log" 2>&1 || {
      cat "$STATE/log/slurmd.start.log" >&2; show_log slurmd; die "slurmd did not start"; }
  fi

  # wait for the node to register; undo a drain/down left over from an earlier run
  local state="" resumed=0 t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$WAIT" ]; do
    state="$(node_state "$node")"
    case "$state" in
      idle|mixed|allocated|completing) break ;;
      down*|drain*|fail*)
        if [ "$resumed" = 0 ]; then
          scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    pid_alive "$STATE/slurmd.pid" slurmd || { show_log slurmd; die "slurmd exited while registering"; }
    sleep 0.5
  done
  case "$state" in
    idle|mixed|allocated|completing) ;;
    *)
      show_log slurmctld; show_log slurmd
      scontrol show node "$node" 2>&1 | grep -E 'State|Reason' >&2 || true
      die "node $node is '${state:-unknown}' after ${WAIT} s, not idle" ;;
  esac
  say "up: node $node ($state), partition debug, MpiDefault=$(grep '^MpiDefault=' "$CONF" | cut -d= -f2), config $CONF, logs $STATE/log"
}

cmd_stop() {
  need_root stop
  stop_daemon slurmd
  stop_daemon slurmctld
  if [ -e "$STATE/munged.ours" ]; then
    local pid
    pid="$(cat /run/munge/munged.pid 2>/dev/null || true)"
    if [ -n "$pid" ] && grep -q munged "/proc/$pid/comm" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/munged.ours"
  fi
  say "stopped"
}

cmd_status() {
  local ok=0 node
  node="$(hostname -s)"
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then echo "munged:    running"; else echo "munged:    not running"; ok=1; fi
  if pid_alive "$STATE/slurmctld.pid" slurmctld; then echo "slurmctld: running (pid $(cat "$STATE/slurmctld.pid"))"; else echo "slurmctld: not running"; ok=1; fi
  if pid_alive "$STATE/slurmd.pid" slurmd; then echo "slurmd:    running (pid $(cat "$STATE/slurmd.pid"))"; else echo "slurmd:    not running"; ok=1; fi
  if [ "$ok" = 0 ]; then
    echo "node:      $node $(node_state "$node")"
    echo "mpi:       $(srun --mpi=list 2>&1 | tr -s ' \n' ' ')"
    case "$(node_state "$node")" in idle|mixed|allocated|completing) ;; *) ok=1 ;; esac
  fi
  return $ok
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
