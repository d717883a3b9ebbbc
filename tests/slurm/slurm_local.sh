#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for tests (Debian 12 packages slurm-wlm, munge).
# Everything (munge key and socket, slurm.conf, state, spool, logs, pid files) lives in STATE_DIR;
# nothing under /etc is used, no systemd needed. Daemons run as root (through sudo when not root).
#
#   tests/slurm/slurm_local.sh install          apt-get install slurm-wlm munge when missing
#   tests/slurm/slurm_local.sh up STATE_DIR     (re)start munged, slurmctld, slurmd; wait for an idle node
#   tests/slurm/slurm_local.sh down STATE_DIR   stop the daemons started by `up` (keeps STATE_DIR)
#
# After `up`: `source STATE_DIR/env.sh` (or eval the `export SLURM_CONF=...` line it prints).
# Environment: SLURM_LOCAL_CTLD_PORT (16817), SLURM_LOCAL_SLURMD_PORT (16818),
#   SLURM_LOCAL_MAX_ARRAY (MaxArraySize, 100001), SLURM_LOCAL_TIMEOUT (seconds to wait, 60).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(slurm-wlm munge)  # slurm-wlm = slurmctld + slurmd + slurm-client (+ basic plugins)

die() { echo "slurm_local: $*" >&2; exit 1; }

cmd_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then echo "slurm_local: packages present"; return; fi
    echo "slurm_local: installing ${missing[*]}"
    # Wait for another apt/dpkg run (e.g. scripts/setup.sh) rather than failing on its lock.
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

# True while pid $1 is a live (not zombie) process named $2: pids get reused, and a killed
# daemon stays a zombie until init reaps it.
alive() {
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] \
        && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}

# Stops the daemons of STATE_DIR $1 by their pid files, all at once (each takes 1-2 s to exit).
cmd_down() {
    local dir="$1" name pid
    declare -A pids=()
    for name in slurmd slurmctld munged; do
        pid="$(cat "$dir/run/$name.pid" 2>/dev/null || true)"
        if alive "$pid" "$name"; then $SUDO kill -TERM "$pid" 2>/dev/null && pids[$pid]="$name"; fi
    done
    for pid in "${!pids[@]}"; do
        for _ in $(seq 1 100); do alive "$pid" "${pids[$pid]}" || break; sleep 0.1; done
        if alive "$pid" "${pids[$pid]}"; then $SUDO kill -KILL "$pid" 2>/dev/null || true; fi
    done
    $SUDO rm -f "$dir/run/"*.pid
    echo "slurm_local: stopped daemons of $dir"
}

logs_tail() {
    local f
    for f in "$1"/log/*.log; do
        [ -f "$f" ] || continue
        echo "---- $f (last 25 lines)" >&2
        $SUDO tail -n 25 "$f" >&2 || true
    done
}

cmd_up() {
    local dir="$1"
    command -v slurmctld >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
    for b in munged slurmctld slurmd sinfo; do
        command -v "$b" >/dev/null 2>&1 || die "$b not found: run '$0 install' first"
    done
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    cmd_down "$dir" >/dev/null  # leftovers of a previous or crashed run of this STATE_DIR

    # munged refuses keys not owned by its user or not 0600, and any group/other-writable parent
    # directory without the sticky bit (e.g. STATE_DIR 0775): the key is made strict here and
    # --force turns the parent-directory check into a warning. The socket directory stays 0755
    # so that non-root clients (sbatch) can reach it.
    $SUDO mkdir -p "$dir/munge" "$dir/run" "$dir/log" "$dir/state" "$dir/spool"
    $SUDO chmod 0755 "$dir/munge" "$dir/run" "$dir/log"
    $SUDO chmod 0700 "$dir/state"
    $SUDO chmod 0755 "$dir/spool"  # slurmstepd puts batch scripts there for the job user to run
    if ! $SUDO test -s "$dir/munge/munge.key"; then
        $SUDO dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    fi
    $SUDO chown root:root "$dir/munge/munge.key"
    $SUDO chmod 0600 "$dir/munge/munge.key"
    local sock="$dir/munge/munge.socket"
    $SUDO rm -f "$sock" "$sock.lock"
    $SUDO munged --force --key-file="$dir/munge/munge.key" --socket="$sock" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed" \
        || { logs_tail "$dir"; die "munged failed to start"; }

    # One node named after this host (slurmctld checks SlurmctldHost against its hostname),
    # always reached at 127.0.0.1 so that name resolution does not matter.
    local node cpus mem
    node="$(hostname -s 2>/dev/null || true)"; node="${node:-localhost}"
    cpus="$(nproc)"
    mem="$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)"
    cat > "$dir/slurm.conf.tmp" <<EOF
# Written by tests/slurm/slurm_local.sh: a single-node test cluster, no cgroups, no accounting.
ClusterName=radprobe
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=${SLURM_LOCAL_CTLD_PORT:-16817}
SlurmdPort=${SLURM_LOCAL_SLURMD_PORT:-16818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
# Schedule at once on submission and completion (the default waits up to 3 s between passes).
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Use the node as configured here, whatever hardware slurmd detects (VMs, containers).
SlurmdParameters=config_overrides
ReturnToService=2
DependencyParameters=kill_invalid_depend
MaxArraySize=${SLURM_LOCAL_MAX_ARRAY:-100001}
MaxJobCount=$(( ${SLURM_LOCAL_MAX_ARRAY:-100001} + 100000 ))
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    $SUDO mv "$dir/slurm.conf.tmp" "$dir/slurm.conf"
    $SUDO chmod 0644 "$dir/slurm.conf"
    echo "export SLURM_CONF=$dir/slurm.conf" | $SUDO tee "$dir/env.sh" >/dev/null

    # -c: cold start (forget jobs of an earlier run); daemons detach and write their pid files.
    $SUDO env SLURM_CONF="$dir/slurm.conf" slurmctld -c -f "$dir/slurm.conf" \
        || { logs_tail "$dir"; die "slurmctld failed to start"; }
    $SUDO env SLURM_CONF="$dir/slurm.conf" slurmd -c -f "$dir/slurm.conf" -N "$node" \
        || { logs_tail "$dir"; die "slurmd failed to start"; }

    local deadline=$((SECONDS + ${SLURM_LOCAL_TIMEOUT:-60})) state=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        state="$(SLURM_CONF="$dir/slurm.conf" sinfo -h -n "$node" -o %T 2>/dev/null || true)"
        [ "$state" = "idle" ] && break
        sleep 0.5
    done
    if [ "$state" != "idle" ]; then
        logs_tail "$dir"
        die "node $node not idle after ${SLURM_LOCAL_TIMEOUT:-60} s (state: '${state:-no answer}')"
    fi
    echo "slurm_local: node $node idle ($cpus CPUs, $mem MB); in your shell:"
    echo "export SLURM_CONF=$dir/slurm.conf"
}

case "${1:-}" in
    install) cmd_install ;;
    up) [ $# -eq 2 ] || die "usage: $0 up STATE_DIR"; cmd_up "$2" ;;
    down) [ $# -eq 2 ] || die "usage: $0 down STATE_DIR"
          if [ -d "$2" ]; then cmd_down "$(cd "$2" && pwd)"; fi ;;
    *) die "usage: $0 install | up STATE_DIR | down STATE_DIR" ;;
esac
