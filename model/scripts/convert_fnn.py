#!/usr/bin/env python3
"""Convert fnn (cajal/fnn) checkpoints to a twinloop-model safetensors file.

fnn ships torch state dicts: `params_core.pt` (the shared foundation core) and
`params_{session}_{scan}.pt` (that mouse's perspective, modulation and readout), plus
`units.csv` (the readout's unit order). twinloop-model uses fnn's `Visual.state_dict()` names
verbatim, minus buffers it derives itself (the retina grid, InterGroup mask/zero). This script
merges the two dicts, prefixes core keys with `core.` when they lack it, drops derived buffers,
checks for dtype and duplicates, writes f32 safetensors, a JSON config with the sizes inferred
from the tensors, and copies units.csv beside the output.

Usage:
  convert_fnn.py --core params_core.pt --session params_S_S.pt [--units units.csv] --out twin.safetensors
Needs: torch, numpy, safetensors.
"""
import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np

DERIVED = (re.compile(r"\.retina\.grid$"), re.compile(r"\.mask$"), re.compile(r"\.zero$"))
SESSION_PREFIXES = ("perspective.", "modulation.", "readout.", "core.")


def is_derived(name):
    return any(p.search(name) for p in DERIVED)


def to_twin_tensors(state_dict):
    """fnn Visual state dict (name -> tensor/array) -> {name: float32 ndarray}, derived buffers dropped."""
    out = {}
    for name, value in state_dict.items():
        if is_derived(name):
            continue
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[name] = np.ascontiguousarray(arr.astype(np.float32))
    return out


def merge(core_sd, session_sd):
    merged = {}
    for name, value in core_sd.items():
        key = name if name.startswith("core.") else f"core.{name}"
        merged[key] = value
    for name, value in session_sd.items():
        if not name.startswith(SESSION_PREFIXES):
            raise SystemExit(f"session tensor `{name}` has no known module prefix {SESSION_PREFIXES}")
        if name in merged:
            raise SystemExit(f"tensor `{name}` is in both the core and the session file")
        merged[name] = value
    return merged


def infer_config(t):
    """Sizes read from the tensors; architecture choices default to fnn's released network."""
    units = t["readout.position.mu"].shape[0]
    streams = len([k for k in t if re.fullmatch(r"readout\.biases\.\d+", k)])
    cfg = {
        "streams": streams,
        "units": units,
        "stimulus_height": 144,
        "stimulus_width": 256,
        "perspectives": t["perspective.layers.0.weights.0"].shape[1],
        "modulations": t["modulation.proj_x.weights.0"].shape[1],
        "perspective": {
            "height": 128, "width": 192,
            "features": [t[f"perspective.layers.{i}.weights.0"].shape[0]
                         for i in range(len([k for k in t if re.fullmatch(r"perspective\.layers\.\d+\.weights\.0", k)]))],
            "degrees": 75.0, "retina_max_power": 1.0, "retina_eps": 1e-5, "monitor_eps": 1e-5,
        },
        "modulation": {
            "in_features": t["modulation.proj_x.weights.0"].shape[0],
            "hidden_features": t["modulation.proj_i.weights.0"].shape[0],
            "out_features": t["modulation.out.weights.0"].shape[0],
        },
        "feedforward": {
            "in_spatial": t["core.feedforward.inputs.0.weights.0"].shape[-1],
            "in_stride": 2,
            "input_wnorm": "core.feedforward.inputs.0.gains.0" in t,
            "block_channels": [], "block_groups": [], "block_layers": [],
            "block_temporals": [], "block_spatials": [], "block_pools": [2, 2, 1],
            "out_channels": t["core.feedforward.out.weights.0"].shape[0],
        },
        "recurrent": {
            "in_channels": t["core.recurrent.proj_x.1.weights.0"].shape[0],
            "out_channels": t["core.recurrent.out.weights.0"].shape[0],
            "hidden_channels": t["core.recurrent.proj_i.weights.0"].shape[0],
            "common_channels": t["core.recurrent.conv.weights.0"].shape[0],
            "groups": t["core.recurrent.scales.0"].shape[0],
            "spatial": t["core.recurrent.conv.weights.0"].shape[-1],
        },
        "readout": {"feature_groups": t["readout.feature.weights.0"].shape[2]},
    }
    ff = cfg["feedforward"]
    b = 0
    while f"core.feedforward.inputs.{b}.weights.0" in t:
        w = t[f"core.feedforward.blocks.{b}.convs.0.weights.0"]
        c = w.shape[0]
        ff["block_channels"].append(c)
        ff["block_groups"].append(c // w.shape[1])
        ff["block_layers"].append(len([k for k in t if re.fullmatch(rf"core\.feedforward\.blocks\.{b}\.convs\.\d+\.weights\.0", k)]))
        ff["block_temporals"].append(w.shape[2])
        ff["block_spatials"].append(w.shape[3])
        b += 1
    if b != 3:
        print(f"note: {b} blocks; block_pools defaults to fnn's [2, 2, 1] -- edit the JSON", file=sys.stderr)
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--core", required=True, type=Path)
    ap.add_argument("--session", required=True, type=Path)
    ap.add_argument("--units", type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()

    import torch
    from safetensors.numpy import save_file

    core = torch.load(args.core, map_location="cpu", weights_only=True)
    session = torch.load(args.session, map_location="cpu", weights_only=True)
    tensors = to_twin_tensors(merge(core, session))
    cfg = infer_config(tensors)
    save_file(tensors, str(args.out))
    args.out.with_suffix(".json").write_text(json.dumps(cfg, indent=2) + "\n")
    if args.units is not None:
        shutil.copyfile(args.units, args.out.with_suffix(".units.csv"))
    print(f"wrote {len(tensors)} tensors, {cfg['units']} units, {cfg['streams']} streams -> {args.out}")


if __name__ == "__main__":
    main()
