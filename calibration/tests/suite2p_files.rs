//! suite2p-format outputs read back by numpy, the reader every suite2p script uses
//! (`np.load(..., allow_pickle=True)`), from `TWINLOOP_PYTHON` (default `python3`): every file
//! loads, every field has the shape, dtype and values written, and a typical analysis snippet
//! (select cells by `iscell`, neuropil-correct, take ROI centres from `stat`) runs.
//!
//! Needs numpy in that Python; without it the test fails with the fix in its message.

use std::process::Command;
use twinloop_calibration::imaging::cells::{CellMasks, NeuropilParams, ProjectionImages};
use twinloop_calibration::imaging::suite2p_files::{Suite2pMotion, Suite2pPlane, write_plane};

fn python() -> String {
    std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into())
}

const CHECK: &str = r#"
import json, sys
import numpy as np
d = sys.argv[1]
stat = np.load(d + '/stat.npy', allow_pickle=True)
ops = np.load(d + '/ops.npy', allow_pickle=True).item()
iscell = np.load(d + '/iscell.npy')
F = np.load(d + '/F.npy'); Fneu = np.load(d + '/Fneu.npy'); spks = np.load(d + '/spks.npy')
# A typical analysis snippet.
cells = iscell[:, 0].astype(bool)
dF = F[cells] - ops['neucoeff'] * Fneu[cells]
centres = np.array([s['med'] for s in stat])[cells]
out = {
  'n': len(stat), 'stat_dtype': str(stat.dtype), 'keys': sorted(stat[0].keys()),
  'ypix0': stat[0]['ypix'].tolist(), 'xpix0': stat[0]['xpix'].tolist(),
  'ypix_dtype': str(stat[0]['ypix'].dtype), 'lam0': stat[0]['lam'].tolist(),
  'lam_dtype': str(stat[0]['lam'].dtype), 'med1': [float(v) for v in stat[1]['med']],
  'npix': [int(s['npix']) for s in stat], 'overlap_dtype': str(stat[0]['overlap'].dtype),
  'skew': [float(s['skew']) for s in stat], 'neuropil0': stat[0]['neuropil_mask'].tolist(),
  'iplane': ops['iplane'], 'nplanes': ops['nplanes'], 'stat_iplane': int(stat[0]['iplane']),
  'Ly': ops['Ly'], 'Lx': ops['Lx'], 'fs': ops['fs'], 'nframes': ops['nframes'],
  'meanImg_shape': list(ops['meanImg'].shape), 'meanImg_00': float(ops['meanImg'][0, 0]),
  'meanImg_sum': float(ops['meanImg'].sum()), 'max_proj_dtype': str(ops['max_proj'].dtype),
  'Vcorr_12': float(ops['Vcorr'][1, 2]), 'yoff': ops['yoff'].tolist(),
  'yoff1_shape': list(ops['yoff1'].shape), 'xoff1_last': float(ops['xoff1'][-1, -1]),
  'iscell': iscell.tolist(), 'iscell_dtype': str(iscell.dtype),
  'F_shape': list(F.shape), 'F_dtype': str(F.dtype), 'F_12': float(F[1, 2]),
  'Fneu_sum': float(Fneu.sum()), 'spks_sum': float(spks.sum()),
  'dF_shape': list(dF.shape), 'centres': centres.tolist(),
}
print(json.dumps(out))
"#;

