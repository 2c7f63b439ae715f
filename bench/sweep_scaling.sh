#!/usr/bin/env bash
# Sweep throughput on this machine (#22): shards per hour on 1 core and on 2, and what Slurm
# adds per shard against the same shards run in a plain loop, alternated in one run.
#
#   bash bench/sweep_scaling.sh [ROUNDS] [SHARDS] [DURATION_S]
#
# Each shard is one simulated session of configs/sim.toml (512² frames, the full imaging
# pipeline, the closed loop) run as fast as the pipeline consumes, DURATION_S of rig time.
# Needs the release binary (cargo build --release) and, for the Slurm rounds, a running cluster
# (scripts/slurm-single-node.sh start; export SLURM_CONF=...). Prints one table line per round.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
shards="${2:-8}"
duration="${3:-20}"
bin="$PWD/target/release/twinloop"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seeds=$(seq -s, 1 "$shards")
cat >"$work/sweep.toml" <<TOML
[sweep]
name = "scaling"
kind = "session"
shards = $shards
[session]
protocols = ["$PWD/configs/sim.toml"]
[grid]
seed = [$seeds]
"session.duration_s" = [$duration.0]
[slurm]
cpus_per_task = 1
mem = "3G"
time = "01:00:00"
TOML
plan() { "$bin" sweep plan "$work/sweep.toml" --out "$1" >/dev/null; }
now() { date +%s.%N; }
slurm=0
if sinfo -h >/dev/null 2>&1; then slurm=1; fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | 1 core, in turn (s) | 2 cores, 2 at once (s) | Slurm array, 2 at once (s) | shards/h 1 core | shards/h 2 cores | Slurm overhead per shard (s) |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
    d="$work/one-$r"; plan "$d"
    t0=$(now); taskset -c 0 "$bin" sweep run "$d" --all >/dev/null 2>&1; t1=$(now)
    one=$(echo "$t1 - $t0" | bc)
    d="$work/two-$r"; plan "$d"
    t0=$(now); seq 0 $((shards - 1)) | xargs -P 2 -I{} "$bin" sweep run "$d" --shard {} >/dev/null 2>&1; t1=$(now)
    two=$(echo "$t1 - $t0" | bc)
    sl="–"; over="–"
    if [ "$slurm" = 1 ]; then
        d="$work/slurm-$r"; plan "$d"
        t0=$(now)
        ids=$("$bin" sweep submit "$d" --slurm | awk '/^(array|gather) job/ {print $3}' | paste -sd,)
        while [ -n "$(squeue -h -j "$ids" 2>/dev/null)" ]; do sleep 0.5; done
        t1=$(now)
        grep -q "rows from $shards of $shards shards" "$d/slurm/gather.out"
        sl=$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")
        over=$(printf '%.2f' "$(echo "($sl - $two) / $shards" | bc -l)")
    fi
    printf '| %s | %.1f | %.1f | %s | %.1f | %.1f | %s |\n' "$r" "$one" "$two" "$sl" \
        "$(echo "$shards * 3600 / $one" | bc -l)" "$(echo "$shards * 3600 / $two" | bc -l)" "$over"
done
