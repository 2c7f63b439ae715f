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

fn read_u16_pages(name: &str) -> (Vec<Vec<u16>>, usize, usize) {
    let (pages, h, w) = read_tiff(name);
    let pages = pages
        .into_iter()
        .map(|p| match p {
            DecodingResult::U16(v) => v,
            _ => panic!("{name} must be u16"),
        })
        .collect();
    (pages, h, w)
}

#[test]
fn block_shifts_match_the_field_and_the_numpy_suite2p_method() {
    let (frames, h, w) = read_u16_pages("warped.tif");
    let (reference, rh, rw) = read_u16_pages("warped_reference.tif");
    assert_eq!((rh, rw), (h, w));
    let reference: Vec<f32> = reference[0].iter().map(|&v| v as f32).collect();
    // frame, block, iy, ix, true_dy, true_dx, s2p_dy, s2p_dx
    let text = std::fs::read_to_string(fixture("warped_blocks.csv")).expect("warped_blocks.csv");
    let rows: Vec<Vec<f32>> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|s| s.trim().parse().expect("number"))
                .collect()
        })
        .collect();

    let params = RegistrationParams {
        block_size_px: [64, 64],
        ..Default::default()
    };
    let mut reg = Registrar::new(&reference, h, w, &params).expect("registrar");
    assert_eq!(reg.block_grid().map(BlockGrid::len), Some(36));
    let mut out = vec![0.0f32; h * w];
    let (mut vs_numpy, mut vs_truth) = (Vec::new(), Vec::new());
    for (t, frame) in frames.iter().enumerate() {
        let r = reg.register(frame, &mut out).expect("register");
        let blocks = reg.block_shifts().expect("blocks");
        for row in rows.iter().filter(|row| row[0] as usize == t) {
            if row[1] < 0.0 {
                vs_numpy.extend([r.rigid_dy - row[6], r.rigid_dx - row[7]]);
                continue;
            }
            let b = row[1] as usize;
            vs_numpy.extend([blocks.dy[b] - row[6], blocks.dx[b] - row[7]]);
            vs_truth.extend([blocks.dy[b] - row[4], blocks.dx[b] - row[5]]);
        }
    }
    assert_eq!(vs_truth.len(), 2 * 36 * frames.len());
    let (e_numpy, worst_numpy) = rms(vs_numpy.into_iter());
    let (e_truth, worst_truth) = rms(vs_truth.into_iter());
    eprintln!(
        "warped fixture ({} frames {h}x{w}, 36 blocks): block shifts vs numpy suite2p-method \
         {e_numpy:.4} px RMS (max {worst_numpy:.3}); vs true field at block centres \
         {e_truth:.4} px RMS (max {worst_truth:.3})",
        frames.len()
    );
    assert!(e_numpy < 0.1, "{e_numpy}");
    assert!(e_truth < 0.25, "{e_truth}");
}
