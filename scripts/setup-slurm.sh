#!/usr/bin/env bash
# Makes a SLURM cluster available on this machine, for the @contexec/slurm tests: when `sinfo`
# already shows an idle node and `sacct` answers, nothing is done. Otherwise it installs
# slurm-wlm, slurmdbd, munge and mariadb-server when missing, writes a one-node configuration
# (only where none exists, or where this script wrote it), and starts what is not running:
# munged, MariaDB (with a database and user for slurmdbd), slurmdbd, slurmctld, slurmd.
# There is no systemd on these machines: daemons start in the background, detached from this
# shell, and the script waits until each one answers. Idempotent; safe before every test run.
#   CONTEXEC_SLURM_CPUS   CPUs the node declares (default 8; see packages/slurm/README.md)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

conf_dir=/etc/slurm
slurm_conf=$conf_dir/slurm.conf
cgroup_conf=$conf_dir/cgroup.conf
dbd_conf=$conf_dir/slurmdbd.conf
marker="# Written by contexec scripts/setup-slurm.sh; it rewrites this file while this line is here."
logs=/var/log/slurm
cluster=contexec
node=$(hostname -s)

node_state() { timeout 10 sinfo --noheader --nodes="$node" --format=%T 2>/dev/null | head -n 1 || true; }
cluster_ready() {
  case "$(node_state)" in idle* | mixed* | allocated* | completing*) ;; *) return 1 ;; esac
  timeout 10 sacct --noheader -X --starttime=now-1minute --format=JobID >/dev/null 2>&1
}

cpus=${CONTEXEC_SLURM_CPUS:-8}
mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024 * 3 / 4) }' /proc/meminfo)
# The database password: kept from an earlier run (it lives only in slurmdbd.conf), else new.
db_pass=$(sed -n 's/^StoragePass=//p' "$dbd_conf" 2>/dev/null || true)
[ -n "$db_pass" ] || db_pass=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')

slurm_conf_text() {
  cat <<EOF
$marker
ClusterName=$cluster
SlurmctldHost=$node
AuthType=auth/munge
# No MPI library here: srun would try PMIx and log errors.
MpiDefault=none
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
# Jobs live in cgroups (v1 here): --mem is enforced, and a job over it ends OUT_OF_MEMORY.
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=30
SelectType=select/cons_tres
# Memory is a consumable resource, so --mem becomes the job's cgroup limit (with CR_Core
# alone the limit stays the whole node's); a job without --mem gets DefMemPerCPU per CPU.
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem_mb / cpus))
SchedulerType=sched/backfill
# Schedule a batch job when it is submitted (the default waits up to 3 s to gather several).
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
# SIGKILL 10 s after the SIGTERM of a time limit or a cancellation (default 30): quicker tests.
KillWait=10
# The node may declare more CPUs than the machine has (test jobs mostly wait): see the README.
SlurmdParameters=config_overrides
# Accounting through slurmdbd into MariaDB: sacct sees finished jobs.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$node
JobCompType=jobcomp/none
NodeName=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

cgroup_conf_text() {
  cat <<EOF
$marker
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
ConstrainCores=no
ConstrainDevices=no
EOF
}

dbd_conf_text() {
  cat <<EOF
$marker
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$logs/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$db_pass
EOF
}

# ours FILE: absent, or written by this script.
ours() { [ ! -e "$1" ] || grep -qxF "$marker" "$1"; }
# Our configuration as it stands: nothing to rewrite (someone else's counts as current).
conf_current() {
  local f
  for f in slurm_conf:"$slurm_conf" cgroup_conf:"$cgroup_conf" dbd_conf:"$dbd_conf"; do
    ours "${f#*:}" || continue
    [ -r "${f#*:}" ] || return 0
    "${f%%:*}_text" | cmp -s - "${f#*:}" || return 1
  done
}

if conf_current && command -v sinfo >/dev/null 2>&1 && command -v sacct >/dev/null 2>&1 && cluster_ready; then
  log "SLURM is running ($(sinfo --version), node $node $(node_state), accounting on)"
  exit 0
fi

