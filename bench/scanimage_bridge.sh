#!/usr/bin/env bash
# The ScanImage bridge's cost per frame: how long its frameAcquired callback (the time ScanImage
# waits on MATLAB per frame) takes under GNU Octave for 512 x 512 int16 frames, against the
# Python client sending the same frames, each into a running daemon (configs/bridge.toml with
# the grid extraction, no dashboard, simulated display) on this machine.
#   bash bench/scanimage_bridge.sh [frames]      (needs octave + JeroMQ, and .venv)
# Prints the medians and 95th percentiles, ms per frame.
set -euo pipefail
cd "$(dirname "$0")/.."
frames="${1:-300}"
py="${TWINLOOP_PYTHON:-$PWD/.venv/bin/python}"
bin="${TWINLOOP_BIN:-target/release/twinloop}"
[ -x "$bin" ] || cargo build --release --quiet
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed -e 's|tcp://127.0.0.1:5555|tcp://127.0.0.1:5755|; s|tcp://127.0.0.1:5556|tcp://127.0.0.1:5756|' \
    -e 's|^extraction = "pipeline"|extraction = "grid"|; s|^backend = "window".*|backend = "sim"|' \
    -e "s|^out_dir = \"sessions\"|out_dir = \"$tmp/sessions\"|; s|^realtime = true|realtime = false|" \
    -e 's|^enabled = true|enabled = false|; s|^progress = true|progress = false|' \
    configs/bridge.toml > "$tmp/bridge.toml"
"$py" - "$tmp/rec" "$frames" <<'PY'
import sys, pathlib, numpy as np
d, n = pathlib.Path(sys.argv[1]), int(sys.argv[2]); d.mkdir()
np.array([[k + 1, k / 30] for k in range(n)], "<f8").tofile(d / "index.bin")
np.random.default_rng(0).integers(0, 4096, (n, 512, 512)).astype("<i2").tofile(d / "frames.bin")
(d / "shape.txt").write_text("512 512 1\n")
PY
"$bin" run "$tmp/bridge.toml" > "$tmp/daemon1.log" 2>&1 &
pid=$!
octave --no-gui --no-window-system --quiet --norc --eval "addpath('bridges/scanimage'); \
  addpath('bridges/scanimage/tests'); fake_scanimage('$tmp/rec', 'ingest', \
  'tcp://127.0.0.1:5755', 'publish', 'tcp://127.0.0.1:5756', 'window_wait_s', 10, 'connect_timeout_s', 120);" \
  2>"$tmp/octave.log" | grep '^{' | "$py" -c "import json,sys; r=json.loads(sys.stdin.read()); \
  print(f\"octave bridge: {r['sent']} frames sent, {r['dropped']} dropped; callback median \
{r['callback_ms_median']:.3f} ms, p95 {r['callback_ms_p95']:.3f} ms\")"
wait "$pid" || { cat "$tmp/daemon1.log" "$tmp/octave.log" >&2; exit 1; }
"$bin" run "$tmp/bridge.toml" > "$tmp/daemon2.log" 2>&1 &
pid=$!
PYTHONPATH=python/twinloop_client/src "$py" - "$tmp/rec" "$frames" <<'PY'
import sys, time, numpy as np
from twinloop_client import Bridge
d, n = sys.argv[1], int(sys.argv[2])
frames = np.fromfile(f"{d}/frames.bin", "<i2").reshape(n, 512, 512)
took = []
with Bridge("tcp://127.0.0.1:5755", "tcp://127.0.0.1:5756") as b:
    b.connect(timeout_s=120); b.hello(source="bench")
    for k in range(n):
        t = time.perf_counter()
        b.two_photon(frames[k], k * 33_333_333, frame_number=k + 1, timeout_s=10)
        took.append((time.perf_counter() - t) * 1e3)
    b.end(); b.wait_ended()
s = np.sort(took)
print(f"python client: {n} frames; send median {s[len(s) // 2 - (len(s) % 2 == 0)]:.3f} ms, "
      f"p95 {s[int(np.ceil(0.95 * len(s))) - 1]:.3f} ms")
PY
wait "$pid" || { cat "$tmp/daemon2.log" >&2; exit 1; }
