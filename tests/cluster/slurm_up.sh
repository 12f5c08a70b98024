#!/usr/bin/env bash
# Brings up a single-node SLURM cluster on this machine, for the cluster integration test
# (tests/cluster/test_slurm.py): munge, MariaDB, slurmdbd (the accounting that sacct reads),
# slurmctld and slurmd, started by hand (no systemd), all as root. Idempotent: what already
# runs is kept, so running it twice is harmless. tests/cluster/slurm_down.sh stops what it started.
#
# Needs Debian's slurm-wlm, slurmdbd, munge and mariadb-server (tests/cluster/run.sh installs
# them). The node gets the CPUs and memory that `slurmd -C` detects, and a gpu GRES per NVIDIA
# device when /dev/nvidia[0-9]* exist. Writes /etc/slurm/{slurm,slurmdbd,gres}.conf (refusing to
# replace files it did not write: this is for a test machine, not for a real cluster) and keeps
# state and logs in $SFSRNET_SLURM_DIR (default results/slurm in the checkout).
#
# Environment: SFSRNET_SLURM_DIR (state folder), SFSRNET_SLURM_ACCOUNT (default sfsrnet: the
# account made for root, which the test submits to).
set -euo pipefail

state="${SFSRNET_SLURM_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/results/slurm}"
account="${SFSRNET_SLURM_ACCOUNT:-sfsrnet}"
cluster=sfsrnet
marker="# written by sfsrnet tests/cluster/slurm_up.sh"
etc=/etc/slurm

