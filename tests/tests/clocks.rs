//! Device clocks end to end: the simulated rig stamps every stream on its own jittered,
//! drifting clock and sends shared sync ticks; the real daemon (over loopback) fits each clock
//! online and places every sample on the rig clock. Checked against the simulator's ground
//! truth (frame k was acquired at k / frame rate on the rig clock), and replayed exactly.

use twinloop_e2e::{fast_sim_config, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::offline::replay::replay;
use twinloop_rig::sim::CellTruth;
use twinloop_rig::sim::clocks::{ClockJumpConfig, ClockStopConfig};
use twinloop_rig::stages::clocks::ClockState;
use twinloop_rig::vocab::protocol::ClockDomain;
use twinloop_rig::vocab::records::{self, RecordKind};
use twinloop_rig::vocab::scan::ScanOffsets;

#[test]
fn device_clocks_are_fitted_flagged_and_replayed_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), 30.0);
    cfg.session.record_frames = true;
    cfg.imaging.width = 128;
    cfg.imaging.height = 128;
    cfg.sim.neurons = 60;
    let c = &mut cfg.sim.clocks;
    assert!(c.enabled, "configs/sim.toml exercises device clocks");
    c.missing_fraction = 0.1;
    c.spurious_hz = 0.1;
    c.jump = Some(ClockJumpConfig {
        device: ClockDomain::EyeCamera,
        at_s: 12.0,
        step_ms: 40.0,
    });
    c.ticks_stop = Some(ClockStopConfig {
        device: ClockDomain::Treadmill,
        at_s: 22.0,
    });
    let sim_2p = c.two_photon.clone();
    let live = run_session(&cfg);

    // The session kept recording through the jump and the stopped ticks.
    assert_eq!(live.counters.frames_in, 900);
    assert_eq!(live.counters.rejected_total(), 0);
    let domain = |d: ClockDomain| live.clocks.iter().find(|s| s.domain == d).unwrap();

    // Drift recovered: the fit's rate is rig s per device s, 1 / (1 + drift).
    let two_photon = domain(ClockDomain::TwoPhoton);
    let fit = two_photon.fit.as_ref().expect("two-photon clock fitted");
    let want_ppm = (1.0 / (1.0 + sim_2p.drift_ppm * 1e-6) - 1.0) * 1e6;
    assert!(
        (fit.drift_ppm - want_ppm).abs() < 2.0,
        "drift {} ppm, simulated {want_ppm}",
        fit.drift_ppm
    );
    assert!(
        fit.residual_rms_ns < 3.0 * sim_2p.jitter_us * 1e3,
        "{fit:?}"
    );
    assert_eq!(two_photon.state, ClockState::Fitted);
    assert!(
        fit.dev_unmatched + fit.rig_unmatched > 0,
        "missing/spurious ticks counted: {fit:?}"
    );
    // A jump is a counted, logged segment; stopped ticks a flagged state.
    assert_eq!(domain(ClockDomain::EyeCamera).jumps, 1);
    assert!(live.counters.clock_jumps >= 1);
    assert_eq!(domain(ClockDomain::Treadmill).state, ClockState::Stopped);
    assert!(live.counters.clock_anomalies >= 1);

    // Every frame on the rig clock within the injected jitter once fitted (the truth: frame
    // k at k / 30 s), and within the drift of the first-tick offset before.
    let dir = SessionDir::open(&live.session_dir).unwrap();
    let mut reader = dir.open_log().unwrap();
    let mut buf = Vec::new();
    let (mut errs, mut early_max, mut scan) = (Vec::new(), 0f64, None::<ScanOffsets>);
    let mut anomalies = String::new();
    while let Some(info) = reader.next_into(&mut buf).unwrap() {
        match RecordKind::from_code(info.kind) {
            Some(RecordKind::Activity) => {
                let a = records::decode_activity(&buf).unwrap();
                let truth = (a.frame_seq as f64 * 1e9 / 30.0).round();
                let err = a.t.as_nanos() as f64 - truth;
                if truth >= 12e9 {
                    errs.push(err);
                } else {
                    early_max = early_max.max(err.abs());
                }
            }
            Some(RecordKind::Cells) => scan = Some(serde_json::from_slice(&buf).unwrap()),
            Some(RecordKind::Anomaly) => anomalies.push_str(std::str::from_utf8(&buf).unwrap()),
            _ => {}
        }
    }
    let rms = (errs.iter().map(|e| e * e).sum::<f64>() / errs.len() as f64).sqrt();
    let max = errs.iter().fold(0f64, |m, e| m.max(e.abs()));
    let jitter_ns = sim_2p.jitter_us * 1e3;
    assert!(errs.len() > 500);
    assert!(rms < 2.0 * jitter_ns, "rms {rms} ns, jitter {jitter_ns} ns");
    assert!(max < 6.0 * jitter_ns, "max {max} ns");
    assert!(
        early_max < 1e6,
        "provisional frames within 1 ms: {early_max} ns"
    );
    assert!(anomalies.contains("clock_jump"), "{anomalies}");
    assert!(anomalies.contains("clock_ticks_stopped"), "{anomalies}");

    // Scan offsets: (centroid row + 0.5) / lines x frame period, for the simulated cells.
    let scan = scan.expect("cells' scan offsets logged");
    let cells: Vec<CellTruth> =
        serde_json::from_slice(&std::fs::read(dir.truth_dir().join("cells.json")).unwrap())
            .unwrap();
    assert_eq!(scan.offsets_s.len(), cells.len());
    for (c, s) in cells.iter().zip(&scan.offsets_s) {
        let want = (f64::from(c.centre_y_px) + 0.5) / 128.0 * (33_333_333.0 * 1e-9);
        assert!((s - want).abs() < 1e-12, "cell {}: {s} vs {want}", c.id);
    }

    // Replay refits the clocks from the logged ticks and reproduces everything bit for bit.
    let r = replay(&live.session_dir).unwrap();
    assert!(r.clock_updates_logged > 50);
    assert_eq!(r.clock_updates_reproduced, r.clock_updates_logged);
    assert_eq!(r.frame_times_compared, live.counters.frames_processed);
    assert_eq!(r.frame_time_mismatches, 0);
    assert_eq!(r.activity_mismatches, 0);
    assert_eq!(
        r.decisions_reproduced, r.decisions_logged,
        "{:?}",
        r.first_decision_mismatch
    );
    assert!(r.reproduced());
}
