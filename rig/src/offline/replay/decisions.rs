//! The decision half of a replay: the live selector's inputs fed again in order, each decision
//! asked at the same point, with a counterfactual selector alongside when one is given.

use super::counterfactual::{Counterfactual, Overrides};
use super::log::Logged;
use super::{ReplayError, ReplayReport};
use crate::backbone::frames::ActivityBuf;
use crate::config::Config;
use crate::stages::decide::design::DecisionMode;
use crate::stages::decide::{FrameBehaviour, Selector, build_selector};

/// Replays every logged decision (onsets first, then activity, as the live selector thread
/// took them), counting those reproduced; with `overrides`, the counterfactual selector sees the
/// same inputs and is asked at the same points.
pub(super) fn replay_decisions(
    cfg: &Config,
    logged: &Logged,
    overrides: Option<&Overrides>,
    report: &mut ReplayReport,
) -> Result<(), ReplayError> {
    let mut selector =
        build_selector(&cfg.decide_setup()).map_err(|e| ReplayError::Selector(e.to_string()))?;
    let mut alt = match overrides {
        Some(o) => Some(Counterfactual::new(cfg, o)?),
        None => None,
    };
    // Live took twin refits at these decisions; the replayed selector takes its own (the same
    // fit on the same snapshot) there too.
    selector.script_twin_refits(
        logged
            .decisions
            .iter()
            .filter(|d| d.twin_refit.is_some())
            .map(|d| d.trial)
            .collect(),
    );
    // Results live computed off the selector thread (the inception design) are taken from the
    // log at the same decisions.
    selector.script_records(&logged.selector_notes);
    let mut notes = Vec::new();
    for (&plane, scan) in &logged.scan {
        // Live, each plane's offsets came before its cells' first activity.
        selector.set_scan_offsets(plane, scan.offsets_s.clone());
        if let Some(alt) = alt.as_mut() {
            alt.set_scan_offsets(plane, &scan.offsets_s);
        }
    }
    let mut feed = Feed::new(logged, u64::from(cfg.trials.design.warmup_trials));
    for live in &logged.decisions {
        while selector.onsets_seen() < live.onsets_seen {
            if !feed.onset(selector.as_mut(), alt.as_mut()) {
                break;
            }
        }
        while selector.frames_seen() < live.frames_seen {
            if !feed.frame(selector.as_mut(), alt.as_mut()) {
                break;
            }
        }
        // Live, each decision's upkeep ran right after it was queued.
        let again = selector.decide(live.trial, live.mode == DecisionMode::Late);
        notes.extend(selector.take_records());
        selector.prepare(live.trial + 1);
        notes.extend(selector.take_records());
        if let Some(alt) = alt.as_mut() {
            alt.decide(live, report);
        }
        if &again == live {
            report.decisions_reproduced += 1;
        } else if report.first_decision_mismatch.is_none() {
            report.first_decision_mismatch = Some(format!(
                "trial {}: live {:?}, replay {:?}",
                live.trial, live, again
            ));
        }
    }
    // Past the last decision every frame is still observed (the last verify trials'
    // responses), then the selector finishes as live did.
    while feed.onset(selector.as_mut(), alt.as_mut()) {}
    while feed.frame(selector.as_mut(), alt.as_mut()) {}
    if let Some(alt) = alt {
        alt.finish(report);
    }
    let _ = selector.finish();
    notes.extend(selector.take_records());
    let cut = !matches!(logged.tail, crate::backbone::session_log::TailState::Clean);
    compare_notes(&logged.selector_notes, &notes, cut, report);
    Ok(())
}

