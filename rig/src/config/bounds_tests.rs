//! In-range values the issue found to panic, abort, hang or run a session that does nothing:
//! each must be refused at validation, naming its field (#16).

use super::*;

/// Each edit, applied to the embedded default, must fail validation naming `field`.
#[test]
fn hostile_values_are_refused_naming_the_field() {
    type Edit = fn(&mut Config);
    let cases: &[(&str, Edit)] = &[
        ("source.idle_timeout_s", |c| c.source.idle_timeout_s = 1e300),
        ("source.max_time_jump_s", |c| {
            c.source.max_time_jump_s = f64::INFINITY
        }),
        ("session.duration_s", |c| c.session.duration_s = 1e300),
        ("session.fsync_every_s", |c| c.session.fsync_every_s = 1e300),
        ("imaging.frame_rate_hz", |c| c.imaging.frame_rate_hz = 1e300),
        ("imaging.frame_rate_hz", |c| c.imaging.frame_rate_hz = 1e12),
        ("eye.frame_rate_hz", |c| c.eye.frame_rate_hz = 1e12),
        ("treadmill.sample_rate_hz", |c| {
            c.treadmill.sample_rate_hz = 1e12
        }),
        ("display.refresh_hz", |c| c.display.refresh_hz = 1e12),
        ("imaging.late_after_ms", |c| {
            c.imaging.late_after_ms = f64::NAN
        }),
        ("imaging.pipeline.tau_decay_s", |c| {
            c.imaging.pipeline.tau_decay_s = -1.0
        }),
        ("imaging.pipeline.lambda_noise", |c| {
            c.imaging.pipeline.lambda_noise = f64::NAN
        }),
        ("imaging.pipeline.fluorescence.dark_offset_adu", |c| {
            c.imaging.pipeline.fluorescence.dark_offset_adu = f64::NAN
        }),
        ("imaging.pipeline.cells.calibration_frames", |c| {
            c.imaging.pipeline.cells.calibration_frames = 0
        }),
        // Below the detector's `min_frames`, which used to fail only at calibration time.
        ("imaging.pipeline.cells.calibration_frames", |c| {
            c.imaging.pipeline.cells.calibration_frames = c.imaging.pipeline.cells.min_frames - 1
        }),
        ("imaging.pipeline.registration.subpixel", |c| {
            c.imaging.pipeline.registration.subpixel = 0
        }),
        ("imaging.pipeline.settle_frames", |c| {
            c.imaging.pipeline.settle_frames = 0
        }),
        ("trials.stimulus_s", |c| c.trials.stimulus_s = 1e300),
        ("trials.design.deadline_ms", |c| {
            c.trials.design.deadline_ms = f64::INFINITY
        }),
        ("trials.design.threads", |c| {
            c.trials.design.threads = 1 << 40
        }),
        ("clocks.stale_after_s", |c| c.clocks.stale_after_s = 1e300),
        ("dashboard.bind", |c| {
            c.dashboard.enabled = true;
            c.dashboard.bind = "localhost:eighty".into();
        }),
        ("dashboard.token", |c| {
            c.dashboard.enabled = true;
            c.dashboard.token = Some(" ".into());
        }),
        ("dashboard.token", |c| {
            c.dashboard.enabled = true;
            c.dashboard.bind = "0.0.0.0:8787".into();
            c.dashboard.token = None;
        }),
        ("dashboard.max_connections", |c| {
            c.dashboard.max_connections = 0
        }),
        ("rings.frame_pool", |c| {
            c.session.memory_budget_mib = 4096;
            c.rings.frame_pool = 100_000;
        }),
    ];
    for (field, edit) in cases {
        let mut c = Config::default_sim();
        edit(&mut c);
        let e = match c.validate() {
            Err(ConfigError::Invalid(e)) => e,
            other => panic!("{field}: expected an Invalid, got {other:?}"),
        };
        assert!(e.field.starts_with(field), "{field}: got {e}");
        assert!(!e.allowed.is_empty(), "{field}: says what is allowed");
    }
}

/// The bounds leave every sane setting alone: the embedded default, a fast resonant rig and
/// a dashboard on every interface with its token.
#[test]
fn sane_settings_pass() {
    let mut c = Config::default_sim();
    c.validate().expect("the default");
    c.imaging.frame_rate_hz = 120.0;
    c.eye.frame_rate_hz = 500.0;
    c.dashboard.enabled = true;
    c.dashboard.bind = "0.0.0.0:0".into();
    c.dashboard.token = Some("s3cret".into());
    c.validate()
        .expect("fast devices and a public dashboard with a token");
}
