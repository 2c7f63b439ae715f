//! `configs/stimuli/every_kind.toml`, the shipped example of every parametric stimulus kind,
//! parses, covers every kind that needs no file, and renders on the CPU reference.

use std::collections::BTreeSet;
use twinloop_stimulus::batch::{RenderFile, render_to_dir};

#[test]
fn the_shipped_trial_list_covers_every_kind_and_renders() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/stimuli/every_kind.toml"
    );
    let text = std::fs::read_to_string(path).expect("configs/stimuli/every_kind.toml");
    let mut file = RenderFile::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let kinds: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.split("kind = \"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect();
    // Every variant but the file-backed and in-memory ones (which the header documents).
    let want = [
        "gray",
        "grating",
        "gabor",
        "sparse_noise",
        "pink_noise",
        "moving_pink_noise",
        "flashing_dots",
        "random_dots",
    ];
    assert_eq!(kinds, want.iter().map(|k| k.to_string()).collect());
    // Rendered small and fast: the same specs on a 96 x 54 monitor, 10 frames/s, CPU.
    file.gpu = false;
    file.fps = 10.0;
    if let Some(m) = file.monitor.as_mut() {
        (m.width_px, m.height_px) = (96, 54);
    }
    file.twin.width = 32;
    file.twin.height = 18;
    let out = std::env::temp_dir().join(format!("twinloop-every-kind-{}", std::process::id()));
    let s = render_to_dir(&file, &out).unwrap_or_else(|e| panic!("{path}: {e}"));
    let _ = std::fs::remove_dir_all(&out);
    let (trials, _) = file.trial_list().unwrap();
    let seconds: f64 = trials.trials.iter().map(|t| t.duration_s).sum::<f64>()
        + trials.gray_s * (trials.trials.len() + 1) as f64;
    assert!(
        (s.frames as f64 - seconds * 10.0).abs() <= trials.trials.len() as f64 + 1.0,
        "{} frames for {seconds} s at 10 fps",
        s.frames
    );
}

/// `configs/stimuli/natural_movie.toml` plays the shipped clip (made by
/// `scripts/make_movie_clip.py`), once and looped, on the CPU reference: the clip loads and
/// validates as a `movie`, and every frame of the trials renders.
#[test]
fn the_shipped_natural_movie_renders() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let path = format!("{root}/configs/stimuli/natural_movie.toml");
    let text = std::fs::read_to_string(&path).expect("configs/stimuli/natural_movie.toml");
    let mut file = RenderFile::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The movie's path is relative to the working directory, the repository root (the file's
    // header says so); no other test here depends on the working directory.
    std::env::set_current_dir(root).expect("the repository root");
    file.gpu = false;
    file.fps = 10.0;
    if let Some(m) = file.monitor.as_mut() {
        (m.width_px, m.height_px) = (96, 54);
    }
    file.twin.width = 32;
    file.twin.height = 18;
    let out = std::env::temp_dir().join(format!("twinloop-movie-{}", std::process::id()));
    let s = render_to_dir(&file, &out).unwrap_or_else(|e| panic!("{path}: {e}"));
    let _ = std::fs::remove_dir_all(&out);
    // 3 s + 6 s of movie and three 0.5 s grays at 10 frames/s, give or take a frame per trial.
    assert!(
        (s.frames as f64 - 105.0).abs() <= 3.0,
        "{} frames",
        s.frames
    );
}
