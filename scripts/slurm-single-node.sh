#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for `twinloop sweep submit --slurm` on a workstation
# and for CI: munge, slurmctld and slurmd, configured from deploy/slurm/slurm.conf.in.
#
#   scripts/slurm-single-node.sh start [STATE_DIR]   # prints `export SLURM_CONF=...`
#   scripts/slurm-single-node.sh stop  [STATE_DIR]
#
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge) and root: slurmd starts
# jobs as their submitting user. GPUs (/dev/nvidia0..) become `gpu` generic resources.
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-start}"
state="$(realpath -m "${2:-${TWINLOOP_SLURM_STATE:-/tmp/twinloop-slurm}}")"
conf="$state/slurm.conf"

stop() {
    for d in slurmd slurmctld; do
        if [ -s "$state/$d.pid" ]; then
            kill "$(cat "$state/$d.pid")" 2>/dev/null || true
        fi
    done
}

case "$action" in
stop)
    stop
    exit 0
    ;;
start) ;;
*)
    echo "usage: $0 start|stop [STATE_DIR]" >&2
    exit 2
    ;;
esac

for bin in munged slurmctld slurmd sbatch; do
    if ! command -v "$bin" >/dev/null && [ ! -x "/usr/sbin/$bin" ]; then
        echo "slurm-single-node: $bin is missing; run: apt-get install slurm-wlm munge" >&2
        exit 1
    fi
done
if [ "$(id -u)" != 0 ]; then
    echo "slurm-single-node: must run as root (slurmd starts jobs as their user)" >&2
    exit 1
fi
stop
mkdir -p "$state/ctld" "$state/d"
host="$(hostname -s)"
cpus="$(nproc)"
# Leave the system 512 MiB; Slurm refuses a node whose memory is below RealMemory.
mem_mb=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 512))
gres=""
gpus=$(find /dev -maxdepth 1 -name 'nvidia[0-9]*' 2>/dev/null | wc -l)
if [ "$gpus" -gt 0 ]; then
    gres=" Gres=gpu:$gpus"
    : >"$state/gres.conf"
    for dev in /dev/nvidia[0-9]*; do
        echo "NodeName=$host Name=gpu File=$dev" >>"$state/gres.conf"
    done
fi
sed -e "s|@HOST@|$host|g; s|@STATE@|$state|g; s|@CPUS@|$cpus|g; s|@MEM_MB@|$mem_mb|g" \
    -e "s|@CTLD_PORT@|${TWINLOOP_SLURMCTLD_PORT:-6817}|g; s|@D_PORT@|${TWINLOOP_SLURMD_PORT:-6818}|g" \
    -e "s|@NODE_GRES@|$gres|g" deploy/slurm/slurm.conf.in >"$conf"
if [ "$gpus" -gt 0 ]; then
    echo "GresTypes=gpu" >>"$conf"
fi
export SLURM_CONF="$conf"

# munge: one daemon per host; reuse a running one.
if ! munge -n </dev/null >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create 2>/dev/null || /usr/sbin/create-munge-key
    fi
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
fi
/usr/sbin/slurmctld -f "$conf"
/usr/sbin/slurmd -f "$conf"
# Up when the node answers idle; a container's first start can take a few seconds.
for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        echo "export SLURM_CONF=$conf"
        exit 0
    fi
    sleep 1
done
echo "slurm-single-node: the node did not come up within 60 s; logs: $state/slurmctld.log, $state/slurmd.log" >&2
sinfo >&2 || true
tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
exit 1