#[test]
fn suite2p_files_load_in_numpy_with_their_values() {
    let (h, w, t) = (24usize, 30usize, 7usize);
    let disc = |cy: usize, cx: usize| -> Vec<(u32, f32)> {
        let mut m = Vec::new();
        for y in cy - 2..=cy + 2 {
            for x in cx - 2..=cx + 2 {
                let d2 = (y as i32 - cy as i32).pow(2) + (x as i32 - cx as i32).pow(2);
                if d2 <= 5 {
                    m.push(((y * w + x) as u32, 1.0 + (5 - d2) as f32));
                }
            }
        }
        m
    };
    let np = NeuropilParams {
        min_pixels: 20,
        max_radius_px: 10,
        ..NeuropilParams::default()
    };
    let masks = CellMasks::from_weighted(h, w, &[disc(6, 6), disc(15, 20), disc(8, 22)], &[], &np)
        .expect("masks");
    let images = ProjectionImages {
        height: h,
        width: w,
        frames: t,
        mean: (0..h * w).map(|i| 100.0 + i as f32).collect(),
        max: (0..h * w).map(|i| 200 + i as u16).collect(),
        correlation: (0..h * w).map(|i| i as f32 / 1000.0).collect(),
    };
    let n = masks.len();
    let f: Vec<f32> = (0..n * t).map(|i| 500.0 + (i * i % 17) as f32).collect();
    let fneu: Vec<f32> = (0..n * t).map(|i| 300.0 + i as f32).collect();
    let spks: Vec<f32> = (0..n * t).map(|i| (i % 3) as f32).collect();
    let yoff: Vec<f32> = (0..t).map(|i| i as f32 * 0.5 - 1.0).collect();
    let xoff = vec![0.25f32; t];
    let corr = vec![0.9f32; t];
    let blocks = 4;
    let off1: Vec<f32> = (0..t * blocks).map(|i| i as f32 * 0.1).collect();
    // The third ROI was kept below the classifier's threshold (a silent soma): `iscell`
    // says what was kept, not what the probability alone would say.
    let probability = [0.9, 0.2, 0.3];
    let is_cell = [true, false, true];
    let plane = Suite2pPlane {
        plane: 1,
        planes: 2,
        masks: &masks,
        probability: &probability,
        is_cell: &is_cell,
        images: &images,
        reference: &[],
        frames: t,
        f: &f,
        fneu: &fneu,
        spks: &spks,
        fs_hz: 30.0,
        tau_s: 0.7,
        diameter_px: 12.0,
        motion: Some(Suite2pMotion {
            yoff: &yoff,
            xoff: &xoff,
            corr_xy: &corr,
            blocks,
            yoff1: &off1,
            xoff1: &off1,
        }),
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = write_plane(tmp.path(), &plane).expect("written");
    assert!(dir.ends_with("suite2p/plane1"), "{}", dir.display());

    let py = python();
    let out = Command::new(&py)
        .args(["-c", CHECK, dir.to_str().expect("utf-8 path")])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{py}` ({e}): set TWINLOOP_PYTHON to a Python with numpy")
        });
    assert!(
        out.status.success(),
        "{py} failed to load the suite2p files (needs numpy: pip install -r tests/requirements.txt \
         and set TWINLOOP_PYTHON): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from python");
    assert_eq!(v["n"], 3);
    assert_eq!(
        (&v["iplane"], &v["nplanes"], &v["stat_iplane"]),
        (&1.into(), &2.into(), &1.into())
    );
    assert_eq!(v["stat_dtype"], "object");
    let keys: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for k in [
        "ypix",
        "xpix",
        "lam",
        "med",
        "npix",
        "radius",
        "aspect_ratio",
        "compact",
        "skew",
        "std",
        "overlap",
        "footprint",
        "npix_norm",
        "neuropil_mask",
    ] {
        assert!(keys.contains(&k), "stat lacks {k}: {keys:?}");
    }
    let (pixels, weights) = masks.cell(0);
    let ypix: Vec<u64> = pixels.iter().map(|&p| (p as usize / w) as u64).collect();
    let xpix: Vec<u64> = pixels.iter().map(|&p| (p as usize % w) as u64).collect();
    let as_u64 = |k: &str| -> Vec<u64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    assert_eq!(as_u64("ypix0"), ypix);
    assert_eq!(as_u64("xpix0"), xpix);
    assert_eq!(v["ypix_dtype"], "int32");
    let lam: Vec<f32> = v["lam0"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(lam, weights);
    assert_eq!(v["lam_dtype"], "float32");
    assert_eq!(v["med1"], serde_json::json!([15.0, 20.0]));
    assert_eq!(as_u64("npix"), vec![21, 21, 21]);
    assert_eq!(v["overlap_dtype"], "bool");
    let np0: Vec<u64> = masks.neuropil(0).iter().map(|&p| u64::from(p)).collect();
    assert_eq!(as_u64("neuropil0"), np0);
    assert!(
        v["skew"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.as_f64().unwrap().is_finite())
    );
    assert_eq!((v["Ly"].as_u64(), v["Lx"].as_u64()), (Some(24), Some(30)));
    assert_eq!(v["fs"], 30.0);
    assert_eq!(v["nframes"], 7);
    assert_eq!(v["meanImg_shape"], serde_json::json!([24, 30]));
    assert_eq!(v["meanImg_00"], 100.0);
    let mean_sum: f64 = images.mean.iter().map(|&x| f64::from(x)).sum();
    assert!((v["meanImg_sum"].as_f64().unwrap() - mean_sum).abs() < 1e-3 * mean_sum);
    assert_eq!(v["max_proj_dtype"], "float32");
    assert!((v["Vcorr_12"].as_f64().unwrap() - f64::from(images.correlation[w + 2])).abs() < 1e-7);
    let yo: Vec<f64> = v["yoff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(yo, yoff.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
    assert_eq!(v["yoff1_shape"], serde_json::json!([7, 4]));
    assert!((v["xoff1_last"].as_f64().unwrap() - f64::from(off1[t * blocks - 1])).abs() < 1e-6);
    assert_eq!(
        v["iscell"],
        serde_json::json!([[1.0, 0.9], [0.0, 0.2], [1.0, 0.3]])
    );
    assert_eq!(v["iscell_dtype"], "float64");
    assert_eq!(v["F_shape"], serde_json::json!([3, 7]));
    assert_eq!(v["F_dtype"], "float32");
    assert_eq!(v["F_12"], f64::from(f[t + 2]));
    let fneu_sum: f64 = fneu.iter().map(|&x| f64::from(x)).sum();
    assert!((v["Fneu_sum"].as_f64().unwrap() - fneu_sum).abs() < 1e-3);
    let spks_sum: f64 = spks.iter().map(|&x| f64::from(x)).sum();
    assert_eq!(v["spks_sum"].as_f64().unwrap(), spks_sum);
    assert_eq!(v["dF_shape"], serde_json::json!([2, 7]));
    assert_eq!(v["centres"], serde_json::json!([[6.0, 6.0], [8.0, 22.0]]));
}

#[test]
fn inconsistent_inputs_are_named() {
    let masks = CellMasks::from_weighted(
        8,
        8,
        &[vec![(9, 1.0), (10, 1.0)]],
        &[],
        &NeuropilParams {
            min_pixels: 5,
            max_radius_px: 5,
            ..NeuropilParams::default()
        },
    )
    .expect("masks");
    let images = ProjectionImages {
        height: 8,
        width: 8,
        frames: 3,
        mean: vec![1.0; 64],
        max: vec![1; 64],
        correlation: vec![0.0; 64],
    };
    let f = vec![0.0f32; 3];
    let short = vec![0.0f32; 2];
    let plane = Suite2pPlane {
        plane: 0,
        planes: 1,
        masks: &masks,
        probability: &[],
        is_cell: &[],
        images: &images,
        reference: &[],
        frames: 3,
        f: &f,
        fneu: &short,
        spks: &f,
        fs_hz: 30.0,
        tau_s: 0.7,
        diameter_px: 12.0,
        motion: None,
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let e = write_plane(tmp.path(), &plane).unwrap_err().to_string();
    assert!(
        e.contains("`fneu`") && e.contains("has 2 values, expected 3"),
        "{e}"
    );
}
