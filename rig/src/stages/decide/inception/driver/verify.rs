//! The verify block of a round: built from the design's images (or the fallback's), handed
//! out presentation by presentation after its trial record is logged, and judged at the end.

use super::super::records::{Contrast, Role};
use super::super::schedule::{Photometry, StimulusSet, VerifySchedule};
use super::super::tally::Tally;
use super::super::verdict::verdict;
use super::*;

impl InceptionSelector {
    /// Builds the current round's verify block: MEIs and controls (`with_meis`), or the
    /// fallback's library best and controls. Returns its presentations.
    pub(super) fn schedule(&mut self, with_meis: bool) -> Result<usize, String> {
        let cfg = &self.cfg;
        let budgets = [cfg.low_contrast, cfg.full_contrast]
            .map(|c| Photometry {
                mean_luminance: cfg.mean_luminance,
                rms_contrast: c,
            })
            .to_vec();
        let Some(r) = self.rounds.last_mut() else {
            return Err("no round".into());
        };
        r.scheduled = true;
        let mut images: Vec<DesignedStimulus> = r.screened.clone().unwrap_or_default();
        if with_meis {
            images.extend(r.designed.clone().unwrap_or_default());
        }
        let mut set = StimulusSet::new(r.targets.len(), budgets, cfg.tolerance);
        for s in &images {
            set.add(
                s.id.clone(),
                s.tag,
                s.predicted.clone(),
                ImageStats::of_u8(&s.pixels),
            )
            .map_err(|e| e.to_string())?;
        }
        let seed = self.seed ^ (u64::from(r.round) << 40) ^ 0x5e7f;
        let schedule = VerifySchedule::build(r.round, set, cfg.verify_repeats, seed)
            .map_err(|e| e.to_string())?;
        // The schedule's distinct stimuli, by id, to the images that show them.
        r.images = schedule
            .stimuli()
            .iter()
            .filter_map(|s| images.iter().find(|i| i.id == s.id).cloned())
            .collect();
        let n = schedule.len();
        r.schedule = Some(schedule);
        Ok(n)
    }

    /// A fallback verify block waits for the screen; scheduled once it came (or the worker is
    /// gone without it: an empty block).
    pub(super) fn fallback_schedule(&mut self, trial: u64, now: RigTime) {
        let Some(Phase::Verify { fallback: true, .. }) = self.phase() else {
            return;
        };
        let Some(r) = self.rounds.last() else {
            return;
        };
        if r.scheduled {
            return;
        }
        let n = if r.screened.is_some() {
            match self.schedule(false) {
                Ok(n) => n,
                Err(reason) => {
                    let notice = format!("the fallback block cannot be built: {reason}");
                    self.note(event::NOTICE, json!({ "notice": notice, "trial": trial }));
                    0
                }
            }
        } else if r.failed.is_some() {
            // The worker ended before its screen: nothing to show.
            0
        } else {
            // The screen is still running: filler until it comes.
            return;
        };
        if let Some(r) = self.rounds.last_mut() {
            r.scheduled = true;
        }
        self.event(now, Event::FallbackScheduled { verify_trials: n }, trial);
    }

    pub(super) fn verify_decision(&mut self, trial: u64, index: usize) -> Option<Decision> {
        let r = self.rounds.last()?;
        let schedule = r.schedule.as_ref()?;
        let mut logged = None;
        let shown = schedule
            .present(index, |rec| {
                logged = serde_json::to_value(rec).ok();
                Ok::<(), ()>(())
            })
            .ok()?;
        let s = schedule.stimulus_index(index)?;
        let image = r.images.get(s)?;
        let (a0, a1) = self.view.azimuth_deg;
        let (e0, e1) = self.view.elevation_deg;
        let spec = StimulusSpec::TwinImage(TwinImageSpec {
            width: image.width,
            height: image.height,
            pixels: image.pixels.clone(),
            area: Rect {
                az_deg: [a0.min(a1), a0.max(a1)],
                el_deg: [e0.min(e1), e0.max(e1)],
            },
        });
        let name = shown.stimulus().0.clone();
        let round = r.round;
        let d = self.decision(
            trial,
            VERIFY_STIMULUS_BASE + s as u32,
            name,
            spec,
            DecisionMode::Verify,
        );
        if let Some(mut v) = logged {
            if let Value::Object(m) = &mut v {
                m.insert("trial".into(), json!(trial));
            }
            self.note(event::VERIFY_TRIAL, v);
        }
        self.verify_trials.insert(trial, (round, index));
        Some(d)
    }

    /// Every round's verdict, for the log and the summary.
    pub(super) fn verdicts(&self) -> Value {
        let low = Role::Mei {
            contrast: Contrast::Low,
        };
        let full = Role::Mei {
            contrast: Contrast::Full,
        };
        let rounds: Vec<Value> = self
            .rounds
            .iter()
            .map(|r| {
                let seed = self.seed ^ u64::from(r.round);
                let body = r.schedule.as_ref().map(|s| {
                    let mut tally = Tally::new(s);
                    for (i, resp) in &r.responses {
                        let _ = tally.record(*i, resp);
                    }
                    let v = |role: Role, sel: bool| {
                        let m = if sel { tally.selectivity(role) } else { None };
                        verdict(role, &tally.samples(role), m, &r.lost, ALPHA, seed)
                    };
                    let (vl, vf, vb) = (v(low, true), v(full, false), v(Role::LibraryBest, false));
                    json!({
                        "line": if r.designed.is_some() && !vl.targets.is_empty() { vl.line() } else { vb.line() },
                        "mei_low": vl,
                        "mei_full": vf,
                        "library_best": vb,
                        "presentations": s.len(),
                        "responses_measured": r.responses.len(),
                    })
                });
                json!({
                    "round": r.round,
                    "targets": r.targets,
                    "designed": r.designed.is_some(),
                    "design_failed": r.failed,
                    "design_times_s": r.times,
                    "lost": r.lost,
                    "verdict": body,
                })
            })
            .collect();
        let m = self.machine.as_ref();
        json!({
            "phase": m.map(|m| format!("{:?}", m.phase())),
            "fallbacks": m.map_or(0, PhaseMachine::fallbacks),
            "late_designs": m.map_or(0, PhaseMachine::late_designs),
            "rounds": rounds,
        })
    }
}
