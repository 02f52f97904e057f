#!/usr/bin/env bash
# A real one-node SLURM cluster on this Debian machine, for development and CI.
#
#   slurm/local-cluster.sh start    install slurm-wlm + munge if missing, write slurm.conf,
#                                   start munged, slurmctld and slurmd, wait until the node is idle
#   slurm/local-cluster.sh stop     stop the three daemons (state is kept for the next start)
#   slurm/local-cluster.sh status   daemons and `sinfo`; exit 0 when the node takes jobs
#
# Needs root (it writes /etc/slurm/slurm.conf and runs the daemons as root, no systemd).
# `start` is idempotent: it (re)writes the same config and only starts what is not running.
# Environment: SLURM_LOCAL_FORCE=1 replaces an /etc/slurm/slurm.conf this script did not write;
# SLURM_LOCAL_WAIT (seconds, default 60) bounds the wait for the node.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by slurm/local-cluster.sh"
STATE=/var/lib/slurm-local
LOGS=/var/log/slurm-local
RUN=/run/slurm-local
NODE=$(hostname -s)
WAIT=${SLURM_LOCAL_WAIT:-60}

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: error: $*" >&2; exit 1; }

alive() {  # alive PIDFILE: the process named in the pid file runs
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sinfo >/dev/null; then
        return
    fi
    [[ $(id -u) == 0 ]] || die "slurm-wlm and munge are missing and installing them needs root"
    say "installing slurm-wlm and munge (apt-get)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
}

write_config() {
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF" && [[ ${SLURM_LOCAL_FORCE:-0} != 1 ]]; then
        die "$CONF exists and was not written by this script; move it away or set SLURM_LOCAL_FORCE=1"
    fi
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS" "$RUN"
    # The machine as slurmd sees it: CPUs, sockets, cores, threads, RealMemory (MB).
    local hardware
    hardware=$(slurmd -C | head -n1 | sed -e "s/^NodeName=[^ ]* //")
    local text
    text=$(cat <<EOF
$MARK; it is rewritten on every start.
ClusterName=local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
# No cgroups in containers: track processes by parent id, bind nothing (no cgroup.conf at all).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
# Look at pending jobs every 2 s (defaults: 60 s and 30 s), so a requeued job starts soon after
# its BeginTime instead of at the next minute.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No slurmdbd: no accounting, so sacct does not work; launchers poll squeue / scontrol instead.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
# Finished jobs stay visible to scontrol show job this long (seconds): what a launcher reads.
MinJobAge=300
KillWait=15
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE $hardware State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
    if [[ ! -f $CONF ]] || [[ $(cat "$CONF") != "$text" ]]; then
        printf '%s\n' "$text" > "$CONF"
        say "wrote $CONF"
        CONFIG_CHANGED=1
    fi
}

start_munge() {
    local pidfile=/run/munge/munged.pid
    if alive "$pidfile"; then return; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- munged
    say "started munged"
}

start_slurm() {
    if alive "$RUN/slurmctld.pid" && [[ ${CONFIG_CHANGED:-0} == 1 ]]; then
        say "config changed: restarting the daemons"
        stop_daemons
    fi
    if ! alive "$RUN/slurmctld.pid"; then
        slurmctld
        say "started slurmctld"
    fi
    if ! alive "$RUN/slurmd.pid"; then
        slurmd
        say "started slurmd"
    fi
}

node_state() {
    sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1 | tr -d '*~#$@'
}

wait_ready() {
    local deadline=$((SECONDS + WAIT)) state=""
    while ((SECONDS < deadline)); do
        state=$(node_state || true)
        case $state in
            idle|mixed|allocated|completing) say "node $NODE is $state"; sinfo; return 0 ;;
            down|drained|draining|drain)
                # Left down by an earlier unclean stop: give it back to the scheduler.
                scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die "node $NODE is '${state:-not answering}' after ${WAIT}s; see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

stop_one() {  # stop_one NAME PIDFILE
    if alive "$2"; then
        local pid
        pid=$(cat "$2")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        say "stopped $1"
    fi
    rm -f "$2"
}

stop_daemons() {
    stop_one slurmd "$RUN/slurmd.pid"
    stop_one slurmctld "$RUN/slurmctld.pid"
}

status() {
    local code=0
    for pair in munged:/run/munge/munged.pid slurmctld:$RUN/slurmctld.pid slurmd:$RUN/slurmd.pid; do
        if alive "${pair#*:}"; then echo "${pair%%:*}: running (pid $(cat "${pair#*:}"))"
        else echo "${pair%%:*}: stopped"; code=1; fi
    done
    if sinfo >/dev/null 2>&1; then sinfo; squeue; else echo "sinfo: no answer"; code=1; fi
    case $(node_state || true) in idle|mixed|allocated|completing) ;; *) code=1 ;; esac
    return $code
}

case ${1:-} in
    start)
        [[ $(id -u) == 0 ]] || die "start needs root (it writes $CONF and runs the daemons)"
        install_packages
        write_config
        start_munge
        start_slurm
        wait_ready ;;
    stop)
        stop_daemons
        stop_one munged /run/munge/munged.pid ;;
    status)
        status ;;
    *)
        echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
