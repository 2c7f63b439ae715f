//! Every config shipped in `configs/` loads and validates: a lab starts from these files, so
//! one that drifted from the code (a renamed or removed field, a value validation now refuses)
//! fails here rather than on a rig.

use twinloop_rig::config::Config;

#[test]
fn every_shipped_config_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(dir).expect("configs/") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            loaded.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    loaded.sort();
    // The two the README and docs/protocol.md name, at least.
    for name in ["bridge.toml", "sim.toml"] {
        assert!(loaded.iter().any(|l| l == name), "{name} in {loaded:?}");
    }
}

/// Every shipped sweep file plans: its grid expands and every job's config validates.
#[test]
fn every_shipped_sweep_plans() {
    use twinloop_rig::sweep::{Plan, SweepSpec};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/sweeps");
    let mut planned = 0;
    for entry in std::fs::read_dir(dir).expect("configs/sweeps/") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let spec = SweepSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let plan =
                Plan::make(&spec, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                !plan.jobs.is_empty() && plan.shards >= 1,
                "{}",
                path.display()
            );
            planned += 1;
        }
    }
    assert!(planned >= 2, "bench-loop.toml and sessions.toml at least");
}
