#!/usr/bin/env python3
"""Streaming frames/s of fnn's PyTorch network (released architecture, 10,000 units) on the CPU,
for comparison with `cargo run -p twinloop-model --example bench_stream`.

  FNN_SRC=/work/fnn-src python3 model/scripts/bench_fnn_torch.py [frames] [threads]
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
sys.path.insert(0, os.environ.get("FNN_SRC", "/work/fnn-src"))
import make_parity as mp  # noqa: E402


def main():
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    mp.CFG.update(units=10_000, streams=4, stimulus_height=144, stimulus_width=256)
    mp.CFG["perspective"].update(height=128, width=192)
    mp.CFG["feedforward"].update(block_channels=[32, 64, 128], out_channels=128)
    mp.CFG["recurrent"].update(in_channels=256, out_channels=128, hidden_channels=256,
                               common_channels=512, groups=8)
    net = mp.build()
    rng = np.random.default_rng(0)
    stim = [rng.integers(0, 255, (144, 256), dtype=np.uint8) for _ in range(frames)]
    times = []
    gen = net.generate_response(stim, [np.zeros(2)] * frames, [np.zeros(2)] * frames)
    cpu = []
    t, c = time.perf_counter(), time.thread_time()
    for _ in gen:
        now, cnow = time.perf_counter(), time.thread_time()
        times.append(now - t)
        cpu.append(cnow - c)
        t, c = now, cnow
    steady = times[2:] if len(times) > 2 else times
    m = sum(steady) / len(steady)
    med = sorted(steady)[len(steady) // 2]
    print(f"torch {torch.__version__}, {threads} threads: first {times[0]:.3f} s, "
          f"steady mean {m:.3f} s/frame, median {med:.3f} s/frame = {1 / med:.2f} frames/s")
    # With 1 thread all work runs on this thread: its CPU time is the compute cost per frame.
    print(f"main-thread CPU time: median {sorted(cpu[2:])[len(cpu[2:]) // 2]:.3f} s/frame")


if __name__ == "__main__":
    main()
