#!/usr/bin/env python3
"""Round-trip check of convert_fnn.py: split the parity network's fnn state dict the way fnn
ships checkpoints (core without its `core.` prefix in params_core.pt, the rest in
params_{session}_{scan}.pt), convert, and compare with fixtures/parity_weights.safetensors.

  FNN_SRC=/work/fnn-src python3 model/scripts/check_convert.py
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fixtures"))
sys.path.insert(0, os.environ.get("FNN_SRC", "/work/fnn-src"))
import make_parity as mp  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402


def main():
    torch.manual_seed(0)
    net = mp.build()
    mp.randomise(net, torch.Generator().manual_seed(1234))
    sd = net.state_dict()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        torch.save({k[5:]: v for k, v in sd.items() if k.startswith("core.")}, d / "params_core.pt")
        torch.save({k: v for k, v in sd.items() if not k.startswith("core.")}, d / "params_s_1.pt")
        subprocess.run([sys.executable, str(HERE / "convert_fnn.py"), "--core", str(d / "params_core.pt"),
                        "--session", str(d / "params_s_1.pt"), "--out", str(d / "twin.safetensors")], check=True)
        got = load_file(str(d / "twin.safetensors"))
    want = load_file(str(HERE.parent / "fixtures" / "parity_weights.safetensors"))
    assert sorted(got) == sorted(want), set(got) ^ set(want)
    worst = max(float(np.abs(got[k] - want[k]).max()) for k in got)
    assert worst == 0.0, worst
    print(f"convert_fnn round trip: {len(got)} tensors identical")


if __name__ == "__main__":
    main()
