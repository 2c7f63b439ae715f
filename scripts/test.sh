#!/usr/bin/env bash
# The whole test suite from a fresh clone: the Python peers (pyzmq, numpy, pynwb, nwbinspector)
# and the client package (python/twinloop_client) in a local venv, then every Rust test in the
# workspace, NWB export included (feature `nwb`).
# Needs the Rust toolchain, Python 3, the HDF5 library (Debian: libhdf5-dev; installed below when
# run as root with apt-get) and network access to the package registries; GNU Octave with Java and
# JeroMQ for the ScanImage bridge (installed likewise; its test skips, saying so, without them).
set -euo pipefail
cd "$(dirname "$0")/.."
# The NWB export links the HDF5 C library: installed here where this user can (root with
# apt-get), otherwise refused up front with the fix, not left to fail deep in the build.
if ! pkg-config --exists hdf5 2>/dev/null && [ ! -e /usr/include/hdf5/serial/hdf5.h ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing the HDF5 library (libhdf5-dev) for the NWB export" >&2
        apt-get update -qq && apt-get install -y -qq --no-install-recommends libhdf5-dev pkg-config >/dev/null
    else
        echo "test.sh: the HDF5 library is missing and this user cannot install it;" \
            "run: sudo apt-get install libhdf5-dev (Debian/Ubuntu) or brew install hdf5 (macOS)" >&2
        exit 1
    fi
fi
# The ScanImage bridge's test runs its MATLAB files under GNU Octave with Java and JeroMQ
# (about 80 MB to download, 255 MB on disk, under a minute on a fast mirror): installed where
# this user can; elsewhere that test says SKIPPED and why (and fails under
# TWINLOOP_REQUIRE_OCTAVE=1, which .ci/run sets).
if ! command -v octave >/dev/null || [ ! -e "${TWINLOOP_JEROMQ_JAR:-/usr/share/java/jeromq.jar}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing GNU Octave, a JRE and JeroMQ for the ScanImage bridge's test" >&2
        apt-get update -qq && apt-get install -y -qq --no-install-recommends \
            octave default-jre-headless libjeromq-java >/dev/null
    else
        echo "test.sh: no octave/JeroMQ and this user cannot install them: the ScanImage" \
            "bridge's test will be SKIPPED (sudo apt-get install octave default-jre-headless" \
            "libjeromq-java to run it)" >&2
    fi
fi
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
