#!/bin/sh
# A one-node SLURM cluster on this machine, to test the DAG's submission for real
# (tests/test_slurm.py). Needs root and Debian's slurm-wlm and munge (make test installs them).
#
#   profiles/slurm/localhost.sh start   # munged, slurmctld, slurmd; waits until the node is idle
#   profiles/slurm/localhost.sh stop    # stops the daemons by their PID files
#
# The config goes to the compiled-in default path (/etc/slurm/slurm.conf): the executor
# plugin's job step drops SLURM_CONF before it calls srun. No slurmdbd: the profile queries
# job status with squeue. Runs without systemd.
set -eu

CONF=/etc/slurm/slurm.conf
STATE=/var/lib/cpr-bench-slurm
PIDS="/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid"

start() {
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge "$STATE/ctld" "$STATE/d" /etc/slurm
    chmod 755 /run/munge  # the socket directory must be reachable by every client
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    fi
    chmod 400 /etc/munge/munge.key
    if id munge >/dev/null 2>&1; then
        chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
        runuser -u munge -- munged
    else
        munged --force
    fi

    host=$(hostname -s)
    node=$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/")
    cat > "$CONF" <<EOF
# written by profiles/slurm/localhost.sh: a one-node test cluster
ClusterName=cprbench
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$node
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld -c
    slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then
            sinfo
            return 0
        fi
        sleep 1
    done
    echo "the node did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
    exit 1
}

stop() {
    for pid in $PIDS; do
        if [ -f "$pid" ]; then
            kill "$(cat "$pid")" 2>/dev/null || true
            rm -f "$pid"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
