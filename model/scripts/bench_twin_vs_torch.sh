#!/usr/bin/env bash
# Streaming s/frame of the twin (candle CPU) and of fnn's PyTorch on the same CPU, interleaved
# (the machine is shared, so both see the same load); prints each run and the medians.
#   model/scripts/bench_twin_vs_torch.sh [rounds] [frames] [threads]
# Needs: a release build of the example (cargo build --release -p twinloop-model --example
# bench_stream), a python with torch (PYTHON, default /work/venv-torch/bin/python) and fnn's
# source (FNN_SRC, default /work/fnn-src).
set -euo pipefail
rounds=${1:-5}
frames=${2:-12}
threads=${3:-2}
here=$(cd "$(dirname "$0")" && pwd)
bin=${BENCH_BIN:-${CARGO_TARGET_DIR:-$here/../../target}/release/examples/bench_stream}
py=${PYTHON:-/work/venv-torch/bin/python}
ours=()
theirs=()
for _ in $(seq "$rounds"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  a=$(RAYON_NUM_THREADS=$threads "$bin" "$frames" 10000 | grep "frames:")
  b=$("$py" "$here/bench_fnn_torch.py" "$frames" "$threads" | grep "threads:")
  echo "load $load | twin: $a | $b"
  ours+=("$(sed -E 's/.*median ([0-9.]+).*/\1/' <<<"$a")")
  theirs+=("$(sed -E 's/.*median ([0-9.]+).*/\1/' <<<"$b")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(median "${ours[@]}")
m2=$(median "${theirs[@]}")
echo "median of run medians: twin $m1 s/frame, torch $m2 s/frame, torch/twin = $(awk -v a="$m1" -v b="$m2" 'BEGIN {printf "%.2f", b / a}')"
