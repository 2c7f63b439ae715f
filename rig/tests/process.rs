//! `twinloop process` over a movie of the simulated mouse, written as a BigTIFF with a
//! ScanImage 2023 header (its frame rate there, not on the command line): the offline
//! imaging pipeline finds the cells and the motion the simulator put there, and its suite2p
//! folder (`suite2p/plane0/`) loads in numpy the way suite2p's scripts load it
//! (`np.load(..., allow_pickle=True)`), with a suite2p analysis snippet run on it and its
//! fields checked against the simulator's truth (motion, cell positions) and against each
//! other in suite2p's units (F of an ROI is its `lam`-weighted `meanImg`, raw ADU).
//!
//! The suite2p check runs `TWINLOOP_PYTHON` (default `python3`), which needs numpy.

use std::path::Path;
use std::process::Command;
use twinloop_rig::config::Config;
use twinloop_rig::sim::SimMouse;
use twinloop_rig::vocab::clock::RigTime;
use twinloop_stimulus::{StimulusSpec, cpu};

/// A suite2p user's script: load the plane folder, select cells, neuropil-correct, take dF/F;
/// then measure what the test asserts. argv: plane folder, truth folder, dark offset (ADU).
const SUITE2P_CHECK: &str = r#"
import json, sys
import numpy as np
d, truth, offset = sys.argv[1], sys.argv[2], float(sys.argv[3])
ops = np.load(d + '/ops.npy', allow_pickle=True).item()
stat = np.load(d + '/stat.npy', allow_pickle=True)
iscell = np.load(d + '/iscell.npy')
F = np.load(d + '/F.npy'); Fneu = np.load(d + '/Fneu.npy'); spks = np.load(d + '/spks.npy')
# The analysis snippet.
cells = iscell[:, 0] == 1
Fc = F[cells] - ops['neucoeff'] * Fneu[cells]
F0 = np.percentile(Fc, 8, axis=1, keepdims=True)
dff = (Fc - F0) / F0
# Units: F is the lam-weighted mean of the registered frames over the ROI, raw ADU (the dark
# offset not removed), so its time mean is the lam-weighted meanImg (this movie's detection
# block is the whole movie); Fneu the plain mean over the neuropil mask.
img = ops['meanImg']
f_img = np.array([np.sum(s['lam'] * img[s['ypix'], s['xpix']]) / np.sum(s['lam']) for s in stat])
neu_img = np.array([img.ravel()[s['neuropil_mask']].mean() for s in stat])
# Motion: ops' rigid shifts against the true brain displacement, less the reference's offset.
motion = np.load(truth + '/motion.npy')
err = np.stack([ops['yoff'], ops['xoff']], 1) - motion
ref_offset = err.mean(0)
rms = float(np.sqrt(np.mean(np.sum((err - ref_offset) ** 2, 1))))
# Positions: a soma at brain p sits at p - ref_offset in the registered frames.
true_c = np.array([[c['centre_y_px'], c['centre_x_px']] for c in json.load(open(truth + '/cells.json'))])
med = np.array([s['med'] for s in stat], dtype=float)[cells]
dist = np.sqrt((((med[:, None, :] + ref_offset) - true_c[None]) ** 2).sum(-1)).min(1)
# spks in ADU: an event's deconvolved size is the size of the step in F - 0.7 Fneu.
step = np.max(Fc - F0, 1)
ratio = np.max(spks[cells], 1) / np.maximum(step, 1e-6)
print(json.dumps({
  'n': len(stat), 'cells': int(cells.sum()), 'T': int(F.shape[1]), 'nframes': int(ops['nframes']),
  'shapes_agree': F.shape == Fneu.shape == spks.shape and iscell.shape == (len(stat), 2),
  'Ly': int(ops['Ly']), 'Lx': int(ops['Lx']), 'fs': float(ops['fs']),
  'meanImg_shape': list(img.shape), 'refImg_shape': list(ops['refImg'].shape),
  'yoff1_shape': list(ops['yoff1'].shape), 'dff_finite': bool(np.isfinite(dff).all()),
  'f_vs_img_max_adu': float(np.abs(F.mean(1) - f_img).max()),
  'fneu_vs_img_max_adu': float(np.abs(Fneu.mean(1) - neu_img).max()),
  'f_min_adu': float(F.min()), 'offset': offset,
  'motion_rms_px': rms, 'within_4px': float(np.mean(dist <= 4.0)),
  'spks_min': float(spks.min()), 'spks_step_ratio_median': float(np.median(ratio)),
  'rejected': int((~cells).sum()), 'rejected_prob_max': float(iscell[~cells, 1].max(initial=0.0)),
  'rejected_traced': bool(np.isfinite(F[~cells]).all() and (F[~cells].std(1) > 0).all()),
}))
"#;

