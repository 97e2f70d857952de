#!/usr/bin/env bash
# Start a private single-node SLURM cluster for the tests: its own munged, slurmctld and slurmd.
#
#   tests/slurm/start.sh STATE_DIR        then sbatch, squeue, snakemake --executor slurm ...
#   tests/slurm/stop.sh STATE_DIR         stops exactly the daemons this script started
#
# Follows ../shared/notes/local-slurm.md (Debian 12, slurm-wlm 22.05, no systemd). State, logs, pid files
# and the munge socket live in STATE_DIR, with free ports, so nothing of a machine's own munge is touched.
# slurm.conf must sit at the clients' default path (/etc/slurm): Snakemake's jobstep executor drops every
# SLURM_* variable, SLURM_CONF included, before it calls srun inside a job. The script writes it only
# where there is none or it is one of ours (a marker line), and stop.sh removes it again; the caller
# serialises test runs on one machine (tests/test_slurm.py holds a lock).
#
# Idempotent: a second start on the same STATE_DIR stops the daemons of the first and starts afresh.
# Exit 77: this machine cannot run SLURM for the tests (not root, packages missing and no apt-get, or a
# SLURM configuration of its own); the reason is on stderr. Any other non-zero exit is a real failure.
set -euo pipefail

STATE=${1:?usage: start.sh STATE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
cannot() { echo "cannot run SLURM here: $*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || cannot "the daemons must be started as root (running as $(id -un))"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm-wlm is not installed and apt-get is not available"
    echo "installing slurmctld slurmd slurm-client munge (apt)" >&2
    apt-get update -q >&2
    # The postinst scripts try to start the services; policy-rc.d refuses that without systemd: harmless.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client munge >&2
fi
PATH=/usr/sbin:/sbin:$PATH
CONF_DIR=/etc/slurm
MARKER="# merflow test cluster (tests/slurm/start.sh)"
for file in slurm.conf gres.conf; do
    if [ -e "$CONF_DIR/$file" ] && ! head -n1 "$CONF_DIR/$file" | grep -qF "$MARKER"; then
        cannot "$CONF_DIR/$file exists and is not a merflow test cluster's: not overwriting this machine's SLURM"
    fi
done
# Another test cluster still running from another STATE_DIR owns /etc/slurm: do not take it over.
OTHER=$(head -n1 "$CONF_DIR/slurm.conf" 2>/dev/null | sed -n "s|^$MARKER; state in ||p" || true)
if [ -n "$OTHER" ] && [ "$OTHER" != "$STATE" ] && [ -f "$OTHER/started.pids" ]; then
    for pid in $(cat "$OTHER/started.pids"); do
        kill -0 "$pid" 2>/dev/null && { echo "a merflow test cluster is running from $OTHER; stop it first:" \
            "tests/slurm/stop.sh $OTHER" >&2; exit 1; }
    done
fi

"$HERE/stop.sh" "$STATE" 2>/dev/null || true
rm -rf "$STATE"
mkdir -p "$STATE"/{munge,slurmctld,slurmd,log}
chmod 755 "$STATE"                               # the slurm and munge users must reach their folders
chown munge: "$STATE/munge"                      # munged refuses a socket folder others can write
chown slurm: "$STATE/slurmctld" "$STATE/log"
: > "$STATE/started.pids"

# munged: Debian's postinst makes /etc/munge/munge.key; make one (private to this cluster) if it is missing.
KEY=/etc/munge/munge.key
if [ ! -r "$KEY" ]; then
    KEY="$STATE/munge/munge.key"
    dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none
    chown munge: "$KEY" && chmod 400 "$KEY"
fi
SOCKET="$STATE/munge/munge.socket"
runuser -u munge -- munged --socket="$SOCKET" --key-file="$KEY" --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
cat "$STATE/munge/munged.pid" >> "$STATE/started.pids"
munge --socket="$SOCKET" -n | unmunge --socket="$SOCKET" >/dev/null

# Two free TCP ports for slurmctld and slurmd (bash's /dev/tcp connects only where something listens).
free_port() {
    local port
    while :; do
        port=$(( 20000 + RANDOM % 20000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && [ "$port" != "${1:-}" ]; then
            echo "$port"; return
        fi
    done
}
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port "$CTLD_PORT")

HOST=$(hostname -s)
grep -qw "$HOST" /etc/hosts || getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
CPUS=$(nproc)
MEM_MB=$(( $(free -m | awk '/^Mem:/ {print $2}') - 1024 ))

# Two fake GPUs (empty device files): let a job ask for --gpus=1 as the train rule does on a GPU cluster,
# so the test sees SLURM schedule the request, and two training folds run side by side. Nothing uses them.
touch "$STATE/nvidia0" "$STATE/nvidia1"
mkdir -p "$CONF_DIR"
cat > "$CONF_DIR/gres.conf" <<EOF
$MARKER; state in $STATE
NodeName=$HOST Name=gpu File=$STATE/nvidia[0-1]
EOF
cat > "$CONF_DIR/slurm.conf" <<EOF
$MARKER; state in $STATE
ClusterName=merflowtest
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=socket=$SOCKET
MpiDefault=none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Backfill every 2 s (default 30): a job queued behind one that waits for a GPU starts without delay.
SchedulerParameters=bf_interval=2
ReturnToService=2
# No slurmdbd: sacct cannot work, so snakemake must poll with --slurm-status-command squeue, and squeue
# keeps finished jobs for MinJobAge seconds (at least 3 x the plugin's initial wait, see the recipe).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
DefMemPerCPU=1024
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
chmod 644 "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"
unset SLURM_CONF

slurmctld                                        # daemonizes; pid file as configured
slurmd
for daemon in slurmctld slurmd; do
    for _ in $(seq 50); do [ -s "$STATE/$daemon.pid" ] && break; sleep 0.1; done
    cat "$STATE/$daemon.pid" >> "$STATE/started.pids"
done

for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    sleep 0.5
done
sinfo -h -o %T | grep -qx idle || { echo "the node did not become idle; see $STATE/log" >&2; exit 1; }
timeout 60 srun -N1 -t 1 true                     # end to end: a job runs
echo "SLURM test cluster up: $(sinfo -h -o '%N %C %m %G'), state in $STATE"
