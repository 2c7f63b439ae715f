#!/usr/bin/env bash
# The imaging pipeline's rig-scale benchmark and its peers in one run (BENCHMARKS.md, "Cells and
# fluorescence"): 512x512 simulated frames, 1,000 neurons, piecewise-rigid on, one plane.
# twinloop's figures, then the numpy suite2p-method registration and oasis-deconv peers run by
# the same command, and one table of ratios. Extra arguments go to `twinloop bench imaging`.
#
#   bash scripts/bench_imaging.sh [--frames 1000 --rate 100 --peer-calls 300 --peer-runs 3]
#
# VENV (default /work/venv-bench) is made if missing: numpy (tests/requirements.txt) and
# oasis-deconv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-/work/venv-bench}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt oasis-deconv
fi
cargo build --release -p twinloop-rig --bin twinloop
bin="${CARGO_TARGET_DIR:-target}/release/twinloop"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" bench imaging --python "$VENV/bin/python" "$@"
