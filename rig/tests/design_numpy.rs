//! The numpy peer of `twinloop bench design --scoring` (`bench/design_criterion.py`) computes
//! the same criterion as the Rust reference, and the cached fast path agrees with both, on a
//! small case (a second of Python). Runs `TWINLOOP_PYTHON` (default `python3`), which needs
//! numpy; without it the test fails and says so.

use std::path::PathBuf;

use twinloop_model::design::{Criterion, FeatureCache, score_reference};
use twinloop_rig::cli::bench_design::{Maps, learned_posterior, numpy_peer};

#[test]
fn numpy_peer_equals_the_rust_criterion() {
    let python = PathBuf::from(std::env::var("TWINLOOP_PYTHON").unwrap_or("python3".into()));
    let (units, cands, frames, dim, dt) = (23, 37, 6, 9, 0.2);
    let src = Maps::new(units, cands, frames, dim, 5);
    let post = learned_posterior(units, dim, 6).unwrap();
    let all: Vec<usize> = (0..cands).collect();
    let want = score_reference(&post, &src, &all, &Criterion::InfoGain, dt, 1).unwrap();
    let features = src.materialise(cands);
    let (np64, np32) = numpy_peer(
        &python,
        &features,
        (units, cands, frames, dim),
        &post,
        dt,
        1,
    )
    .unwrap_or_else(|e| panic!("{e:#}: point TWINLOOP_PYTHON at a Python with numpy"));
    let cache = FeatureCache::build(&src, units, &all, dim - 3, 2).unwrap();
    let cached = cache.info_gain(&post, &src.tails(), dt, 2, None).unwrap();
    assert!(want.iter().all(|w| *w > 0.1), "{want:?}");
    for (c, w) in want.iter().enumerate() {
        let rel = |x: f64| (x - w).abs() / w;
        assert!(
            rel(np64.scores[c]) < 1e-10,
            "numpy f64, candidate {c}: {} vs {w}",
            np64.scores[c]
        );
        assert!(
            rel(np32.scores[c]) < 1e-4,
            "numpy f32, candidate {c}: {} vs {w}",
            np32.scores[c]
        );
        assert!(
            rel(cached[c]) < 2e-5,
            "cached, candidate {c}: {} vs {w}",
            cached[c]
        );
    }
}
