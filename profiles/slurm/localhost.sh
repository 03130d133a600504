#!/bin/sh
# A one-node SLURM cluster on this machine, to test the DAG's submission for real
# (tests/test_slurm.py). Needs root and Debian's slurm-wlm and munge (make test installs them).
#
#   profiles/slurm/localhost.sh start   # munged, slurmctld, slurmd; waits until the node is idle
#   profiles/slurm/localhost.sh env     # prints the exports that point a shell at this cluster
#   profiles/slurm/localhost.sh stop    # stops the daemons by their PID files
#
# Everything lives under one directory of its own, $CPR_SLURM_DIR (default
# /run/cpr-bench-slurm), so a real SLURM or munge on the machine is never touched: not
# /etc/slurm, not /etc/munge/munge.key, not /run/munge, not the default ports.
#   $DIR/slurm.conf     the cluster's config (SLURM_CONF for the daemons and the clients)
#   $DIR/munge/         its own munge key, socket, PID, seed and log (slurm.conf names the
#                       socket in AuthInfo, so every SLURM component uses this munged)
#   $DIR/bin/           sbatch, srun, squeue, ... wrappers that export SLURM_CONF and exec the
#                       real command. Prepend it to PATH: the executor plugin's job step drops
#                       every SLURM_* variable (SLURM_CONF included) before it calls srun inside
#                       the job, but PATH is exported to the job (sbatch --export=ALL) and kept.
#   $DIR/state/         StateSaveLocation, SlurmdSpoolDir, logs and PID files
# Ports: $CPR_SLURM_CTLD_PORT (default 16817) and $CPR_SLURM_D_PORT (default 16818), away
# from SLURM's 6817/6818. No slurmdbd: the profile queries job status with squeue. Runs
# without systemd.
set -eu

DIR=${CPR_SLURM_DIR:-/run/cpr-bench-slurm}
CTLD_PORT=${CPR_SLURM_CTLD_PORT:-16817}
D_PORT=${CPR_SLURM_D_PORT:-16818}
CONF=$DIR/slurm.conf
MUNGE=$DIR/munge
STATE=$DIR/state
CLIENTS="sbatch srun squeue sinfo scancel scontrol sacct salloc sstat sattach"

# The daemons and the clients called from here read this config only.
SLURM_CONF=$CONF
export SLURM_CONF

write_wrappers() {
    mkdir -p "$DIR/bin"
    for cmd in $CLIENTS; do
        real=$(PATH=/usr/local/bin:/usr/bin:/bin command -v "$cmd" 2>/dev/null) || continue
        cat > "$DIR/bin/$cmd" <<EOF
#!/bin/sh
# written by profiles/slurm/localhost.sh: $cmd against the test cluster of $DIR
SLURM_CONF='$CONF'
export SLURM_CONF
exec '$real' "\$@"
EOF
        chmod 755 "$DIR/bin/$cmd"
    done
}

start_munge() {
    mkdir -p "$MUNGE"
    # munged checks the key's and the socket's directories: owned by its user, not writable
    # by others, every parent root-owned (or sticky, like /tmp)
    chmod 755 "$MUNGE"
    if [ ! -s "$MUNGE/munge.key" ]; then
        dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 2>/dev/null
    fi
    chmod 400 "$MUNGE/munge.key"
    set -- --key-file="$MUNGE/munge.key" --socket="$MUNGE/munge.socket" \
        --pid-file="$MUNGE/munged.pid" --seed-file="$MUNGE/munged.seed" \
        --log-file="$MUNGE/munged.log"
    if id munge >/dev/null 2>&1; then
        chown -R munge:munge "$MUNGE"
        runuser -u munge -- munged "$@"
    else
        munged --force "$@"
    fi
}

start() {
    for pid in "$STATE/slurmctld.pid" "$STATE/slurmd.pid" "$MUNGE/munged.pid"; do
        if [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then
            echo "a test cluster is already running from $DIR ($pid); run '$0 stop' first" >&2
            exit 1
        fi
    done
    mkdir -p "$DIR" "$STATE/ctld" "$STATE/d"
    chmod 755 "$DIR"  # munged (user munge) must reach $DIR/munge
    write_wrappers
    start_munge

    host=$(hostname -s)
    node=$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/")
    cat > "$CONF" <<EOF
# written by profiles/slurm/localhost.sh: a one-node test cluster
ClusterName=cprbench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
AuthType=auth/munge
AuthInfo=socket=$MUNGE/munge.socket
CredType=cred/munge
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
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$node
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld -c -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 60); do
        if "$DIR/bin/sinfo" -h -o %T 2>/dev/null | grep -q idle; then
            "$DIR/bin/sinfo"
            return 0
        fi
        sleep 1
    done
    echo "the node did not come up; see $STATE/slurmctld.log, $STATE/slurmd.log and $MUNGE/munged.log" >&2
    exit 1
}

stop() {
    for pid in "$STATE/slurmd.pid:slurmd" "$STATE/slurmctld.pid:slurmctld" "$MUNGE/munged.pid:munged"; do
        name=${pid##*:}
        pid=${pid%:*}
        [ -f "$pid" ] || continue
        p=$(cat "$pid")
        # only the daemon that wrote the file: a stale PID may belong to someone else by now
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$name" ] && kill "$p" 2>/dev/null; then
            # wait until it is gone, so that the next start (or the caller's cleanup) is safe
            for _ in $(seq 100); do
                kill -0 "$p" 2>/dev/null || break
                sleep 0.1
            done
        fi
        rm -f "$pid"
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) printf "export SLURM_CONF='%s'\nexport PATH='%s':\"\$PATH\"\n" "$CONF" "$DIR/bin" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