fn read_npy(path: &std::path::Path) -> (Vec<u64>, Vec<f32>) {
    let npy = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec().unwrap())
}

/// Writes `frames` of a simulated 256x256 mouse with 250 cells and up to 3 px of motion to
/// `dir/movie.tif`, its truth to `dir/truth`; returns the microscope's dark offset (ADU).
fn write_sim_movie(dir: &Path, frames: usize) -> f64 {
    let mut cfg = Config::default_sim();
    cfg.imaging.width = 256;
    cfg.imaging.height = 256;
    cfg.sim.neurons = 250;
    cfg.sim.microscope.motion_max_px = 3.0;
    let g = cfg.sim_geometry();
    let mut mouse = SimMouse::new(&cfg.sim, &g).unwrap();
    let (w, h) = (256u32, 256u32);
    let movie = dir.join("movie.tif");
    let mut file = std::fs::File::create(&movie).unwrap();
    let mut tif = tiff::encoder::TiffEncoder::new_big(&mut file).unwrap();
    let mut px = vec![0u16; (w * h) as usize];
    let mut view = vec![0u8; g.view_width * g.view_height];
    let period = 1e9 / 30.0;
    // As ScanImage 2023 writes a single-plane acquisition: settings in the first page's
    // Software tag (a stack left configured but off), per-frame values in each description.
    let header = "SI.VERSION_MAJOR = 2023\nSI.hChannels.channelSave = 1\n\
                  SI.hRoiManager.scanFrameRate = 30\nSI.hRoiManager.scanVolumeRate = 30\n\
                  SI.hStackManager.enable = false\nSI.hStackManager.numSlices = 4\n";
    for k in 0..frames {
        let t = RigTime::from_nanos((k as f64 * period) as i64);
        // Drifting gratings changing direction every second drive the cells.
        let spec = StimulusSpec::grating(45.0 * (k / 30 % 8) as f64, 0.04, 2.0, 1.0, 0.0);
        cpu::render(&spec, k as f64 / 30.0, &cfg.display.view(), &mut view);
        mouse.show(&view, t);
        mouse.imaging_frame(t, &mut px);
        let mut page = tif
            .new_image::<tiff::encoder::colortype::Gray16>(w, h)
            .unwrap();
        if k == 0 {
            page.encoder()
                .write_tag(tiff::tags::Tag::Software, header)
                .unwrap();
        }
        let description = format!(
            "frameNumbers = {}\nframeTimestamps_sec = {:.6}\n",
            k + 1,
            k as f64 / 30.0
        );
        page.encoder()
            .write_tag(tiff::tags::Tag::ImageDescription, description.as_str())
            .unwrap();
        page.write_data(&px).unwrap();
    }
    let _ = tif;
    mouse.write_truth(&dir.join("truth")).unwrap();
    cfg.sim.microscope.offset_adu
}

/// `twinloop process dir/movie.tif` into `dir/out` with `[cells]` settings `cells` and the
/// dark offset told to the pipeline (twinloop's F has it removed, the suite2p files must not).
fn process(dir: &Path, offset: f64, cells: &str) -> std::path::PathBuf {
    let out = dir.join("out");
    let params = dir.join("params.toml");
    std::fs::write(
        &params,
        format!("[cells]\n{cells}[fluorescence]\ndark_offset_adu = {offset:?}\n"),
    )
    .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args([
            "process",
            dir.join("movie.tif").to_str().unwrap(),
            "--params",
            params.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn process_finds_the_simulated_cells_and_motion() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = 400;
    let offset = write_sim_movie(tmp.path(), frames);
    let truth_dir = tmp.path().join("truth");
    let out = process(tmp.path(), offset, "");
    let plane = out.join("plane0");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plane.join("process.json")).unwrap()).unwrap();
    assert_eq!(summary["frame_rate_hz"], 30.0);
    assert_eq!(summary["frame_rate_source"], "scanimage_header");
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
    let v = check_suite2p_folder(&out.join("suite2p/plane0"), &truth_dir, offset, frames);
    assert!(v["cells"].as_u64().unwrap() > 150, "{v}");
    assert_eq!(v["rejected"], 0, "no classifier, no rejected ROIs: {v}");
}

