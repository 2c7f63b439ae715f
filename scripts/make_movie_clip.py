#!/usr/bin/env python3
"""Makes the example natural-movie clip, configs/stimuli/clips/natural_movie.npy.

A few seconds of a synthetic scene with natural images' statistics, generated here rather than
downloaded: two layers of 1/f texture (the amplitude spectrum of natural scenes falls as
1/frequency), a background panning slowly and a nearer, occluding layer panning faster (parallax
and moving edges), along piecewise-linear camera paths. Written as what the `movie` stimulus
reads: u8 [T, H, W], .npy.

Only additions, multiplications, comparisons and indexing on numpy's PCG64 stream, so the bytes
are the same on every machine; tests/tests/shipped_clip.rs regenerates the clip and compares.

    python scripts/make_movie_clip.py [--out configs/stimuli/clips/natural_movie.npy]
"""
import argparse
from pathlib import Path

import numpy as np

SEED = 20251207
FRAMES, HEIGHT, WIDTH = 90, 36, 64  # 3 s at 30 frames/s
CANVAS_H, CANVAS_W = 72, 192        # the scene the camera pans over
OCTAVES = 6


def upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear interpolation of a coarse grid onto h x w (corners aligned)."""
    gy = np.arange(h) * ((grid.shape[0] - 1) / (h - 1))
    gx = np.arange(w) * ((grid.shape[1] - 1) / (w - 1))
    return sample(grid, gy[:, None] + 0 * gx[None, :], 0 * gy[:, None] + gx[None, :])


def sample(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear sample of img at fractional (y, x), clamped to its edge."""
    y = np.clip(y, 0, img.shape[0] - 1)
    x = np.clip(x, 0, img.shape[1] - 1)
    y0 = np.minimum(np.floor(y).astype(int), img.shape[0] - 2)
    x0 = np.minimum(np.floor(x).astype(int), img.shape[1] - 2)
    fy, fx = y - y0, x - x0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def texture(rng: np.random.Generator) -> np.ndarray:
    """1/f texture: octaves of value noise, each twice as fine and half as strong."""
    out = np.zeros((CANVAS_H, CANVAS_W))
    amplitude = 1.0
    for k in range(OCTAVES):
        cells = 2 ** (k + 1)
        coarse = rng.random((cells + 1, cells * 3 + 1)) * 2 - 1
        out = out + upsample(coarse, CANVAS_H, CANVAS_W) * amplitude
        amplitude = amplitude * 0.5
    return out


def path(rng: np.random.Generator, speed_px: float) -> np.ndarray:
    """Camera x offset per frame: piecewise linear through waypoints, speed varying."""
    waypoints = np.array([0, 30, 60, FRAMES - 1])
    steps = (rng.random(3) + 0.5) * speed_px * 30
    xs = np.concatenate([[0.0], np.cumsum(steps)])
    t = np.arange(FRAMES)
    seg = np.minimum(np.searchsorted(waypoints, t, side="right") - 1, 2)
    frac = (t - waypoints[seg]) / (waypoints[seg + 1] - waypoints[seg])
    return xs[seg] + (xs[seg + 1] - xs[seg]) * frac


def make() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    far, near = texture(rng), texture(rng)
    far_x, near_x = path(rng, 0.4), path(rng, 1.2)
    ys = np.arange(HEIGHT)[:, None] + 0 * np.arange(WIDTH)[None, :] + (CANVAS_H - HEIGHT) / 2
    xs = 0 * np.arange(HEIGHT)[:, None] + np.arange(WIDTH)[None, :]
    frames = np.empty((FRAMES, HEIGHT, WIDTH))
    for t in range(FRAMES):
        bg = sample(far, ys, xs + far_x[t]) * 0.6
        fg = sample(near, ys, xs + near_x[t])
        # The near layer is opaque where its texture is high: objects with edges.
        frames[t] = np.where(fg > 0.35, fg, bg)
    lo, hi = frames.min(), frames.max()
    return np.round((frames - lo) * (255 / (hi - lo))).astype(np.uint8)


def main() -> None:
    default = Path(__file__).resolve().parent.parent / "configs/stimuli/clips/natural_movie.npy"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=default)
    out = p.parse_args().out
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, make())
    print(out)


if __name__ == "__main__":
    main()
