"""Reads a twinloop NWB export with pynwb and compares every object with what the session log
holds (written by the Rust test as JSON), then runs nwbinspector.

usage: check_nwb.py <file.nwb> <expected.json> <calibration-dir or ""> <min_importance>
Exits non-zero, naming the first mismatch, when anything differs; prints a JSON summary.
"""

import json
import math
import sys

import numpy as np
from nwbinspector import inspect_nwbfile, Importance
from pynwb import NWBHDF5IO, validate


def fail(msg):
    print(f"MISMATCH: {msg}", file=sys.stderr)
    sys.exit(1)


def same(name, got, want, dtype=np.float64):
    got = np.asarray(got)
    want = np.asarray(want, dtype=dtype)
    if got.shape != want.shape:
        fail(f"{name}: shape {got.shape}, expected {want.shape}")
    try:
        np.testing.assert_array_equal(got.astype(dtype), want)
    except AssertionError as e:
        fail(f"{name}: {e}")


def nan(values):
    return [math.nan if v is None else v for v in values]


def main():
    path, expected_path, cal_dir, strict = sys.argv[1:5]
    want = json.load(open(expected_path))
    errors = validate(path=path)
    if errors:
        fail(f"pynwb validate: {errors}")
    summary = {}
    with NWBHDF5IO(path, "r") as io:
        nwb = io.read()
        # Every object reads back (a lazy dataset that cannot be read would raise here).
        for obj in nwb.objects.values():
            for field in getattr(obj, "fields", {}).values():
                if hasattr(field, "shape") and hasattr(field, "__getitem__"):
                    field[()] if field.shape == () else field[:1]
        if nwb.session_id != want["session_id"]:
            fail(f"session_id {nwb.session_id!r}")
        if want["cells"] is not None:
            ophys = nwb.processing["ophys"]
            ps = ophys["ImageSegmentation"]["PlaneSegmentation"]
            if len(ps) != want["cells"]:
                fail(f"{len(ps)} ROIs, cells.json has {want['cells']}")
            if cal_dir:
                pixels = np.load(f"{cal_dir}/cell_pixels.npy")
                weights = np.load(f"{cal_dir}/cell_weights.npy")
                masks = ps["pixel_mask"][:]
                flat = np.concatenate([np.asarray(m.tolist()).reshape(-1, 3) for m in masks])
                width = want["width"]
                same("mask pixels (y * width + x)", flat[:, 1] * width + flat[:, 0], pixels)
                same("mask weights", flat[:, 2], weights, np.float32)
            series = {
                "deconvolved": ophys["Deconvolved"]["RoiResponseSeries"],
                "f": ophys["Fluorescence"]["RoiResponseSeries"],
                "fneu": ophys["Fluorescence"]["Neuropil"],
                "dff": ophys["DfOverF"]["RoiResponseSeries"],
            }
            for key, s in series.items():
                same(f"{key} data", s.data[:], nan(want[key]["values"]), np.float32)
                same(
                    f"{key} timestamps",
                    s.timestamps[:],
                    np.asarray(want[key]["t_ns"], dtype=np.int64) * 1e-9,
                )
                if s.rois.table is not ps:
                    fail(f"{key}: rois does not point at the plane segmentation")
            summary["frames"] = len(series["deconvolved"].timestamps)
        if not want["pupil_t_ns"] and not want["treadmill"]:
            if "behavior" in nwb.processing:
                fail("a behavior module without behaviour records")
        else:
            check_behaviour(nwb, want)
        check_trials(nwb, want, summary)
        if want["movie_frame_sums"] is not None:
            movie = nwb.acquisition["TwoPhotonSeries"]
            data = movie.data
            sums = [int(data[i].astype(np.uint64).sum()) for i in range(data.shape[0])]
            if sums != want["movie_frame_sums"]:
                fail("TwoPhotonSeries frames differ from the logged pixels")
            summary["movie_frames"] = len(sums)
    worst = [Importance.CRITICAL, Importance.PYNWB_VALIDATION, Importance.ERROR]
    messages = list(inspect_nwbfile(nwbfile_path=path))
    bad = [m for m in messages if m.importance in worst]
    summary["inspector"] = sorted({f"{m.importance.name}:{m.check_function_name}" for m in messages})
    if strict == "strict" and bad:
        fail("nwbinspector: " + "; ".join(f"{m.importance.name} {m.check_function_name}: {m.message}" for m in bad))
    print(json.dumps(summary))


def check_behaviour(nwb, want):
    behavior = nwb.processing["behavior"]
    if want["pupil_t_ns"]:
        pupil = behavior["PupilTracking"]
        same("pupil radius", pupil["pupil_radius"].data[:], nan(want["pupil_radius"]))
        same(
            "pupil timestamps",
            pupil["pupil_radius"].timestamps[:],
            np.asarray(want["pupil_t_ns"], dtype=np.int64) * 1e-9,
        )
        centre = pupil["pupil_centre"].data[:]
        same("pupil centre x", centre[:, 0], nan(want["pupil_x"]))
    if want["treadmill"]:
        same("treadmill", behavior["treadmill_velocity"].data[:], nan(want["treadmill"]))


def check_trials(nwb, want, summary):
    if not want["onsets_ns"]:
        if nwb.trials is not None:
            fail("a trials table without stimulus records")
        summary["trials"] = 0
        return
    trials = nwb.trials.to_dataframe()
    same(
        "trial starts",
        trials["start_time"].to_numpy(),
        np.asarray(want["onsets_ns"], dtype=np.int64) * 1e-9,
    )
    same("trial stimulus ids", trials["stimulus_id"].to_numpy(), want["stimulus_ids"], np.int64)
    if list(trials["mode"]) != want["modes"]:
        fail(f"trial modes {list(trials['mode'])} != {want['modes']}")
    # The last trial may have been cut by the end of the session.
    shown = (trials["stop_time"] - trials["start_time"]).to_numpy()[:-1]
    frame = 1.0 / want["refresh_hz"]
    if not np.all(np.abs(shown - want["stimulus_s"]) <= frame + 1e-9):
        fail(f"trial durations {shown} are not {want['stimulus_s']} s to a display frame")
    pres = nwb.intervals["stimulus_presentations"].to_dataframe()
    specs = [json.loads(s) for s in pres["spec"]]
    if specs != want["specs"]:
        fail("stimulus specs differ from the Stimulus records")
    summary["trials"] = len(trials)

if __name__ == "__main__":
    main()
