//! The simulator's truth spilled to disk as it is made (`truth_spill.rs`) against the
//! in-memory path, through a whole mouse.

use super::SimMouse;
use super::tests::{noise_view, run, small_config, small_geometry};

/// A mouse whose truth went to disk as it was made writes the same files, byte for byte, as
/// one that kept it in memory, and keeps none of the per-cell rows in memory.
#[test]
fn spilled_truth_writes_the_same_files() {
    let geom = small_geometry();
    let cfg = small_config(82, 20);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (k, dir) in dirs.iter().enumerate() {
        let mut m = SimMouse::new(&cfg, &geom).expect("valid config");
        if k == 1 {
            m.spill_truth(dir.path()).unwrap();
        }
        run(
            &mut m,
            &geom,
            0.0,
            0.5,
            |t| noise_view(&geom, t),
            Some(60.0),
            false,
        );
        if k == 1 {
            assert!(m.truth().spikes().is_empty() && m.truth().rates().is_empty());
            assert!(m.truth().frames() > 0);
        }
        m.write_truth(dir.path()).unwrap();
        assert!(!dir.path().join(".spill").exists(), "spill files removed");
    }
    for name in ["spikes.npy", "rates.npy", "calcium.npy", "frame_times.npy"] {
        let read = |d: &tempfile::TempDir| std::fs::read(d.path().join(name)).unwrap();
        assert_eq!(read(&dirs[0]), read(&dirs[1]), "{name}");
    }
}
