#!/usr/bin/env bash
# A single-node Slurm cluster on localhost, for tests (scripts/test_slurm.sh): one node on
# 127.0.0.1 with every core of this machine, one partition, no accounting.
#
#   scripts/slurm/cluster.sh start STATE_DIR   # installs slurm-wlm and munge if missing (Debian)
#   export SLURM_CONF=STATE_DIR/slurm.conf     # then sbatch, squeue, sinfo, scancel ... as usual
#   scripts/slurm/cluster.sh stop STATE_DIR
#
# Everything the daemons write (slurm.conf, spool folders, logs, pid files, munged's pid file,
# log and seed) lives under STATE_DIR; only munged's socket stays where every client looks for
# it, /run/munge (and munged's files too when the munge user cannot enter STATE_DIR).
# Needs root. Exits 2 with one line `slurm: skipped: REASON` when it cannot run here (not root,
# no packages, ports taken, a daemon that does not come up), so a test can skip cleanly.
set -euo pipefail

# One line, exit 2; and whatever this start had launched is stopped again.
started=0
skip() {
  echo "slurm: skipped: $*"
  if [ $started -eq 1 ]; then stop >/dev/null 2>&1 || true; fi
  exit 2
}

usage() { echo "usage: $0 start|stop STATE_DIR" >&2; exit 1; }
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
state=$(cd "$2" && pwd)
conf=$state/slurm.conf
export SLURM_CONF=$conf

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
}

# Stop the process in pid file $1 if it is still daemon $2 (TERM, then KILL after 10 s), and
# remove the file.
stop_pidfile() {
  local file=$1 name=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

node_idle() { [ "$(sinfo -h -N -o %T 2>/dev/null | head -n1)" = idle ]; }
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start() {
  [ "$(id -u)" -eq 0 ] || skip "not root"
  if [ -f "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
    skip "a cluster already runs from $state (stop it first)"
  fi

  # Slurm's ports (slurmctld 6817, slurmd 6818) must be free: another cluster on this machine
  # would answer our commands in its place.
  # (/proc/net/tcp: local address ADDR:PORT in hex, state 0A = listening.)
  if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$2 ~ /:1AA[12]$/ && $4 == "0A" { f = 1 } END { exit !f }'; then
    skip "ports 6817/6818 are in use (another Slurm on this machine?)"
  fi

  # Packages, only when missing.
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
     ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || skip "slurm or munge missing and no apt-get to install them"
    echo "slurm: installing slurm-wlm and munge" >&2
    if ! apt-get install -y --no-install-recommends slurm-wlm munge >"$state/apt.log" 2>&1; then
      # A stale package index is the usual cause: update it once and retry.
      { apt-get update && apt-get install -y --no-install-recommends slurm-wlm munge; } >>"$state/apt.log" 2>&1 ||
        skip "apt-get install slurm-wlm munge failed (see $state/apt.log)"
    fi
  fi

  # munge: credentials between the client commands and the daemons. A munged already serving
  # /run/munge (a system one) is used as it is; otherwise start ours, as the munge user.
  if ! munge_works; then
    if [ ! -s /etc/munge/munge.key ]; then
      mkdir -p /etc/munge
      if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 || true; fi
      [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge "$state/munge"
    chown munge:munge /run/munge "$state/munge"
    chmod 0755 /run/munge
    chmod 0700 "$state/munge"
    # munged's files in $state/munge, unless the munge user cannot reach it (a private parent
    # folder, such as mktemp -d makes): then in /run/munge. $state/munged.pidfile says where.
    local mdir=$state/munge
    runuser -u munge -- test -w "$mdir" 2>/dev/null || mdir=/run/munge
    echo "$mdir/munged.pid" >"$state/munged.pidfile"
    started=1
    runuser -u munge -- munged --pid-file="$mdir/munged.pid" --log-file="$mdir/munged.log" \
      --seed-file="$mdir/munged.seed" >"$state/munged.out" 2>&1 ||
      skip "munged did not start: $(tail -n1 "$state/munged.out")"
    wait_for 30 munge_works || skip "munge does not answer after 30 s (see $mdir/munged.log)"
  fi

  # slurm.conf: one node (this host, on 127.0.0.1), daemons as root, all state under $state.
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # 90% of the memory slurmd will find, so the node is never rejected for having less.
  mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
  mkdir -p "$state/ctld" "$state/d" "$state/log"
  cat >"$conf" <<EOF
# Written by scripts/slurm/cluster.sh: a single-node test cluster.
ClusterName=triage-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# Finished jobs stay visible to scontrol for 16 s to about a minute (no accounting database);
# and sbatch --wait polls after 2 s, then every 8 s (every 32 s with the default of 300).
MinJobAge=16
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  started=1
  slurmctld -c -f "$conf" >"$state/log/slurmctld.out" 2>&1 || skip "slurmctld did not start (see $state/log/)"
  wait_for 30 scontrol ping || skip "slurmctld does not answer after 30 s (see $state/log/slurmctld.log)"
  slurmd -f "$conf" >"$state/log/slurmd.out" 2>&1 || skip "slurmd did not start (see $state/log/)"
  wait_for 30 node_idle || skip "node $host not idle after 30 s: $(sinfo -h -N -o '%T %E' 2>&1 | head -n1) (see $state/log/)"
  local d
  for d in slurmctld slurmd; do
    kill -0 "$(cat "$state/$d.pid" 2>/dev/null || echo 0)" 2>/dev/null || skip "$d exited (see $state/log/$d.log)"
  done
  echo "slurm: up: node $host ($cpus CPUs) idle; export SLURM_CONF=$conf"
}

stop() {
  # Cancel what is left, so no job's processes outlive the daemons.
  if [ -f "$conf" ] && kill -0 "$(cat "$state/slurmctld.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
    scancel --partition=debug 2>/dev/null || true
    wait_for 15 bash -c '[ -z "$(squeue -h -o %i)" ]' || true
  fi
  stop_pidfile "$state/slurmd.pid" slurmd
  stop_pidfile "$state/slurmctld.pid" slurmctld # it cannot remove its own pid file
  # munged only when this script started it.
  if [ -f "$state/munged.pidfile" ]; then
    stop_pidfile "$(cat "$state/munged.pidfile")" munged
    rm -f "$state/munged.pidfile"
  fi
  echo "slurm: stopped ($state)"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
