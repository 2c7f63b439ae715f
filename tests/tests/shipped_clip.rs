//! The shipped natural-movie clip (`configs/stimuli/clips/natural_movie.npy`) is what
//! `scripts/make_movie_clip.py` makes, byte for byte: the repository's clip is generated, not
//! downloaded, and anyone can remake it. Needs a Python with numpy (`TWINLOOP_PYTHON`).

use twinloop_e2e::python::{python_command, repo_root, require_pyzmq};

#[test]
fn the_shipped_clip_is_what_the_script_makes() {
    require_pyzmq();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("clip.npy");
    let run = python_command()
        .arg(repo_root().join("scripts/make_movie_clip.py"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run the script");
    assert!(
        run.status.success(),
        "make_movie_clip.py: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let made = std::fs::read(&out).expect("the script's clip");
    let shipped = std::fs::read(repo_root().join("configs/stimuli/clips/natural_movie.npy"))
        .expect("the shipped clip");
    assert_eq!(
        made.len(),
        shipped.len(),
        "a [90, 36, 64] u8 .npy either way"
    );
    assert!(
        made == shipped,
        "the shipped clip differs from what scripts/make_movie_clip.py makes: remake it with \
         the script (and say why in the commit)"
    );
}
