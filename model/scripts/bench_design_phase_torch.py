#!/usr/bin/env python3
"""MEI gradient steps in PyTorch on a conv net of the embedded sim twin's shapes, for comparison
with `cargo run --release -p twinloop-model --example bench_design_phase` (same defaults).

  python3 model/scripts/bench_design_phase_torch.py [targets] [units] [frames] [score] [steps] [threads]

Not fnn's own modules (they are not installed on this machine): an equivalent network with the
same convolution shapes as model/weights/sim/config.json — bilinear retina sampling
(grid_sample), a causal temporal conv stack (input conv 6x6 stride 2, blocks of 3x3 convs
with 3 temporal taps, grouped as configured), a conv-LSTM-like recurrent layer, and a
position + feature readout with exp. Timed as the Rust example times it: the objective's
forward with autograd, its backward to the pixels, and a no-grad forward.
Needs torch (`python3 -c "import torch"`).
"""
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CFG = json.loads((Path(__file__).resolve().parent.parent / "weights/sim/config.json").read_text())


class TemporalConv(torch.nn.Module):
    """A causal conv over the last `taps` frames (their channels concatenated per group)."""

    def __init__(self, cin, cout, k, stride, taps, groups):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin * taps, cout, k, stride, (k - stride) // 2, groups=groups,
                                    padding_mode="replicate")
        self.taps, self.groups, self.hist = taps, groups, []

    def reset(self):
        self.hist = []

    def forward(self, x):
        if not self.hist:
            self.hist = [x] * (self.taps - 1)
        self.hist = (self.hist + [x])[-self.taps:]
        n, c, h, w = x.shape
        parts = [t.reshape(n, self.groups, c // self.groups, h, w) for t in self.hist]
        return self.conv(torch.cat(parts, 2).reshape(n, c * self.taps, h, w))


class Net(torch.nn.Module):
    def __init__(self, units):
        super().__init__()
        ff, rc, per = CFG["feedforward"], CFG["recurrent"], CFG["perspective"]
        self.retina = (per["height"], per["width"])
        self.inp = TemporalConv(1, ff["block_channels"][0], ff["in_spatial"], ff["in_stride"], 1, 1)
        layers, c = [], ff["block_channels"][0]
        for ch, g, nl, t, s in zip(ff["block_channels"], ff["block_groups"], ff["block_layers"],
                                   ff["block_temporals"], ff["block_spatials"]):
            for _ in range(nl):
                layers.append(TemporalConv(c, ch, s, 1, t, g))
                c = ch
        self.blocks = torch.nn.ModuleList(layers)
        self.out = TemporalConv(c, ff["out_channels"], 1, 1, 1, 1)
        hid = rc["hidden_channels"]
        self.gates = torch.nn.Conv2d(ff["out_channels"] + hid, 4 * hid, rc["spatial"],
                                     padding=rc["spatial"] // 2, groups=1)
        self.proj = torch.nn.Conv2d(hid, rc["out_channels"], 1)
        self.pos = torch.nn.Parameter(torch.rand(1, units, 1, 2) * 1.6 - 0.8)
        self.feat = torch.nn.Parameter(torch.randn(units, rc["out_channels"]) * 0.1)
        self.state = None

    def reset(self):
        for m in [self.inp, self.out, *self.blocks]:
            m.reset()
        self.state = None

    def forward(self, stim):
        n = stim.shape[0]
        ys = torch.linspace(-0.9, 0.9, self.retina[0])
        xs = torch.linspace(-0.9, 0.9, self.retina[1])
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).expand(n, -1, -1, -1)
        x = F.grid_sample(stim, grid, align_corners=False)
        x = F.elu(self.inp(x))
        for b in self.blocks:
            x = F.elu(b(x))
        x = self.out(x)
        hid = self.gates.out_channels // 4
        if self.state is None:
            z = torch.zeros(n, hid, *x.shape[2:])
            self.state = (z, z)
        h, c = self.state
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        self.state = (h, c)
        core = self.proj(h)
        feats = F.grid_sample(core, self.pos.expand(n, -1, -1, -1), align_corners=False)
        return torch.exp(torch.einsum("ncu,uc->nu", feats[..., 0], self.feat) * 0.1)


def objective(net, x, units, frames, score):
    net.reset()
    total = 0
    for t in range(frames):
        r = net(x)
        if t + score >= frames:
            total = total + r[torch.arange(len(units)), units] / score
    return total


def main():
    a = [int(v) for v in sys.argv[1:]]
    targets, units, frames, score, steps, threads = (a + [100, 300, 10, 5, 3, 2][len(a):])[:6]
    units = max(units, targets)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = Net(units)
    for p in net.parameters():
        p.requires_grad_(False)
    h, w = CFG["stimulus_height"], CFG["stimulus_width"]
    x = (0.5 + 0.05 * torch.randn(targets, 1, h, w)).requires_grad_(True)
    idx = torch.arange(targets)
    fwd, bwd, fast = [], [], []
    for _ in range(steps):
        t = time.perf_counter()
        obj = objective(net, x, idx, frames, score)
        fwd.append(time.perf_counter() - t)
        t = time.perf_counter()
        obj.sum().backward()
        bwd.append(time.perf_counter() - t)
        x.grad = None
        t = time.perf_counter()
        with torch.no_grad():
            objective(net, x, idx, frames, score)
        fast.append(time.perf_counter() - t)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(f"torch {torch.__version__}, threads {threads}: MEI step ({targets} images x {frames} "
          f"frames): forward with graph {med(fwd):.3f} s, backward {med(bwd):.3f} s "
          f"(backward/forward {med(bwd) / med(fwd):.2f}), no-grad forward {med(fast):.3f} s")


if __name__ == "__main__":
    main()
