//! `twinloop process` over a movie of the simulated mouse, written as a BigTIFF: the offline
//! imaging pipeline finds the cells and the motion the simulator put there.

use std::process::Command;
use twinloop_rig::config::Config;
use twinloop_rig::sim::SimMouse;
use twinloop_rig::vocab::clock::RigTime;
use twinloop_stimulus::{StimulusSpec, cpu};

fn read_npy(path: &std::path::Path) -> (Vec<u64>, Vec<f32>) {
    let npy = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec().unwrap())
}

#[test]
fn process_finds_the_simulated_cells_and_motion() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config::default_sim();
    cfg.imaging.width = 256;
    cfg.imaging.height = 256;
    cfg.sim.neurons = 250;
    cfg.sim.microscope.motion_max_px = 3.0;
    let g = cfg.sim_geometry();
    let mut mouse = SimMouse::new(&cfg.sim, &g).unwrap();
    let (w, h, frames) = (256u32, 256u32, 400usize);
    let movie = tmp.path().join("movie.tif");
    let mut file = std::fs::File::create(&movie).unwrap();
    let mut tif = tiff::encoder::TiffEncoder::new_big(&mut file).unwrap();
    let mut px = vec![0u16; (w * h) as usize];
    let mut view = vec![0u8; g.view_width * g.view_height];
    let period = 1e9 / 30.0;
    for k in 0..frames {
        let t = RigTime::from_nanos((k as f64 * period) as i64);
        // Drifting gratings changing direction every second drive the cells.
        let spec = StimulusSpec::grating(45.0 * (k / 30 % 8) as f64, 0.04, 2.0, 1.0, 0.0);
        cpu::render(&spec, k as f64 / 30.0, &cfg.display.view(), &mut view);
        mouse.show(&view, t);
        mouse.imaging_frame(t, &mut px);
        tif.write_image::<tiff::encoder::colortype::Gray16>(w, h, &px)
            .unwrap();
    }
    let _ = tif;
    let truth_dir = tmp.path().join("truth");
    mouse.write_truth(&truth_dir).unwrap();

    let out = tmp.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "process",
            movie.to_str().unwrap(),
            "--fs",
            "30",
            "--out",
            out.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let plane = out.join("plane0");
    let (shape, _) = read_npy(&plane.join("dff.npy"));
    assert_eq!(shape[1], frames as u64);
    let cells = shape[0] as usize;
    assert!(
        cells > 150 && cells < 300,
        "{cells} cells detected of 250 simulated"
    );
    for f in [
        "F.npy",
        "Fneu.npy",
        "spks.npy",
        "reference.npy",
        "cells.json",
        "process.json",
    ] {
        assert!(plane.join(f).exists(), "{f}");
    }
    // Registration measures the simulated motion: frame(y, x) = brain(y - dy, x - dx) on both sides.
    let (_, shifts) = read_npy(&plane.join("shifts.npy"));
    let (_, motion) = read_npy(&truth_dir.join("motion.npy"));
    let err: f64 = shifts
        .chunks_exact(2)
        .zip(motion.chunks_exact(2))
        .map(|(s, m)| ((s[0] - m[0]) as f64).powi(2) + ((s[1] - m[1]) as f64).powi(2))
        .sum::<f64>();
    let mean_offset: (f64, f64) =
        shifts
            .chunks_exact(2)
            .zip(motion.chunks_exact(2))
            .fold((0.0, 0.0), |a, (s, m)| {
                (
                    a.0 + (s[0] - m[0]) as f64 / frames as f64,
                    a.1 + (s[1] - m[1]) as f64 / frames as f64,
                )
            });
    // The reference sits wherever the calibration block's average was: remove that offset.
    let rms = ((err / frames as f64) - mean_offset.0.powi(2) - mean_offset.1.powi(2))
        .max(0.0)
        .sqrt();
    eprintln!(
        "{cells} cells; registration error vs truth {rms:.3} px RMS (offset {mean_offset:?})"
    );
    assert!(rms < 0.5, "shift error {rms:.3} px RMS");
}
