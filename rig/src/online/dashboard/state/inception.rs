//! The Inception tile: the inception protocol as it runs (issue #18). Folded from the
//! protocol's published notes ([`DashEvent::Inception`]): the pre-registered targets, each
//! target's MEIs beside its controls (the images the verify block shows, served as PNGs at
//! `/inception.png?round=R&stimulus=I`), the twin's prediction of each logged before it was
//! shown, and the measured responses filling in as the verify block runs; the verdict line
//! at the end.
//!
//! Bounded like the rest of the state: at most [`MAX_ROUNDS`] rounds, [`MAX_TARGETS`] targets
//! and [`MAX_STIMULI`] images per round; a target keeps the measured responses of its own
//! stimuli and the shared random controls only (a few repeats each).

use super::*;
use crate::stages::decide::inception::design::DesignMessage;
use crate::stages::decide::inception::driver::event;
use crate::stages::decide::inception::records::{Contrast, PreRegistration, Role, VerifyTrial};
use crate::stages::decide::inception::verdict::MeanSem;
use snapshot::{cut, num_f64};

/// One Inception image: `((round, stimulus), PNG bytes)`.
pub type InceptionPng = ((u32, usize), Vec<u8>);

/// Rounds kept (later ones are ignored).
pub const MAX_ROUNDS: usize = 16;
/// Targets kept per round.
pub const MAX_TARGETS: usize = 128;
/// Images kept per round.
pub const MAX_STIMULI: usize = 2048;
/// Measured responses kept per (stimulus, target) pair.
pub const MAX_REPEATS: usize = 1000;
/// Notices kept.
const MAX_NOTICES: usize = 10;

#[derive(Debug, Clone)]
struct Stim {
    id: String,
    role: Role,
    target: Option<u32>,
    predicted: Vec<f64>,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// Each target's measured responses to it (only the targets it is shown for).
    measured: BTreeMap<u32, Vec<f64>>,
}

#[derive(Debug, Clone)]
struct RoundTile {
    round: u32,
    targets: Vec<Value>,
    stimuli: Vec<Stim>,
    /// A verify presentation's index → its stimulus's place in `stimuli`.
    presentations: BTreeMap<u32, usize>,
    responses: u64,
    design: String,
    lost: Vec<u32>,
    verdict: Option<Value>,
}

/// The tile's state (`None` in [`DashState`] until the first inception note).
#[derive(Debug, Clone, Default)]
pub(super) struct InceptionTile {
    phase: Option<String>,
    rounds: Vec<RoundTile>,
    notices: VecDeque<String>,
    /// Bumped whenever an image is added (the PNGs change).
    image_seq: u64,
    /// Responses whose presentation was not known (published out of order or dropped).
    unmatched: u64,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Mei {
            contrast: Contrast::Low,
        } => "mei_low",
        Role::Mei {
            contrast: Contrast::Full,
        } => "mei_full",
        Role::BestPool => "best_pool",
        Role::LibraryBest => "library_best",
        Role::Random => "random",
    }
}

/// The order a target's row shows its stimuli in: MEIs first, the key baseline next.
fn role_rank(role: Role) -> u8 {
    match role {
        Role::Mei { contrast } => contrast as u8,
        Role::BestPool => 2,
        Role::LibraryBest => 3,
        Role::Random => 4,
    }
}