# The daemons by the paths they are started from (an ordinary user's PATH lacks /usr/sbin).
ensure_commands sbatch:slurm-wlm sacct:slurm-wlm /usr/sbin/slurmctld:slurm-wlm /usr/sbin/slurmd:slurm-wlm /usr/sbin/slurmdbd:slurmdbd /usr/sbin/munged:munge /usr/sbin/mariadbd:mariadb-server
is_root || die "no SLURM cluster answers here; starting one needs root (or ask your cluster's admins)"

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every half second until it succeeds.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq 1 $((seconds * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "$what did not come up within ${seconds} s; see the logs in $logs"
}

# start_detached LOG COMMAND...: starts a daemon in its own session, so it outlives this shell.
start_detached() {
  local logfile=$1
  shift
  nohup setsid "$@" >>"$logfile" 2>&1 </dev/null &
}

# pid_alive PIDFILE: the process the file names is running.
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mkdir -p "$logs" "$conf_dir"

# --- munge: every SLURM message is signed with the shared key --------------------------------
munge_works() { munge -n </dev/null | unmunge >/dev/null; }
if ! munge_works 2>/dev/null; then
  if [ ! -s /etc/munge/munge.key ]; then
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  log "starting munged"
  # munged forks into the background itself; as root it would refuse to run.
  runuser -u munge -- /usr/sbin/munged
  wait_for munged 20 munge_works
fi

# --- configuration: written only where absent, or where this script wrote it -----------------
for f in "$slurm_conf" "$cgroup_conf" "$dbd_conf"; do
  ours "$f" || die "$f exists and was not written by contexec, but no cluster answers; start that cluster, or move the file away and run this again"
done

changed=0
# write_conf FILE MODE: writes stdin to FILE when its content differs; marks the change.
write_conf() {
  local file=$1 mode=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -e "$file" ] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$file"
    changed=1
    log "wrote $file"
  fi
}
write_conf "$slurm_conf" 0644 < <(slurm_conf_text)
write_conf "$cgroup_conf" 0644 < <(cgroup_conf_text)
write_conf "$dbd_conf" 0600 < <(dbd_conf_text)

# A changed configuration is read by the daemons at start: stop the ones this script runs
# (found by their pid files), so that they start again below with it.
if [ "$changed" = 1 ]; then
  for d in slurmd slurmctld slurmdbd; do
    if pid_alive "/run/$d.pid"; then
      log "configuration changed: restarting $d"
      kill "$(cat "/run/$d.pid")"
      for _ in $(seq 1 40); do pid_alive "/run/$d.pid" || break; sleep 0.25; done
    fi
  done
fi

# --- MariaDB: the accounting database ---------------------------------------------------------
db_answers() { mariadb-admin --connect-timeout=2 ping; }
if ! db_answers >/dev/null 2>&1; then
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  log "starting MariaDB (log: $logs/mariadb.log)"
  start_detached "$logs/mariadb.log" /usr/sbin/mariadbd --user=mysql
  wait_for MariaDB 60 db_answers
fi
# root reaches the server through its socket (unix_socket authentication, Debian's default).
mariadb --batch <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF

# --- slurmdbd, then the cluster's record in it ------------------------------------------------
dbd_answers() { timeout 10 sacctmgr --noheader --parsable2 show cluster format=Cluster; }
if ! pid_alive /run/slurmdbd.pid || ! dbd_answers >/dev/null 2>&1; then
  log "starting slurmdbd"
  slurmdbd
  wait_for slurmdbd 60 dbd_answers
fi
if ! dbd_answers 2>/dev/null | grep -qxF "$cluster"; then
  sacctmgr --immediate add cluster "$cluster" >/dev/null
fi

# --- slurmctld and slurmd ---------------------------------------------------------------------
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd
ctld_answers() { timeout 10 scontrol ping | grep -q 'is UP'; }
if ! pid_alive /run/slurmctld.pid || ! ctld_answers; then
  log "starting slurmctld"
  slurmctld
  wait_for slurmctld 60 ctld_answers
fi
if ! pid_alive /run/slurmd.pid; then
  log "starting slurmd"
  slurmd
fi
node_up() { case "$(node_state)" in idle* | mixed* | allocated* | completing*) return 0 ;; *) return 1 ;; esac; }
for _ in $(seq 1 60); do node_up && break; sleep 0.5; done
if ! node_up; then
  # A node left down or drained by an earlier run of the daemons comes back by hand.
  scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
  wait_for "the node $node" 30 node_up
fi
wait_for "sacct" 30 cluster_ready
log "SLURM is running ($(sinfo --version), node $node $(node_state), accounting on)"
