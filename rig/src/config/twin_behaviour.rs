//! `[source.twin] behaviour = "<session dir>"`: the running and pupil a recorded session logged
//! (its `Behaviour` records, one per imaging frame), read for the simulator to replay
//! (`sim/recorded_behaviour.rs`). Read here, in the config layer, because the simulator speaks
//! only `vocab` and the log is the backbone's.

use std::path::Path;

use crate::backbone::session_log::SessionDir;
use crate::sim::{RecordedBehaviour, RecordedSample};
use crate::stages::behaviour::BehaviourRecord;
use crate::vocab::records::{self, RecordKind};
use crate::vocab::section::Invalid;

const FIELD: &str = "source.twin.behaviour";

/// The recording's track; the error names the field, the directory and what is wrong with it.
pub fn read_recorded(dir: &Path) -> Result<RecordedBehaviour, Invalid> {
    let bad = |reason: String| {
        Invalid::new(
            FIELD,
            format!("{:?}", dir.display().to_string()),
            format!("{reason}: give a session directory recorded with a behaviour stage"),
        )
    };
    let session = SessionDir::open(dir).map_err(|e| bad(format!("is not a session ({e})")))?;
    let mut reader = session
        .open_log()
        .map_err(|e| bad(format!("has no readable log ({e})")))?;
    let mut samples = Vec::new();
    let mut payload = Vec::new();
    // A log cut short (a killed session) still gives the frames before the cut.
    while let Some(info) = reader
        .next_into(&mut payload)
        .map_err(|e| bad(format!("has a log that cannot be read ({e})")))?
    {
        if RecordKind::from_code(info.kind) != Some(RecordKind::Behaviour) {
            continue;
        }
        let r: BehaviourRecord = records::decode_json("behaviour", &payload).map_err(|e| {
            bad(format!(
                "has a behaviour record {} that does not decode ({e})",
                info.index
            ))
        })?;
        samples.push(RecordedSample {
            t_ns: r.t_ns,
            pupil_radius_px: r.pupil_radius_px,
            running_cm_s: r.treadmill_cm_s,
        });
    }
    RecordedBehaviour::new(samples).map_err(|why| bad(format!("logged behaviour that {why}")))
}

/// The recording must last as long as the session: behaviour held past its end would be no
/// recording at all.
pub fn check_covers(track: &RecordedBehaviour, dir: &Path, duration_s: f64) -> Result<(), Invalid> {
    // The last frame's time is one frame short of the recording's duration: allow a frame's
    // worth at any imaging rate the config allows.
    if track.span_s() + 1.0 < duration_s {
        return Err(Invalid::new(
            FIELD,
            format!("{:?}", dir.display().to_string()),
            format!(
                "records {:.1} s of behaviour, shorter than session.duration_s = {duration_s}: \
                 shorten the session or give a longer recording",
                track.span_s()
            ),
        ));
    }
    Ok(())
}
