#!/usr/bin/env python3
"""numpy peer of stimulus/examples/bench_render.rs: the same drifting sine grating over the
same linear view (azimuth -60..60, elevation -34..34 deg), quantised to u8, timed per frame.

usage: grating_numpy.py WIDTH HEIGHT FRAMES   -> prints one JSON line
"""
import json
import sys
import time

import numpy as np

w, h, n = (int(a) for a in sys.argv[1:4])
sf, direction, tf, contrast = 0.08, 30.0, 2.0, 0.9
# Pixel-centre directions, computed once (as a lab script would).
az = -60.0 + (np.arange(w) + 0.5) / w * 120.0
el = 34.0 - (np.arange(h) + 0.5) / h * 68.0
AZ, EL = np.meshgrid(az, el)
th = np.deg2rad(direction)
along = AZ * np.cos(th) + EL * np.sin(th)
out = np.empty((h, w), np.uint8)
times = []
for k in range(n):
    t0 = time.perf_counter()
    phase = (-tf * k / 60.0) % 1.0
    lum = 0.5 + 0.5 * contrast * np.sin(2 * np.pi * (sf * along + phase))
    np.rint(np.clip(lum, 0, 1) * 255.0, out=lum)
    out[...] = lum
    times.append(time.perf_counter() - t0)
med = float(np.median(times))
print(json.dumps({"width": w, "height": h, "frames": n, "median_ms": med * 1e3, "fps": 1.0 / med}))
