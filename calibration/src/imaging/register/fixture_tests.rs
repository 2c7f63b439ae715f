//! Peer test: the movie of `tests/fixtures/register/` (known shifts) registered here, against
//! the truth and against the shifts found by the numpy implementation of suite2p's rigid method
//! (`tests/fixtures/register/s2p_numpy.py`, run by `make_fixtures.py`).

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use tiff::decoder::{Decoder, DecodingResult};

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/register")
        .join(name)
}

/// Every page of a TIFF, with its size.
fn read_tiff(name: &str) -> (Vec<DecodingResult>, usize, usize) {
    let file = File::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut dec = Decoder::new(BufReader::new(file)).expect("tiff header");
    let (w, h) = dec.dimensions().expect("dimensions");
    let mut pages = vec![dec.read_image().expect("page")];
    while dec.more_images() {
        dec.next_image().expect("next page");
        pages.push(dec.read_image().expect("page"));
    }
    (pages, h as usize, w as usize)
}

struct Row {
    true_dy: f32,
    true_dx: f32,
    s2p_dy: f32,
    s2p_dx: f32,
}

fn read_shifts() -> Vec<Row> {
    let text = std::fs::read_to_string(fixture("shifts.csv")).expect("shifts.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let v: Vec<f32> = line
                .split(',')
                .map(|s| s.trim().parse().expect("number"))
                .collect();
            Row {
                true_dy: v[1],
                true_dx: v[2],
                s2p_dy: v[3],
                s2p_dx: v[4],
            }
        })
        .collect()
}

fn rms(errs: impl Iterator<Item = f32>) -> (f32, f32) {
    let (mut ss, mut n, mut worst) = (0.0f32, 0usize, 0.0f32);
    for e in errs {
        ss += e * e;
        n += 1;
        worst = worst.max(e.abs());
    }
    ((ss / n as f32).sqrt(), worst)
}

#[test]
fn rigid_shifts_match_truth_and_the_numpy_suite2p_method() {
    let (movie, h, w) = read_tiff("movie.tif");
    let frames: Vec<Vec<u16>> = movie
        .into_iter()
        .map(|p| match p {
            DecodingResult::U16(v) => v,
            _ => panic!("movie.tif must be u16"),
        })
        .collect();
    let (mut refs, rh, rw) = read_tiff("reference.tif");
    assert_eq!((rh, rw), (h, w));
    let reference = match refs.remove(0) {
        DecodingResult::F32(v) => v,
        _ => panic!("reference.tif must be f32"),
    };
    let rows = read_shifts();
    assert_eq!(rows.len(), frames.len());

    let mut reg =
        Registrar::new(&reference, h, w, &RegistrationParams::default()).expect("registrar");
    let mut out = vec![0.0f32; h * w];
    let mut ours = Vec::new();
    for f in &frames {
        let r = reg.register(f, &mut out).expect("register");
        assert!(!r.flags.blank && !r.flags.at_shift_limit, "{r:?}");
        ours.push((r.rigid_dy, r.rigid_dx));
    }
    let (vs_truth, worst_truth) = rms(ours
        .iter()
        .zip(&rows)
        .flat_map(|(o, r)| [o.0 - r.true_dy, o.1 - r.true_dx]));
    let (vs_numpy, worst_numpy) = rms(ours
        .iter()
        .zip(&rows)
        .flat_map(|(o, r)| [o.0 - r.s2p_dy, o.1 - r.s2p_dx]));
    let (numpy_vs_truth, _) = rms(rows
        .iter()
        .flat_map(|r| [r.s2p_dy - r.true_dy, r.s2p_dx - r.true_dx]));
    eprintln!(
        "fixture ({} frames {h}x{w}): ours vs truth {vs_truth:.4} px RMS (max {worst_truth:.3}); \
         ours vs numpy suite2p-method {vs_numpy:.4} px RMS (max {worst_numpy:.3}); \
         numpy vs truth {numpy_vs_truth:.4} px RMS",
        frames.len()
    );
    assert!(vs_truth < 0.1, "{vs_truth}");
    assert!(vs_numpy < 0.1, "{vs_numpy}");
}
