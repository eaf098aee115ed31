#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests of mvlib.executors.slurm (Debian's
# slurm-wlm and munge; run as root, as on CI machines).
#   .ci/slurm.sh start   install the packages if needed, write the config, start munged,
#                        slurmctld and slurmd, wait until the node takes jobs
#   .ci/slurm.sh stop    stop what `start` started, by the pids it recorded
# State, spool, logs and pids live under $MVLIB_SLURM_STATE (default /tmp/mvlib-slurm). The
# config goes to /etc/slurm/slurm.conf, where sbatch and squeue look, unless one exists that
# this script did not write (a real cluster's): then it stops with an error.
set -euo pipefail
STATE=${MVLIB_SLURM_STATE:-/tmp/mvlib-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by mvlib's .ci/slurm.sh"

stop() {
    for name in slurmd slurmctld munged; do
        pidfile="$STATE/run/$name.pid"
        if [[ -f $pidfile ]]; then
            pid=$(cat "$pidfile")
            if kill "$pid" 2>/dev/null; then
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                echo "stopped $name ($pid)"
            fi
            rm -f "$pidfile"
        fi
    done
}

start() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "installing slurm-wlm and munge (Debian packages)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || {
            apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
    fi
    if [[ -f $CONF ]] && ! grep -q "^$MARK" "$CONF"; then
        echo "$CONF exists and was not written by this script: not touching a real cluster" >&2
        exit 1
    fi
    stop  # a cluster left over from an earlier start
    mkdir -p "$STATE"/{run,spool,state,log,munge} /etc/slurm
    chmod 700 "$STATE/munge"
    [[ -f $STATE/munge/munge.key ]] || dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$STATE/munge/munge.key"
    munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
        --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
    host=$(hostname)
    node=$(slurmd -C | head -1)  # this machine's CPUs, sockets, cores, threads and memory
    cat > "$CONF" <<EOF
$MARK
ClusterName=mvlib
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=30
KillWait=2
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmdSpoolDir=$STATE/spool
StateSaveLocation=$STATE/state
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld
    slurmd
    for _ in $(seq 100); do
        if sinfo --noheader --format=%t 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
            echo "SLURM up: $(sinfo --noheader --format='%P %D nodes %c CPUs %t')"
            return 0
        fi
        sleep 0.2
    done
    echo "SLURM did not come up; see $STATE/log" >&2
    tail -n 20 "$STATE"/log/*.log >&2 || true
    exit 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