/// With the ROI classifier on, the candidates it turns down are still in suite2p's folder, as
/// suite2p writes them: `iscell` 0 with their probability, masks in `stat`, and traces in
/// suite2p's units (the `meanImg` check covers them), so a curator can move them across in
/// suite2p's GUI. twinloop's own folder holds the cells only.
#[test]
fn process_keeps_the_rejected_rois_in_the_suite2p_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = 300;
    let offset = write_sim_movie(tmp.path(), frames);
    let threshold = 0.5;
    let out = process(
        tmp.path(),
        offset,
        &format!("classifier_threshold = {threshold}\n"),
    );
    let (shape, _) = read_npy(&out.join("plane0/dff.npy"));
    let v = check_suite2p_folder(
        &out.join("suite2p/plane0"),
        &tmp.path().join("truth"),
        offset,
        frames,
    );
    assert_eq!(v["cells"].as_u64(), Some(shape[0]), "{v}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("plane0/process.json")).unwrap()).unwrap();
    assert_eq!(summary["rejected_rois"], v["rejected"], "{v}");
    let rejected = v["rejected"].as_u64().unwrap();
    assert!(
        rejected > 0,
        "the classifier rejected nothing on this movie: {v}"
    );
    assert_eq!(v["n"].as_u64(), Some(shape[0] + rejected), "{v}");
    assert!(v["rejected_prob_max"].as_f64().unwrap() < threshold, "{v}");
    assert_eq!(v["rejected_traced"], true, "{v}");
}

/// Runs the suite2p user's script on `dir`, asserts what holds for every folder `process`
/// writes, and returns the script's measurements.
fn check_suite2p_folder(
    dir: &Path,
    truth: &Path,
    offset_adu: f64,
    frames: usize,
) -> serde_json::Value {
    let py = std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&py)
        .args(["-c", SUITE2P_CHECK])
        .arg(dir)
        .arg(truth)
        .arg(offset_adu.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{py}` ({e}): set TWINLOOP_PYTHON to a Python with numpy")
        });
    assert!(
        out.status.success(),
        "{py} could not read the suite2p folder {} (needs numpy: pip install -r \
         tests/requirements.txt, set TWINLOOP_PYTHON): {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from python");
    eprintln!("suite2p folder: {v}");
    assert_eq!(v["shapes_agree"], true, "{v}");
    assert_eq!(
        (v["T"].as_u64(), v["nframes"].as_u64()),
        (Some(frames as u64), Some(frames as u64))
    );
    assert_eq!(
        (v["Ly"].as_u64(), v["Lx"].as_u64(), v["fs"].as_f64()),
        (Some(256), Some(256), Some(30.0))
    );
    assert_eq!(v["meanImg_shape"], serde_json::json!([256, 256]));
    assert_eq!(v["refImg_shape"], serde_json::json!([256, 256]));
    assert_eq!(v["yoff1_shape"][0].as_u64(), Some(frames as u64));
    assert_eq!(v["dff_finite"], true);
    // Raw ADU: the mean image (registered, rounded frames) predicts mean F and Fneu to well
    // under one ADU; had the dark offset been left out they would miss by it.
    assert!(v["f_vs_img_max_adu"].as_f64().unwrap() < 1.0, "{v}");
    assert!(v["fneu_vs_img_max_adu"].as_f64().unwrap() < 1.0, "{v}");
    assert!(v["f_min_adu"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["motion_rms_px"].as_f64().unwrap() < 0.5, "{v}");
    assert!(v["within_4px"].as_f64().unwrap() > 0.8, "{v}");
    assert!(v["spks_min"].as_f64().unwrap() >= 0.0, "{v}");
    // In ADU, not dF/F (which would put the ratio near 1 / F0, about 1/500).
    let ratio = v["spks_step_ratio_median"].as_f64().unwrap();
    assert!((0.05..5.0).contains(&ratio), "{v}");
    v
}
