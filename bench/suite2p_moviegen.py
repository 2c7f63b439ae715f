#!/usr/bin/env python3
"""twinloop's cell detection against suite2p's on the independent generator's movies.

For each seed: the Rust example `moviegen_vs_suite2p dump` makes the movie and runs twinloop's
detection; this script writes the movie as a TIFF, runs suite2p's whole pipeline on it
(registration, detection, extraction, classification; CPU), converts the ROIs suite2p's
classifier keeps (iscell[:, 0] == 1) to the example's masks file, and `moviegen_vs_suite2p
score` scores both detectors with the one implementation (`twinloop_moviegen::match_masks`,
IoU >= 0.5, one to one).

Run with a venv that has suite2p (it pulls torch), e.g.
    python3 -m venv /work/venv-s2p && /work/venv-s2p/bin/pip install suite2p
    cargo build --release -p twinloop-calibration --example moviegen_vs_suite2p
    nice -n 10 /work/venv-s2p/bin/python bench/suite2p_moviegen.py 11 12 13 21

Movies and suite2p's outputs stay under $S2P_BENCH_DIR (default /tmp/s2p-moviegen); a seed
whose suite2p run is there is only rescored.

Prints one JSON line per detector and seed, and a markdown table.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import tifffile

import suite2p

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.environ.get(
    "MOVIEGEN_EXAMPLE", os.path.join(ROOT, "target", "release", "examples", "moviegen_vs_suite2p")
)
# Movies and suite2p's outputs are kept here; suite2p is rerun only where its masks are missing
# (twinloop's detection always reruns), so that a detector change rescored costs no suite2p run.
WORK = os.environ.get("S2P_BENCH_DIR", "/tmp/s2p-moviegen")


def run_suite2p(movie_dir, meta):
    """suite2p's pipeline on the movie; returns the kept masks and the wall times."""
    frames = np.fromfile(os.path.join(movie_dir, "movie.u16"), dtype="<u2")
    frames = frames.reshape(meta["frames"], meta["height"], meta["width"])
    tif_dir = os.path.join(movie_dir, "tif")
    os.makedirs(tif_dir, exist_ok=True)
    # suite2p converts to int16; the movie's dark offset keeps it well under 32767.
    tifffile.imwrite(os.path.join(tif_dir, "movie.tif"), frames.astype(np.int16))
    db = {
        "data_path": [tif_dir],
        "save_path0": movie_dir,
        "nplanes": 1,
        "nchannels": 1,
    }
    settings = {
        "torch_device": "cpu",
        "fs": float(meta["fs_hz"]),
        # moviegen's indicator decays with about 0.7 s; suite2p bins detection by tau * fs.
        "tau": 0.7,
        # The generator's median soma radius is 5.5 px; twinloop's detection uses 12 px.
        "diameter": [12.0, 12.0],
    }
    started = time.time()
    suite2p.run_s2p(db=db, settings=settings)
    wall = time.time() - started
    plane = os.path.join(movie_dir, "suite2p", "plane0")
    stat = np.load(os.path.join(plane, "stat.npy"), allow_pickle=True)
    iscell = np.load(os.path.join(plane, "iscell.npy"))
    width = meta["width"]
    masks = [
        (np.asarray(s["ypix"]) * width + np.asarray(s["xpix"])).astype(np.uint32)
        for s, c in zip(stat, iscell[:, 0])
        if c > 0.5
    ]
    timing = plane_times(plane)
    return masks, wall, timing


def plane_times(plane):
    """suite2p's own wall time of each stage (ops["plane_times"]: registration, detection, ...)."""
    ops = np.load(os.path.join(plane, "ops.npy"), allow_pickle=True).item()
    return {k: float(v) for k, v in ops.get("plane_times", {}).items()}


def write_masks(path, masks):
    words = [len(masks)]
    for m in masks:
        m = np.unique(m)
        words.append(len(m))
        words.extend(int(p) for p in m)
    np.asarray(words, dtype="<u4").tofile(path)


def main(seeds):
    rows = []
    for seed in seeds:
        d = os.path.join(WORK, f"seed{seed}")
        subprocess.run([EXAMPLE, "dump", str(seed), d], check=True)
        meta = json.load(open(os.path.join(d, "movie.json")))
        ours = json.load(open(os.path.join(d, "twinloop.json")))
        s2p_json = os.path.join(d, "suite2p.json")
        if not os.path.exists(s2p_json):
            masks, wall, timing = run_suite2p(d, meta)
            write_masks(os.path.join(d, "suite2p.masks.u32"), masks)
            json.dump({"pipeline_s": wall, "timing": timing}, open(s2p_json, "w"), default=float)
        wall = json.load(open(s2p_json))["pipeline_s"]
        timing = plane_times(os.path.join(d, "suite2p", "plane0"))
        out = subprocess.run(
            [EXAMPLE, "score", str(seed), d], check=True, capture_output=True, text=True
        ).stdout
        for line in out.splitlines():
            r = json.loads(line)
            if r["detector"] == "twinloop":
                r["detection_s"] = ours["detection_s"]
            else:
                r["pipeline_s"] = round(wall, 1)
                r["detection_s"] = round(timing.get("detection", float("nan")), 1)
                r["registration_s"] = round(timing.get("registration", float("nan")), 1)
            print(json.dumps(r), flush=True)
            rows.append(r)
    print("\n| seed | detector | recall (active) | recall (all) | precision | ROIs | detection s | pipeline s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['seed']} | {r['detector']} | {r['recall_active']:.3f} | {r['recall_all']:.3f} | "
            f"{r['precision']:.3f} | {r['rois']} | {r['detection_s']} | {r.get('pipeline_s', '')} |"
        )


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [11, 12, 13])