say() { echo "[slurm-up] $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

[[ $EUID -eq 0 ]] || die "run as root (it starts munged, MariaDB and the SLURM daemons)"
for cmd in munged mariadbd slurmdbd slurmctld slurmd sacctmgr sinfo; do
    command -v "$cmd" >/dev/null ||
        die "$cmd not found; install slurm-wlm slurmdbd munge mariadb-server (bash tests/cluster/run.sh does)"
done
mkdir -p "$state"/{log,run,ctld,spool}
started="$state/started" # daemons this script started, one per line, for slurm_down.sh
touch "$started"
started_by_us() { grep -qx "$1" "$started" || echo "$1" >>"$started"; }
conf_changed=0

# Is the daemon of a pid file alive?
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

wait_for() { # SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2
    shift 2
    for ((i = 0; i < limit * 2; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    die "$what did not come up within ${limit} s; see the logs in $state/log"
}

write_conf() { # PATH MODE, content on stdin; never replaces a file this script did not write
    local path=$1 mode=$2 tmp
    if [[ -e "$path" ]] && ! grep -qF "$marker" "$path"; then
        die "$path exists and was not written by this script; refusing to replace it"
    fi
    tmp="$(mktemp)"
    cat >"$tmp"
    if ! cmp -s "$tmp" "$path" 2>/dev/null; then
        install -m "$mode" "$tmp" "$path"
        conf_changed=1
    fi
    rm -f "$tmp"
}

# --- munge: the key comes with the package; the daemon runs as the munge user ---------------
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating the munge key"
    mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- munged
    started_by_us munged
    wait_for 20 munged sh -c 'munge -n </dev/null | unmunge'
fi

# --- MariaDB for slurmdbd ----------------------------------------------------------------------
dbpass_file="$state/dbpass"
[[ -s "$dbpass_file" ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '+/=' >"$dbpass_file")
dbpass="$(cat "$dbpass_file")"
if ! mariadb-admin ping >/dev/null 2>&1; then
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        say "initialising the MariaDB data folder"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$state/log/mariadb-install.log" 2>&1
    fi
    # The server runs as mysql: its pid file and log go where that user can write.
    mkdir -p /run/mysqld "$state/mariadb" && chown mysql:root /run/mysqld "$state/mariadb"
    say "starting MariaDB"
    setsid mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
        --bind-address=127.0.0.1 --pid-file="$state/mariadb/mariadb.pid" \
        --log-error="$state/mariadb/mariadb.log" </dev/null >/dev/null 2>&1 &
    started_by_us mariadb
    wait_for 60 MariaDB mariadb-admin ping
fi
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$dbpass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$dbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# --- configuration -----------------------------------------------------------------------------
mkdir -p "$etc"
# The node as slurmd detects it: NodeName=<host> CPUs=... RealMemory=...
node_line="$(slurmd -C | head -n 1)"
node="$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")"
[[ -n "$node" ]] || die "slurmd -C printed no node line: $node_line"
gres_types=""
gres_node=""
gpus=(/dev/nvidia[0-9]*)
: >"$state/gres.conf.new"
if [[ -e "${gpus[0]}" ]]; then
    gres_types="GresTypes=gpu"
    gres_node="Gres=gpu:${#gpus[@]}"
    for dev in "${gpus[@]}"; do
        echo "NodeName=$node Name=gpu File=$dev" >>"$state/gres.conf.new"
    done
fi

write_conf "$etc/slurm.conf" 644 <<CONF
$marker
# A single-node test cluster: no cgroups (containers without systemd), accounting in slurmdbd.
ClusterName=$cluster
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
# Cores are allocated, memory is not: the profiles' memory sizes are meant for real studies and
# would let one training at a time run here (a job still needs a node with that much memory).
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=300
InactiveLimit=0
KillWait=10
SlurmdTimeout=120
$gres_types
$node_line $gres_node State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
{
    echo "$marker"
    cat "$state/gres.conf.new"
} | write_conf "$etc/gres.conf" 644
rm -f "$state/gres.conf.new"
write_conf "$etc/slurmdbd.conf" 600 <<CONF
$marker
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$state/run/slurmdbd.pid
LogFile=$state/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$dbpass
StorageLoc=slurm_acct_db
CONF

# --- daemons -----------------------------------------------------------------------------------
if ! alive "$state/run/slurmdbd.pid"; then
    say "starting slurmdbd"
    slurmdbd
    started_by_us slurmdbd
fi
wait_for 60 slurmdbd sacctmgr -n list cluster
if [[ -z "$(sacctmgr -n -P list cluster "$cluster" format=cluster)" ]]; then
    sacctmgr -i add cluster "$cluster" >/dev/null
fi
if [[ -z "$(sacctmgr -n -P list account "$account" format=account)" ]]; then
    sacctmgr -i add account "$account" Cluster="$cluster" Description="sfsrnet tests" \
        Organization=sfsrnet >/dev/null
fi
if ! sacctmgr -n -P list association user=root account="$account" format=account | grep -q .; then
    sacctmgr -i add user root Account="$account" Cluster="$cluster" >/dev/null
fi

if ! alive "$state/run/slurmctld.pid"; then
    say "starting slurmctld"
    slurmctld
    started_by_us slurmctld
elif ((conf_changed)); then
    say "configuration changed: restarting slurmctld"
    kill "$(cat "$state/run/slurmctld.pid")"
    while alive "$state/run/slurmctld.pid"; do sleep 0.2; done
    slurmctld
fi
wait_for 60 slurmctld scontrol ping
if ((conf_changed)) && alive "$state/run/slurmd.pid"; then
    say "configuration changed: restarting slurmd"
    kill "$(cat "$state/run/slurmd.pid")"
    while alive "$state/run/slurmd.pid"; do sleep 0.2; done
fi
if ! alive "$state/run/slurmd.pid"; then
    say "starting slurmd"
    slurmd
    started_by_us slurmd
fi

# A node left down or drained by an earlier run is put back into service.
node_state() { sinfo -h -n "$node" -o %t 2>/dev/null | head -n 1; }
for ((i = 0; i < 120; i++)); do
    case "$(node_state)" in
        idle | mix | alloc) break ;;
        down* | drain* | drng*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
done
case "$(node_state)" in
    idle | mix | alloc) ;;
    *) die "node $node is '$(node_state)', not idle; see $state/log/slurmd.log and slurmctld.log" ;;
esac
say "up: cluster $cluster, node $node ($(sinfo -h -n "$node" -o '%c CPUs, %m MB')), account $account"
