#!/usr/bin/env bash
# Stops the daemons that tests/cluster/slurm_up.sh started (and only those), newest first.
# --purge also removes its state folder and the /etc/slurm files it wrote.
set -euo pipefail

state="${SFSRNET_SLURM_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/results/slurm}"
marker="# written by sfsrnet tests/cluster/slurm_up.sh"
say() { echo "[slurm-down] $*" >&2; }

stop() { # NAME PIDFILE
    local pid
    [[ -s "$2" ]] || return 0
    pid="$(cat "$2")"
    kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $1 ($pid)"
    kill "$pid"
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    say "$1 did not stop within 30 s; killing it"
    kill -9 "$pid" 2>/dev/null || true
}

if [[ -f "$state/started" ]]; then
    # Jobs still queued or running would outlive their daemons.
    if grep -qx slurmctld "$state/started" && command -v scancel >/dev/null; then
        scancel --user=root 2>/dev/null || true
    fi
    for daemon in slurmd slurmctld slurmdbd mariadb munged; do
        grep -qx "$daemon" "$state/started" || continue
        case "$daemon" in
            munged) stop munged /run/munge/munged.pid ;;
            mariadb) stop mariadb "$state/mariadb/mariadb.pid" ;;
            *) stop "$daemon" "$state/run/$daemon.pid" ;;
        esac
    done
    rm -f "$state/started"
fi

if [[ "${1:-}" == "--purge" ]]; then
    for conf in slurm.conf slurmdbd.conf cgroup.conf gres.conf; do
        if [[ -f "/etc/slurm/$conf" ]] && grep -qF "$marker" "/etc/slurm/$conf"; then
            rm -f "/etc/slurm/$conf"
        fi
    done
    rm -rf "$state"
    say "purged $state and the configuration files"
fi
