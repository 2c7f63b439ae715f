//! The report's drops-and-health table: each count the daemon's summary holds beside what the
//! record log shows of it (anomaly or decision records), so a reader sees both and where they
//! differ (the adaptive design's own counts included).

use super::data::{LogData, SessionData};

/// A row of the drops table: what the summary counted and what the log holds.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    pub id: &'static str,
    pub label: &'static str,
    pub summary: Option<u64>,
    pub log: Option<u64>,
}

/// The table's rows, in the order shown; a row with neither column is left out by the page.
pub(super) fn health(data: &SessionData, log: &LogData) -> Vec<HealthRow> {
    let counter = |name: &str| data.summary.as_ref().and_then(|s| s.counter(name));
    let design = |name: &str| data.summary.as_ref().and_then(|s| s.design_counter(name));
    let has_log = data.log.is_some();
    let anomalies = |kind: &str| {
        has_log.then(|| log.anomalies.iter().filter(|a| a.kind == kind).count() as u64)
    };
    let decisions = |mode: &str| {
        has_log.then(|| log.decisions.iter().filter(|d| d.mode == mode).count() as u64)
    };
    let row = |id, label, summary, log| HealthRow {
        id,
        label,
        summary,
        log,
    };
    vec![
        row(
            "health-gaps",
            "Sequence gaps (two-photon and other inputs)",
            counter("gaps"),
            anomalies("gap"),
        ),
        row(
            "health-missing",
            "Messages missing in gaps",
            counter("missing"),
            None,
        ),
        row(
            "health-rejected",
            "Messages rejected",
            counter("rejected"),
            anomalies("rejected"),
        ),
        row(
            "health-skips",
            "Imaging stage skips",
            counter("stage_skips"),
            anomalies("stage_skip"),
        ),
        row(
            "health-late-frames",
            "Late activity frames",
            counter("late_frames"),
            anomalies("late"),
        ),
        row(
            "health-underruns",
            "Stimulus queue underruns",
            counter("underruns"),
            anomalies("underrun"),
        ),
        row(
            "health-bus-drops",
            "Event bus drops",
            counter("bus_drops"),
            anomalies("bus_drop"),
        ),
        row(
            "health-late-decisions",
            "Late decisions (overran their time limit; the log holds those made random)",
            design("late"),
            decisions("late"),
        ),
        row(
            "health-fallback",
            "Fallback decisions (accuracy stopped improving)",
            design("fallback_trials"),
            decisions("fallback"),
        ),
        row(
            "health-refit-failures",
            "Readout refits failed (the unit restarted from its prior)",
            design("refit_failures"),
            None,
        ),
        row(
            "health-twin-refit-failures",
            "Twin refits failed (the old twin kept)",
            design("twin_refit_failures"),
            has_log.then(|| {
                log.decisions
                    .iter()
                    .filter(|d| d.twin_refit.is_some_and(|r| !r.applied))
                    .count() as u64
            }),
        ),
        row(
            "health-unit-count-changes",
            "Cell-count changes (a plane's readouts restarted)",
            design("unit_count_changes"),
            None,
        ),
        row(
            "health-values-clipped",
            "Activity values clipped as outliers by the design",
            design("values_clipped"),
            None,
        ),
        row(
            "health-values-skipped",
            "Activity values the design could not use",
            design("values_skipped"),
            None,
        ),
        row(
            "health-pool-stalls",
            "Frame pool stalls",
            counter("pool_stalls"),
            None,
        ),
        row(
            "health-recorder-waits",
            "Recorder waits",
            counter("recorder_waits"),
            None,
        ),
        row(
            "health-behaviour-filled",
            "Frames with filled-in behaviour",
            counter("behaviour_filled"),
            None,
        ),
    ]
}