/// The selector's notes made again against the logged ones, in order, as the log holds them
/// (each made note through the log's JSON, so floats compare as written). A log cut short
/// (`cut`: kill -9) is compared up to the notes its last decision made: live may have logged a
/// decision's notes and died before the decision itself. Its verdict, if it has one, must match.
fn compare_notes(
    logged: &[serde_json::Value],
    again: &[serde_json::Value],
    cut: bool,
    report: &mut ReplayReport,
) {
    let verdict = |v: &serde_json::Value| {
        v.get("event").and_then(|e| e.as_str())
            == Some(crate::stages::decide::inception::driver::event::VERDICT)
    };
    let as_logged = |v: &serde_json::Value| {
        serde_json::to_string(v)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    };
    let (live_verdict, live): (Vec<_>, Vec<_>) = logged.iter().partition(|v| verdict(v));
    let (made_verdict, made): (Vec<_>, Vec<_>) = again.iter().partition(|v| verdict(v));
    let live = if cut && live.len() > made.len() {
        report.selector_notes_past_cut = (live.len() - made.len()) as u64;
        &live[..made.len()]
    } else {
        &live[..]
    };
    report.selector_notes_logged = live.len() as u64;
    for (k, l) in live.iter().enumerate() {
        let m = made.get(k).and_then(|m| as_logged(m));
        if m.as_ref() == Some(*l) {
            report.selector_notes_reproduced += 1;
        } else if report.first_selector_note_mismatch.is_none() {
            report.first_selector_note_mismatch = Some(format!(
                "note {k}: live {l}, replay {}",
                m.map_or("(none)".into(), |m| m.to_string())
            ));
        }
    }
    if let Some(l) = live_verdict.first() {
        let m = made_verdict.first().and_then(|m| as_logged(m));
        report.verdict_reproduced = Some(m.as_ref() == Some(*l));
    }
    report.verdict = made_verdict.first().map(|v| (*v).clone());
}

/// The logged onsets and activity, handed out one at a time in the order the live selector
/// took them.
struct Feed<'a> {
    logged: &'a Logged,
    onsets: std::slice::Iter<'a, crate::stages::decide::Onset>,
    activity: std::slice::Iter<'a, crate::vocab::records::ActivityRecord>,
    warmup: u64,
    past_warmup: bool,
    scratch: ActivityBuf,
}

impl<'a> Feed<'a> {
    fn new(logged: &'a Logged, warmup: u64) -> Feed<'a> {
        let cells = logged.activity.iter().map(|a| a.values.len()).max();
        Feed {
            logged,
            onsets: logged.onsets.iter(),
            activity: logged.activity.iter(),
            warmup,
            past_warmup: false,
            scratch: ActivityBuf::with_capacity(cells.unwrap_or(0)),
        }
    }

    /// The next onset to the selectors; `false` at the end of the log.
    fn onset(&mut self, selector: &mut dyn Selector, alt: Option<&mut Counterfactual>) -> bool {
        let Some(o) = self.onsets.next() else {
            return false;
        };
        selector.onset(o.trial, o.stimulus, o.t);
        if let Some(alt) = alt {
            alt.onset(o);
        }
        self.past_warmup |= o.trial >= self.warmup;
        true
    }

    /// The next activity record (every plane's, in the order the live selector observed them)
    /// to the selectors; `false` at the end of the log.
    fn frame(&mut self, selector: &mut dyn Selector, alt: Option<&mut Counterfactual>) -> bool {
        let Some(a) = self.activity.next() else {
            return false;
        };
        let s = &mut self.scratch;
        s.frame.seq = a.frame_seq;
        s.frame.plane = a.plane;
        s.frame.t = a.t;
        s.len = a.values.len().min(s.values.len());
        s.values[..s.len].copy_from_slice(&a.values[..s.len]);
        // The live selector waited for each frame's behaviour (another plane's frame: the record
        // of its volume, the same seq), or noted that it went on without it.
        let behaviour = match self
            .logged
            .behaviour_missing
            .contains(&(a.plane, a.frame_seq))
        {
            true => FrameBehaviour::MISSING,
            false => self
                .logged
                .behaviour
                .get(&a.frame_seq)
                .copied()
                .unwrap_or(FrameBehaviour::MISSING),
        };
        selector.observe(s, behaviour);
        if let Some(alt) = alt {
            alt.observe(s, behaviour, selector.prediction(), self.past_warmup);
        }
        true
    }
}
