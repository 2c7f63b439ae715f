#!/usr/bin/env bash
# The twin (candle CPU, twinloop's fast paths) against fnn's own PyTorch network on the same CPU:
# fnn's released architecture (4 streams, 10,000 units), streaming at batch 1, interleaved
# round by round so both see the same load. Prints every figure BENCHMARKS.md quotes:
#   - wall s/frame on THREADS threads (median over rounds of each run's steady median), and
#   - one-thread CPU time per frame (the compute cost, whatever else the machine does),
# PyTorch under both OpenMP wait policies (ACTIVE busy-waits, PASSIVE sleeps; the better is the
# peer), with the CPU model, its vector ISA and the load at each round.
#
#   model/scripts/bench_twin_vs_torch.sh [--python PY] [--fnn DIR] [rounds] [frames] [threads]
#
# Without --python it makes its own venv (torch and numpy from PyPI) under
# ${TWINLOOP_BENCH_CACHE:-$HOME/.cache/twinloop-bench}; without --fnn it clones cajal/fnn there
# at the commit the parity fixtures were made with (614d33e). It builds the twin's side itself
# (cargo build --release -p twinloop-model --example bench_stream).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TWINLOOP_BENCH_CACHE:-$HOME/.cache/twinloop-bench}
py=""
fnn=""
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --python) py=$2; shift 2 ;;
    --fnn) fnn=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
rounds=${1:-5}
frames=${2:-12}
threads=${3:-2}
fnn_commit=614d33e

if [[ -z $py ]]; then
  py=$cache/venv-torch/bin/python
  if [[ ! -x $py ]]; then
    echo "making $cache/venv-torch (torch and numpy from PyPI)" >&2
    python3 -m venv "$cache/venv-torch"
    "$cache/venv-torch/bin/pip" install --quiet --disable-pip-version-check torch numpy safetensors
  fi
fi
if [[ -z $fnn ]]; then
  fnn=$cache/fnn
  if [[ ! -d $fnn/fnn ]]; then
    echo "cloning cajal/fnn at $fnn_commit into $fnn" >&2
    git clone --quiet https://github.com/cajal/fnn "$fnn"
    git -C "$fnn" checkout --quiet "$fnn_commit"
  fi
fi
"$py" -c "import torch, numpy" || { echo "$py lacks torch or numpy" >&2; exit 1; }
[[ -d $fnn/fnn ]] || { echo "$fnn is not an fnn checkout (no fnn/ package)" >&2; exit 1; }
(cd "$root" && cargo build --quiet --release -p twinloop-model --example bench_stream)
bin=${BENCH_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/examples/bench_stream}

flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=$(for f in avx2 fma avx512f avx512bw avx512vl avx512_vnni amx_tile; do [[ " $flags " == *" $f "* ]] && printf '%s ' "$f"; done)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(nproc) cpus; vector ISA: ${isa:-none of avx2/avx512}"
echo "torch $("$py" -c 'import torch; print(torch.__version__)'); fnn $(git -C "$fnn" rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)'); twinloop $(git -C "$root" rev-parse --short HEAD)"
echo "rounds $rounds, frames $frames, threads $threads"

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -nE "s/.*$1 ([0-9.]+).*/\\1/p" | head -1; }
ours=(); act=(); pas=(); ours1=(); act1=(); pas1=()
for r in $(seq "$rounds"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  a=$(RAYON_NUM_THREADS=$threads "$bin" "$frames" 10000)
  b=$(FNN_SRC=$fnn OMP_WAIT_POLICY=ACTIVE "$py" "$here/bench_fnn_torch.py" "$frames" "$threads")
  c=$(FNN_SRC=$fnn OMP_WAIT_POLICY=PASSIVE "$py" "$here/bench_fnn_torch.py" "$frames" "$threads")
  a1=$(RAYON_NUM_THREADS=1 "$bin" "$frames" 10000)
  b1=$(FNN_SRC=$fnn OMP_WAIT_POLICY=ACTIVE "$py" "$here/bench_fnn_torch.py" "$frames" 1)
  c1=$(FNN_SRC=$fnn OMP_WAIT_POLICY=PASSIVE "$py" "$here/bench_fnn_torch.py" "$frames" 1)
  ours+=("$(field median <<<"$(grep 'frames:' <<<"$a")")")
  act+=("$(field median <<<"$(grep 'threads:' <<<"$b")")")
  pas+=("$(field median <<<"$(grep 'threads:' <<<"$c")")")
  ours1+=("$(field median <<<"$(grep 'CPU time' <<<"$a1")")")
  act1+=("$(field median <<<"$(grep 'CPU time' <<<"$b1")")")
  pas1+=("$(field median <<<"$(grep 'CPU time' <<<"$c1")")")
  echo "round $r, load $load: $threads threads s/frame twin ${ours[-1]} torch active ${act[-1]} passive ${pas[-1]}; 1-thread CPU s/frame twin ${ours1[-1]} torch active ${act1[-1]} passive ${pas1[-1]}"
done
report() { # label, twin values, active values, passive values
  local m t1 t2 best
  m=$(median "${@:2:$rounds}")
  t1=$(median "${@:$((2 + rounds)):$rounds}")
  t2=$(median "${@:$((2 + 2 * rounds)):$rounds}")
  best=$(awk -v x="$t1" -v y="$t2" 'BEGIN {print (x < y) ? x : y}')
  echo "$1: twin $m, torch active $t1, passive $t2; peer (better policy) $best; torch/twin = $(awk -v a="$m" -v b="$best" 'BEGIN {printf "%.2f", b / a}')"
}
echo "medians over $rounds rounds (s/frame):"
report "streaming wall, $threads threads" "${ours[@]}" "${act[@]}" "${pas[@]}"
report "CPU time, 1 thread" "${ours1[@]}" "${act1[@]}" "${pas1[@]}"
