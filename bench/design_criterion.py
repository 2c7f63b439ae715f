"""The information-gain criterion of `model/src/design/criterion.rs` in numpy, timed.

Peer of `twinloop bench design --scoring` (`rig/src/cli/bench_design.rs`), which writes the
inputs and runs this script in the same invocation, and of `rig/tests/design_numpy.rs`, which
checks it equal to the Rust reference on a small case:

    python design_criterion.py DIR ROUNDS

DIR holds `features.npy` (units, candidates, frames, dim; float32), `means.npy` (units, dim),
`covs.npy` (units, dim, dim) and `meta.json` ({"dt_s": ...}). For every candidate c the score
is sum_u 1/2 log det(I_T + Psi Psi^T), Psi = diag(sqrt(lambda_t dt)) Phi_uc L_u,
lambda_t = exp(clip(mu_u . x_t, -30, 30)), Sigma_u = L_u L_u^T: the `T x T` form of the Rust
reference. Vectorised over units and candidates (batched matmul and Cholesky), in chunks of
units to bound memory; float64 (the reference's precision) and float32 (the lane path's).
Prints one JSON object: per dtype, median and p90 wall time in ms over ROUNDS, and the scores.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

# Units per vectorised chunk: 64 x 512 candidates x 10 x 19 float64 is ~50 MB per array.
CHUNK = 64


def info_gain(features, means, chol, dt, dtype):
    units, cands, frames, dim = features.shape
    total = np.zeros(cands)
    eye = np.eye(frames, dtype=dtype)
    for a in range(0, units, CHUNK):
        x = features[a : a + CHUNK].astype(dtype, copy=False)
        n = x.shape[0]
        rho = np.einsum("uctk,uk->uct", x, means[a : a + CHUNK].astype(dtype))
        w = np.sqrt(np.exp(np.clip(rho, -30.0, 30.0)) * dtype(dt))
        psi = x.reshape(n, cands * frames, dim) @ chol[a : a + CHUNK].astype(dtype)
        psi = psi.reshape(n, cands, frames, dim) * w[..., None]
        gram = psi @ psi.transpose(0, 1, 3, 2) + eye
        # A failed factor (non-finite features) contributes nothing, as in the reference.
        try:
            factor = np.linalg.cholesky(gram)
            logdet = 2.0 * np.log(np.diagonal(factor, axis1=-2, axis2=-1)).sum(axis=-1)
        except np.linalg.LinAlgError:
            sign, logdet = np.linalg.slogdet(gram)
            logdet = np.where(sign > 0, logdet, np.nan)
        logdet = np.where(np.isfinite(logdet), logdet, 0.0)
        total += 0.5 * logdet.astype(np.float64).sum(axis=0)
    return total


def main():
    folder, rounds = Path(sys.argv[1]), int(sys.argv[2])
    features = np.load(folder / "features.npy")
    means = np.load(folder / "means.npy")
    covs = np.load(folder / "covs.npy")
    dt = json.loads((folder / "meta.json").read_text())["dt_s"]
    out = {"numpy": np.__version__}
    for name, dtype in (("float64", np.float64), ("float32", np.float32)):
        times, scores = [], None
        for _ in range(rounds):
            start = time.perf_counter()
            # The Cholesky factors of the posteriors are part of the work, as in Rust.
            chol = np.linalg.cholesky(covs)
            scores = info_gain(features, means, chol, dt, dtype)
            times.append((time.perf_counter() - start) * 1e3)
        times.sort()
        out[name] = {
            "median_ms": times[len(times) // 2],
            "p90_ms": times[min(len(times) - 1, int(np.ceil(0.9 * len(times))) - 1)],
            "scores": scores.tolist(),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
