#!/usr/bin/env bash
# The whole test suite from a fresh clone: the Python peers (pyzmq, numpy, pynwb, nwbinspector)
# and the client package (python/twinloop_client) in a local venv, then every Rust test in the
# workspace, NWB export included (feature `nwb`).
# Needs the Rust toolchain, Python 3, the HDF5 library (Debian: libhdf5-dev) and network access
# to the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
# The Python client, editable, for trying it by hand (the tests put this checkout's copy first on
# PYTHONPATH themselves).
.venv/bin/pip install --quiet --disable-pip-version-check -e python/twinloop_client
export TWINLOOP_PYTHON="$PWD/.venv/bin/python"
# The client's own checks, no daemon needed (about a second).
"$TWINLOOP_PYTHON" python/twinloop_client/tests/test_offline.py >/dev/null
cargo test --workspace --features twinloop-e2e/nwb
