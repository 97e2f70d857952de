#!/usr/bin/env bash
# Stop the daemons tests/slurm/start.sh started for STATE_DIR, newest first (slurmd, slurmctld, munged):
# only the PIDs it recorded, and only while they still are those daemons (a PID can be reused); then the
# /etc/slurm config files it wrote for STATE_DIR (their first line names it).
set -uo pipefail

STATE=${1:?usage: stop.sh STATE_DIR}
PIDS="$STATE/started.pids"
remove_config() {
    for file in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
        head -n1 "$file" 2>/dev/null | grep -qxF "# merflow test cluster (tests/slurm/start.sh); state in $STATE" \
            && rm -f "$file"
    done
    return 0
}
[ -f "$PIDS" ] || { remove_config; exit 0; }

for pid in $(tac "$PIDS"); do
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
        munged|slurmctld|slurmd) ;;
        *) continue ;;                                   # gone already, or no longer ours
    esac
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
done
rm -f "$PIDS"
remove_config