impl InceptionTile {
    pub(super) fn apply(&mut self, note: Value) -> Result<(), String> {
        let ev = note
            .get("event")
            .and_then(Value::as_str)
            .ok_or("inception: a note without its event")?
            .to_owned();
        let round = note.get("round").and_then(Value::as_u64).map(|r| r as u32);
        match ev.as_str() {
            event::PHASE => {
                let to = note.get("to").and_then(Value::as_str).unwrap_or("?");
                self.phase = Some(cut(to.to_owned()));
            }
            event::PREREGISTRATION => {
                let p: PreRegistration = serde_json::from_value(note)
                    .map_err(|e| format!("inception: pre-registration: {e}"))?;
                if self.rounds.len() >= MAX_ROUNDS {
                    return Err(format!("inception: more than {MAX_ROUNDS} rounds"));
                }
                self.rounds.push(RoundTile {
                    round: p.round,
                    targets: p
                        .targets
                        .iter()
                        .take(MAX_TARGETS)
                        .map(|t| json!({"cell": t.cell, "heldout_cc": num_f64(t.heldout_cc)}))
                        .collect(),
                    stimuli: Vec::new(),
                    presentations: BTreeMap::new(),
                    responses: 0,
                    design: "designing".into(),
                    lost: Vec::new(),
                    verdict: None,
                });
            }
            event::DESIGN_MESSAGE => {
                let m: DesignMessage =
                    serde_json::from_value(note.get("payload").cloned().unwrap_or_default())
                        .map_err(|e| format!("inception: design message: {e}"))?;
                let r = self.round_mut(round)?;
                let stimuli = match m {
                    DesignMessage::Screened { stimuli, .. } => {
                        r.design = "screened".into();
                        stimuli
                    }
                    DesignMessage::Designed { stimuli, .. } => {
                        r.design = "designed".into();
                        stimuli
                    }
                    DesignMessage::Failed { reason } => {
                        r.design = cut(format!("failed: {reason}"));
                        Vec::new()
                    }
                };
                let mut added = false;
                for s in stimuli {
                    if r.stimuli.len() >= MAX_STIMULI {
                        break;
                    }
                    if u64::from(s.width) * u64::from(s.height) != s.pixels.len() as u64 {
                        continue;
                    }
                    r.stimuli.push(Stim {
                        id: cut(s.id.0),
                        role: s.tag.role,
                        target: s.tag.target,
                        predicted: s.predicted.into_iter().take(MAX_TARGETS).collect(),
                        width: s.width,
                        height: s.height,
                        pixels: s.pixels,
                        measured: BTreeMap::new(),
                    });
                    added = true;
                }
                if added {
                    self.image_seq += 1;
                }
            }
            event::VERIFY_TRIAL => {
                let v: VerifyTrial = serde_json::from_value(note)
                    .map_err(|e| format!("inception: verify trial: {e}"))?;
                let r = self.round_mut(Some(v.round))?;
                if let Some(s) = r.stimuli.iter().position(|s| s.id == v.stimulus.0) {
                    r.presentations.insert(v.index, s);
                }
            }
            event::RESPONSE => {
                let index = note
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX);
                let r = self.round_mut(round)?;
                let Some(&s) = u32::try_from(index)
                    .ok()
                    .and_then(|i| r.presentations.get(&i))
                else {
                    self.unmatched += 1;
                    return Ok(());
                };
                r.responses += 1;
                let measured = note.get("measured").and_then(Value::as_array);
                let targets = r.targets.len() as u32;
                let stim = &mut r.stimuli[s];
                // The stimulus's own target, or every target for a shared control.
                let shown_for: Vec<u32> = match stim.target {
                    Some(t) => vec![t],
                    None => (0..targets).collect(),
                };
                for t in shown_for {
                    let x = measured
                        .and_then(|m| m.get(t as usize))
                        .and_then(Value::as_f64);
                    if let Some(x) = x.filter(|x| x.is_finite()) {
                        let v = stim.measured.entry(t).or_default();
                        if v.len() < MAX_REPEATS {
                            v.push(x);
                        }
                    }
                }
            }
            event::TARGET_LOST => {
                let t = note.get("target").and_then(Value::as_u64).unwrap_or(0) as u32;
                self.round_mut(round)?.lost.push(t);
            }
            event::NOTICE => {
                let n = note.get("notice").and_then(Value::as_str).unwrap_or("?");
                self.notices.push_back(cut(n.to_owned()));
                while self.notices.len() > MAX_NOTICES {
                    self.notices.pop_front();
                }
            }
            event::VERDICT => {
                for v in note
                    .get("rounds")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let n = v.get("round").and_then(Value::as_u64).map(|r| r as u32);
                    if let Ok(r) = self.round_mut(n) {
                        r.verdict = v.get("verdict").cloned().filter(Value::is_object);
                    }
                }
                if let Some(p) = note.get("phase").and_then(Value::as_str) {
                    self.phase = Some(cut(p.to_owned()));
                }
            }
            other => return Err(cut(format!("inception: unknown note {other}"))),
        }
        Ok(())
    }

    fn round_mut(&mut self, round: Option<u32>) -> Result<&mut RoundTile, String> {
        let round = round.ok_or("inception: a note without its round")?;
        self.rounds
            .iter_mut()
            .find(|r| r.round == round)
            .ok_or_else(|| format!("inception: round {round} before its pre-registration"))
    }

    /// Changes whenever an image is added.
    pub(super) fn image_version(&self) -> u64 {
        self.image_seq
    }

    /// Round `round`'s `stimulus`-th image (its verify block's pixels), as a grayscale PNG.
    pub(super) fn png(
        &self,
        round: u32,
        stimulus: usize,
    ) -> Result<Option<Vec<u8>>, DashboardError> {
        let Some(s) = self
            .rounds
            .iter()
            .find(|r| r.round == round)
            .and_then(|r| r.stimuli.get(stimulus))
        else {
            return Ok(None);
        };
        thumbnail::encode_png(s.width, s.height, png::ColorType::Grayscale, &s.pixels).map(Some)
    }

    /// Every image as `((round, stimulus), PNG)`, for the server to publish.
    pub(super) fn pngs(&self) -> Result<Vec<InceptionPng>, DashboardError> {
        let mut out = Vec::new();
        for r in &self.rounds {
            for i in 0..r.stimuli.len() {
                if let Some(png) = self.png(r.round, i)? {
                    out.push(((r.round, i), png));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn json(&self) -> Value {
        let rounds: Vec<Value> = self.rounds.iter().map(RoundTile::json).collect();
        json!({
            "phase": self.phase,
            "images_version": self.image_seq,
            "notices": self.notices,
            "unmatched_responses": self.unmatched,
            "rounds": rounds,
        })
    }
}

impl RoundTile {
    fn json(&self) -> Value {
        let stat = |x: Option<&Vec<f64>>| match x {
            Some(x) if !x.is_empty() => {
                let m = MeanSem::of(x);
                json!({"mean": num_f64(m.mean), "sem": num_f64(m.sem), "n": m.n})
            }
            _ => json!({"mean": null, "sem": null, "n": 0}),
        };
        let targets: Vec<Value> = self
            .targets
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let k = k as u32;
                let mut rows: Vec<(u8, usize)> = self
                    .stimuli
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.target.is_none_or(|x| x == k))
                    .map(|(i, s)| (role_rank(s.role), i))
                    .collect();
                rows.sort_unstable();
                let stimuli: Vec<Value> = rows
                    .into_iter()
                    .map(|(_, i)| {
                        let s = &self.stimuli[i];
                        json!({
                            "stimulus": i,
                            "id": s.id,
                            "role": role_name(s.role),
                            "predicted": s.predicted.get(k as usize).map_or(Value::Null, |&p| num_f64(p)),
                            "measured": stat(s.measured.get(&k)),
                        })
                    })
                    .collect();
                json!({
                    "target": k,
                    "cell": t["cell"],
                    "heldout_cc": t["heldout_cc"],
                    "lost": self.lost.contains(&k),
                    "stimuli": stimuli,
                })
            })
            .collect();
        let v = self.verdict.as_ref();
        json!({
            "round": self.round,
            "design": self.design,
            "presentations_known": self.presentations.len(),
            "responses": self.responses,
            "line": v.and_then(|v| v.get("line")).cloned().unwrap_or(Value::Null),
            "selectivity_p": v
                .and_then(|v| v.pointer("/mei_low/selectivity/test/p_value"))
                .cloned()
                .unwrap_or(Value::Null),
            "targets": targets,
        })
    }
}
