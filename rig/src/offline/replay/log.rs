//! The log as replay needs it: frames with their pixels, activity, decisions, onsets, each
//! frame's behaviour, clock ticks and updates, and the cells' scan offsets.

use super::ReplayError;
use crate::backbone::frames::FrameMeta;
use crate::backbone::session_log::{Damage, SessionDir, TailState};
use crate::sim::CellTruth;
use crate::stages::behaviour::BehaviourRecord;
use crate::stages::clocks::ClockUpdate;
use crate::stages::decide::selector::BEHAVIOUR_MISSING_NOTE;
use crate::stages::decide::{Decision, FrameBehaviour, Onset};
use crate::vocab::clock::RigTime;
use crate::vocab::protocol::{ClockDomain, Stream, SyncCode};
use crate::vocab::records::{self, RecordKind};
use std::collections::BTreeMap;
use twinloop_stimulus::StimulusId;

/// The `event` prefix of the inception protocol's notes.
const INCEPTION_PREFIX: &str = "inception.";

/// What the log holds, split by what replay needs.
pub(super) struct Logged {
    pub(super) frames: Vec<(FrameMeta, Option<Vec<u8>>)>,
    pub(super) activity: Vec<records::ActivityRecord>,
    pub(super) decisions: Vec<Decision>,
    pub(super) onsets: Vec<Onset>,
    /// Each imaging frame's behaviour, as the live selector received it, by frame seq (plane
    /// 0's frames; another plane's frame takes the record of its seq, as live).
    pub(super) behaviour: BTreeMap<u64, FrameBehaviour>,
    /// Frames `(plane, seq)` the live selector observed without their behaviour (it noted them).
    pub(super) behaviour_missing: std::collections::BTreeSet<(u8, u64)>,
    /// Clock ticks in ingest order: (domain, t_ns).
    pub(super) ticks: Vec<(ClockDomain, i64)>,
    pub(super) clock_updates: Vec<ClockUpdate>,
    /// Each plane's cells' scan offsets the live selector was given.
    pub(super) scan: BTreeMap<u8, crate::vocab::scan::ScanOffsets>,
    /// The selector's own notes (the inception protocol's), in log order.
    pub(super) selector_notes: Vec<serde_json::Value>,
    pub(super) records: u64,
    pub(super) tail: TailState,
    pub(super) damage: Vec<Damage>,
}

/// The fields of a `Stimulus` record the selector needs.
#[derive(serde::Deserialize)]
struct StimulusRecord {
    pub(super) trial: u64,
    pub(super) stimulus: StimulusId,
    pub(super) onset_t_ns: i64,
}

pub(super) fn read_log(dir: &SessionDir) -> Result<Logged, ReplayError> {
    let mut reader = dir.open_log()?;
    let mut buf = Vec::new();
    let mut logged = Logged {
        frames: Vec::new(),
        activity: Vec::new(),
        decisions: Vec::new(),
        onsets: Vec::new(),
        behaviour: BTreeMap::new(),
        behaviour_missing: Default::default(),
        ticks: Vec::new(),
        clock_updates: Vec::new(),
        scan: BTreeMap::new(),
        selector_notes: Vec::new(),
        records: 0,
        tail: TailState::Clean,
        damage: Vec::new(),
    };
    while let Some(info) = reader.next_into(&mut buf)? {
        logged.records += 1;
        let bad = |source| ReplayError::Record {
            index: info.index,
            source,
        };
        match RecordKind::from_code(info.kind) {
            Some(RecordKind::Input) => {
                let r = records::decode_input(&buf).map_err(bad)?;
                if r.header.stream == Stream::TwoPhoton {
                    let mut meta = FrameMeta::from_header(&r.header, r.recv_ns);
                    meta.clock_gen = r.clock_gen;
                    logged.frames.push((meta, r.payload.map(<[u8]>::to_vec)));
                } else if r.header.stream == Stream::Sync
                    && r.header.aux == SyncCode::ClockTick as i64
                    && let Some(d) = ClockDomain::from_code(r.header.channel)
                {
                    logged.ticks.push((d, r.header.t_ns));
                }
            }
            Some(RecordKind::Activity) => logged
                .activity
                .push(records::decode_activity(&buf).map_err(bad)?),
            Some(RecordKind::Decision) => logged
                .decisions
                .push(records::decode_json("decision", &buf).map_err(bad)?),
            Some(RecordKind::Note) => {
                let v: serde_json::Value = records::decode_json("note", &buf).map_err(bad)?;
                if v.get("event").and_then(|e| e.as_str()) == Some(BEHAVIOUR_MISSING_NOTE)
                    && let Some(seq) = v.get("frame_seq").and_then(|s| s.as_u64())
                {
                    // Older logs noted plane 0's frames only, without the plane.
                    let plane = v.get("plane").and_then(|p| p.as_u64()).unwrap_or(0) as u8;
                    logged.behaviour_missing.insert((plane, seq));
                } else if v
                    .get("event")
                    .and_then(|e| e.as_str())
                    .is_some_and(|e| e.starts_with(INCEPTION_PREFIX))
                {
                    logged.selector_notes.push(v);
                }
            }
            Some(RecordKind::Behaviour) => {
                let r: BehaviourRecord = records::decode_json("behaviour", &buf).map_err(bad)?;
                logged
                    .behaviour
                    .insert(r.frame_seq, FrameBehaviour::from_record(&r));
            }
            Some(RecordKind::Cells) => {
                let scan: crate::vocab::scan::ScanOffsets =
                    records::decode_json("cells", &buf).map_err(bad)?;
                logged.scan.insert(scan.plane, scan);
            }
            Some(RecordKind::Clock) => logged
                .clock_updates
                .push(records::decode_json("clock", &buf).map_err(bad)?),
            Some(RecordKind::Stimulus) => {
                let r: StimulusRecord = records::decode_json("stimulus", &buf).map_err(bad)?;
                logged.onsets.push(Onset {
                    trial: r.trial,
                    stimulus: r.stimulus,
                    t: RigTime::from_nanos(r.onset_t_ns),
                });
            }
            _ => {}
        }
    }
    if let Some(t) = reader.tail() {
        logged.tail = t.clone();
    }
    logged.damage = reader.damage().to_vec();
    Ok(logged)
}

/// The simulator's true footprints of a session (its `truth/cells.json`).
pub(super) fn truth_masks(
    dir: &SessionDir,
) -> Result<Vec<crate::stages::extract::TrueMask>, String> {
    Ok(truth_cells(dir)?.into_iter().map(|c| c.footprint).collect())
}

pub(crate) fn truth_cells(dir: &SessionDir) -> Result<Vec<CellTruth>, String> {
    let path = dir.truth_dir().join("cells.json");
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}
