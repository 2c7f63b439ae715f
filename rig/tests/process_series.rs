//! `twinloop process` over a multi-file ScanImage acquisition, read in two passes (detection
//! block, then frame by frame): the same movie split into three files, one of them in the
//! middle of nothing in particular, gives the same bytes as the single file; a damaged last
//! file is processed up to the damage and named.

use std::path::{Path, PathBuf};
use std::process::Command;
use twinloop_rig::config::Config;
use twinloop_rig::offline::scanimage::{Acquisition, write_acquisition};
use twinloop_rig::sim::SimMouse;
use twinloop_rig::vocab::clock::RigTime;
use twinloop_stimulus::{StimulusSpec, cpu};

const FRAMES: usize = 360;
const SIDE: u32 = 128;

/// The simulated mouse's movie as ScanImage 2023 writes a split acquisition (the library's
/// writer): every file starts with the header, and the pages (and their frame numbers and
/// timestamps) run on. `per_file` pages a file.
fn write_split(dir: &Path, per_file: usize) -> Vec<PathBuf> {
    let mut cfg = Config::default_sim();
    cfg.imaging.width = SIDE;
    cfg.imaging.height = SIDE;
    cfg.sim.neurons = 60;
    let g = cfg.sim_geometry();
    let mut mouse = SimMouse::new(&cfg.sim, &g).unwrap();
    let mut view = vec![0u8; g.view_width * g.view_height];
    let acq = Acquisition {
        width: SIDE,
        height: SIDE,
        frames: FRAMES,
        frames_per_file: per_file,
        rate_hz: 30.0,
    };
    write_acquisition(dir, "acq", &acq, |k, px| {
        let t = RigTime::from_nanos((k as f64 * 1e9 / 30.0) as i64);
        let spec = StimulusSpec::grating(45.0 * (k / 30 % 8) as f64, 0.04, 2.0, 1.0, 0.0);
        cpu::render(&spec, k as f64 / 30.0, &cfg.display.view(), &mut view);
        mouse.show(&view, t);
        mouse.imaging_frame(t, px);
        Ok(())
    })
    .unwrap()
}

/// Detection on the first 200 frames (the `[cells]` minimum lowered to allow it), so pass 1
/// stops inside the movie.
fn process(files: &[PathBuf], out: &Path) -> std::process::Output {
    let params = out.with_extension("toml");
    std::fs::write(&params, "[cells]\ncalibration_frames = 150\n").unwrap();
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .arg("process")
        .args(files)
        .args(["--detection-frames", "200", "--params"])
        .arg(&params)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

const SAME_BYTES: [&str; 8] = [
    "plane0/F.npy",
    "plane0/Fneu.npy",
    "plane0/dff.npy",
    "plane0/spks.npy",
    "plane0/shifts.npy",
    "plane0/cells.json",
    "suite2p/plane0/F.npy",
    "suite2p/plane0/spks.npy",
];

#[test]
fn a_split_acquisition_processes_to_the_same_bytes_as_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (one_dir, split_dir) = (tmp.path().join("one"), tmp.path().join("split"));
    std::fs::create_dir_all(&one_dir).unwrap();
    std::fs::create_dir_all(&split_dir).unwrap();
    let one = write_split(&one_dir, FRAMES);
    // The first split falls inside the detection block, so pass 1 crosses a file boundary.
    let split = write_split(&split_dir, 130);
    assert_eq!(split.len(), 3);
    let (out_one, out_split) = (tmp.path().join("out_one"), tmp.path().join("out_split"));
    for (files, out) in [(&one, &out_one), (&split, &out_split)] {
        let o = process(files, out);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in SAME_BYTES {
        let (a, b) = (
            std::fs::read(out_one.join(f)).unwrap(),
            std::fs::read(out_split.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs between one file and three");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_split.join("plane0/process.json")).unwrap())
            .unwrap();
    assert_eq!(summary["frames"], FRAMES);
    assert_eq!(summary["calibration_frames"], 200);
    assert_eq!(summary["movie"].as_array().unwrap().len(), 3);
    assert!(summary["cells"].as_u64().unwrap() > 10, "{summary}");
}

#[test]
fn a_damaged_last_file_is_processed_to_the_damage_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let files = write_split(tmp.path(), 150);
    // Cut the last file in half: its later pages are gone.
    let last = &files[2];
    let len = std::fs::metadata(last).unwrap().len();
    let bytes = std::fs::read(last).unwrap();
    std::fs::write(last, &bytes[..(len / 2) as usize]).unwrap();
    let out = tmp.path().join("out");
    let o = process(&files, &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a damaged movie must not exit 0");
    assert!(
        stderr.contains("acq_00001_00003.tif") && stderr.contains("damaged"),
        "{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("plane0/process.json")).unwrap()).unwrap();
    let frames = summary["frames"].as_u64().unwrap() as usize;
    assert!(
        (300..FRAMES).contains(&frames),
        "{frames} frames: the first two files whole, the third cut short"
    );
    // A file from another acquisition is refused before any frame is read.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut mixed = write_split(&other, FRAMES);
    let wide = tmp.path().join("wide.tif");
    write_small_stack(&wide);
    mixed.push(wide.clone());
    let o = process(&mixed, &tmp.path().join("out2"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("wide.tif") && stderr.contains("does not continue"),
        "{stderr}"
    );
    assert!(!tmp.path().join("out2").exists(), "nothing written");
}

/// A 64x64 stack: not the acquisition's 128x128.
fn write_small_stack(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let mut tif = tiff::encoder::TiffEncoder::new_big(&mut file).unwrap();
    for _ in 0..3 {
        tif.write_image::<tiff::encoder::colortype::Gray16>(64, 64, &[7u16; 64 * 64])
            .unwrap();
    }
}
