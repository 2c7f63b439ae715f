//! `[inception]`: the session protocol of issue #18, rounds of record → design → verify. Absent,
//! a session runs as before (record only). The lengths here are rig time; the verify block's
//! length follows from the stimuli it shows, the repeats and `[trials]`' trial length.

use crate::vocab::section::{Invalid, MAX_SESSION_S, MAX_WAIT_S, Section};
use serde::{Deserialize, Serialize};

/// Stimuli one target adds to a verify block at most: its MEI at low and at full contrast, the
/// best pool stimulus by measured response (the key baseline) and the twin's library best.
pub const STIMULI_PER_TARGET: usize = 4;

/// Repeats of each verify stimulus: 10 to 20 (Walker et al. 2019; Ding et al. 2023 used 20).
pub const VERIFY_REPEATS: (u32, u32) = (10, 20);

/// The smallest in-silico library the design screens (issue #18: at least 10,000 candidates).
pub const MIN_LIBRARY: u64 = 10_000;

/// The session protocol (`[inception]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InceptionConfig {
    /// Design → verify rounds (1 ..= 10); each is preceded by a record phase.
    pub rounds: u32,
    /// The first record phase (seconds of rig time): natural clips and the candidate pool, as a
    /// session without this section shows.
    pub record_s: f64,
    /// Record phases before the second and later rounds (seconds; 0: design again at once).
    pub rerecord_s: f64,
    /// The design phase's filler block (seconds): natural clips keep the imaging going while
    /// the twin is refitted and the MEIs synthesised. A design not done by then falls back to
    /// the library's predicted best, counted and logged.
    pub design_s: f64,
    /// Presentations of each verify stimulus (10 ..= 20).
    pub verify_repeats: u32,
    /// The pre-registered target rule: a cell is a candidate target when its held-out
    /// correlation (CC_norm) is at least this (0 ..= 1).
    pub min_heldout_cc: f64,
    /// The rule's cap: at most this many targets, best predicted first (1 ..= 200).
    pub max_targets: u32,
    /// The MEIs' mean luminance, in pixel units [0, 1] (0.5: the display's gray).
    pub mean_luminance: f64,
    /// The low, non-saturating RMS contrast (pixel units, in (0, 0.5]).
    pub low_contrast: f64,
    /// The full RMS contrast (pixel units, in (0, 0.5], above `low_contrast`).
    pub full_contrast: f64,
    /// How far every verify stimulus may lie from the budget's mean luminance and RMS contrast,
    /// as a fraction (0.05: ±5%, Walker et al. 2019).
    pub tolerance: f64,
    /// Random pool stimuli shown as controls, shared by all targets (0 ..= 50).
    pub random_controls: u32,
    /// Candidates the twin screens in silico for each target's predicted best.
    pub library_size: u64,
    /// Gradient-ascent steps of each MEI (1 ..= 2000; Walker et al. 2019 used a few hundred).
    pub mei_steps: u32,
    /// Twin frames of each in-silico presentation (MEIs, the screen, every prediction), a
    /// static image from a reset twin scored over the last half (2 ..= 60; the design phase's
    /// cost is proportional to it).
    pub design_frames: u32,
}

impl Default for InceptionConfig {
    fn default() -> Self {
        InceptionConfig {
            rounds: 1,
            record_s: 600.0,
            rerecord_s: 0.0,
            design_s: 180.0,
            verify_repeats: 10,
            min_heldout_cc: 0.5,
            max_targets: 20,
            mean_luminance: 0.5,
            low_contrast: 0.1,
            full_contrast: 0.25,
            tolerance: 0.05,
            random_controls: 5,
            library_size: MIN_LIBRARY,
            mei_steps: 100,
            design_frames: 10,
        }
    }
}

/// A protocol's phase lengths, for one trial length: what [`InceptionConfig::plan`] says the
/// session needs at most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhasePlan {
    pub rounds: u32,
    pub record_s: f64,
    pub rerecord_s: f64,
    pub design_s: f64,
    /// The longest verify block: every target with all its stimuli, none shared.
    pub verify_max_s: f64,
}

impl PhasePlan {
    /// The whole protocol, every verify block at its longest (seconds).
    pub fn total_s(&self) -> f64 {
        let rounds = f64::from(self.rounds);
        self.record_s
            + (rounds - 1.0) * self.rerecord_s
            + rounds * (self.design_s + self.verify_max_s)
    }
}

impl InceptionConfig {
    /// Distinct stimuli a verify block shows at most.
    pub fn max_verify_stimuli(&self) -> usize {
        self.max_targets as usize * STIMULI_PER_TARGET + self.random_controls as usize
    }

    /// The phase lengths for trials of `trial_s` seconds (stimulus and gray).
    pub fn plan(&self, trial_s: f64) -> PhasePlan {
        PhasePlan {
            rounds: self.rounds,
            record_s: self.record_s,
            rerecord_s: self.rerecord_s,
            design_s: self.design_s,
            verify_max_s: self.max_verify_stimuli() as f64
                * f64::from(self.verify_repeats)
                * trial_s,
        }
    }

    /// What spans sections: the longest verify block must be a bounded wait, and the whole
    /// protocol must fit the session (`session_s`, when it has an end).
    pub fn check_fits(&self, trial_s: f64, session_s: Option<f64>) -> Result<(), Invalid> {
        let plan = self.plan(trial_s);
        if plan.verify_max_s.is_nan() || plan.verify_max_s > MAX_WAIT_S {
            return Err(Invalid::new(
                "inception.max_targets",
                self.max_targets,
                format!(
                    "its verify block ({} stimuli x {} repeats x {trial_s} s trials = {:.0} s) \
                     must be at most {MAX_WAIT_S} s: fewer targets, random_controls or repeats",
                    self.max_verify_stimuli(),
                    self.verify_repeats,
                    plan.verify_max_s
                ),
            ));
        }
        if let Some(session_s) = session_s
            && plan.total_s() > session_s
        {
            return Err(Invalid::new(
                "inception.rounds",
                self.rounds,
                format!(
                    "the protocol needs up to {:.0} s (record {} s, then per round design {} s \
                     and verify up to {:.0} s) but session.duration_s is {session_s} s: \
                     lengthen the session or shorten the protocol",
                    plan.total_s(),
                    self.record_s,
                    self.design_s,
                    plan.verify_max_s
                ),
            ));
        }
        Ok(())
    }
}

impl Section for InceptionConfig {
    const NAME: &'static str = "inception";

    fn validate(&self) -> Result<(), Invalid> {
        let s = "seconds";
        Invalid::in_range(
            "inception.rounds",
            self.rounds.into(),
            1,
            10,
            "1 ..= 10 rounds",
        )?;
        Invalid::positive_at_most("inception.record_s", self.record_s, MAX_SESSION_S, s)?;
        Invalid::non_negative_at_most("inception.rerecord_s", self.rerecord_s, MAX_SESSION_S, s)?;
        Invalid::positive_at_most("inception.design_s", self.design_s, MAX_WAIT_S, s)?;
        let (lo, hi) = VERIFY_REPEATS;
        Invalid::in_range(
            "inception.verify_repeats",
            self.verify_repeats.into(),
            lo.into(),
            hi.into(),
            "10 ..= 20 repeats of each verify stimulus",
        )?;
        if !(0.0..=1.0).contains(&self.min_heldout_cc) {
            return Err(Invalid::new(
                "inception.min_heldout_cc",
                self.min_heldout_cc,
                "must be a held-out correlation in 0 ..= 1",
            ));
        }
        Invalid::in_range(
            "inception.max_targets",
            self.max_targets.into(),
            1,
            200,
            "1 ..= 200 targets",
        )?;
        if !(self.mean_luminance > 0.0 && self.mean_luminance < 1.0) {
            return Err(Invalid::new(
                "inception.mean_luminance",
                self.mean_luminance,
                "must lie strictly between 0 and 1 (pixel units; 0.5 is the display's gray)",
            ));
        }
        for (field, c) in [
            ("inception.low_contrast", self.low_contrast),
            ("inception.full_contrast", self.full_contrast),
        ] {
            if !(c > 0.0 && c <= 0.5) {
                return Err(Invalid::new(
                    field,
                    c,
                    "must be an RMS contrast in (0, 0.5]",
                ));
            }
        }
        if self.low_contrast >= self.full_contrast {
            return Err(Invalid::new(
                "inception.low_contrast",
                self.low_contrast,
                format!(
                    "must be below inception.full_contrast ({})",
                    self.full_contrast
                ),
            ));
        }
        // Pixels in [0, 1] with mean m have a standard deviation of at most sqrt(m (1 - m))
        // (all pixels at 0 or 1): a larger contrast cannot be shown at that luminance.
        let reachable = (self.mean_luminance * (1.0 - self.mean_luminance)).sqrt();
        if self.full_contrast > reachable {
            return Err(Invalid::new(
                "inception.full_contrast",
                self.full_contrast,
                format!(
                    "must be at most sqrt(m (1 - m)) = {reachable:.4} for inception.mean_luminance \
                     m = {}: no image in [0, 1] has more RMS contrast at that mean",
                    self.mean_luminance
                ),
            ));
        }
        if !(self.tolerance > 0.0 && self.tolerance <= 0.2) {
            return Err(Invalid::new(
                "inception.tolerance",
                self.tolerance,
                "must be a fraction in (0, 0.2] (0.05: within ±5%)",
            ));
        }
        Invalid::in_range(
            "inception.random_controls",
            self.random_controls.into(),
            0,
            50,
            "0 ..= 50 random pool stimuli",
        )?;
        Invalid::in_range(
            "inception.mei_steps",
            self.mei_steps.into(),
            1,
            2000,
            "1 ..= 2000 gradient steps",
        )?;
        Invalid::in_range(
            "inception.design_frames",
            self.design_frames.into(),
            2,
            60,
            "2 ..= 60 twin frames",
        )?;
        Invalid::in_range(
            "inception.library_size",
            self.library_size,
            MIN_LIBRARY,
            10_000_000,
            "10000 ..= 10000000 candidates (issue #18: at least 10,000)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DEFAULT_SIM_TOML};

    /// The `[inception]` example of the module's doc comment, as written there.
    fn doc_example() -> String {
        let doc = include_str!("mod.rs");
        let start = doc.find("//! ```toml\n").expect("a toml example") + "//! ```toml\n".len();
        let len = doc[start..].find("//! ```").expect("its end");
        doc[start..start + len]
            .lines()
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn with_session(inception: &str, duration_s: f64) -> Result<Config, String> {
        let text = DEFAULT_SIM_TOML
            .replace("duration_s = 90.0", &format!("duration_s = {duration_s:?}"))
            + "\n"
            + inception;
        Config::from_toml(&text, "t.toml").map_err(|e| e.to_string())
    }

    /// The doc's example parses as written and needs the 6060 s its comment works out; without
    /// the section, nothing changes and manifests do not mention it.
    #[test]
    fn the_documented_example_parses_and_fits_what_it_says() {
        let c = with_session(&doc_example(), 6060.0).unwrap();
        let i = c.inception.as_ref().unwrap();
        assert_eq!(i.rounds, 2);
        assert_eq!(i.plan(3.0).total_s(), 6060.0);
        let e = with_session(&doc_example(), 6059.0).unwrap_err();
        assert!(e.contains("inception.rounds") && e.contains("6060"), "{e}");
        let plain = Config::default_sim();
        assert!(plain.inception.is_none());
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("inception"), "{json}");
        assert_eq!(
            serde_json::from_str::<Config>(&serde_json::to_string(&c).unwrap())
                .unwrap()
                .inception,
            c.inception
        );
    }

    /// Each bad value is refused naming its field and what is allowed.
    #[test]
    fn bad_values_name_their_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("rounds = 0", "inception.rounds", "1 ..= 10"),
            ("record_s = 0.0", "inception.record_s", "positive"),
            (
                "rerecord_s = -1.0",
                "inception.rerecord_s",
                "zero or a positive",
            ),
            ("design_s = nan", "inception.design_s", "positive"),
            (
                "verify_repeats = 9",
                "inception.verify_repeats",
                "10 ..= 20",
            ),
            (
                "verify_repeats = 21",
                "inception.verify_repeats",
                "10 ..= 20",
            ),
            (
                "min_heldout_cc = 1.5",
                "inception.min_heldout_cc",
                "0 ..= 1",
            ),
            ("max_targets = 0", "inception.max_targets", "1 ..= 200"),
            (
                "mean_luminance = 1.0",
                "inception.mean_luminance",
                "between 0 and 1",
            ),
            ("low_contrast = 0.0", "inception.low_contrast", "(0, 0.5]"),
            ("full_contrast = 0.6", "inception.full_contrast", "(0, 0.5]"),
            (
                "low_contrast = 0.3",
                "inception.low_contrast",
                "below inception.full_contrast",
            ),
            ("tolerance = 0.0", "inception.tolerance", "(0, 0.2]"),
            (
                "random_controls = 51",
                "inception.random_controls",
                "0 ..= 50",
            ),
            (
                "library_size = 9999",
                "inception.library_size",
                "at least 10,000",
            ),
            ("mei_steps = 0", "inception.mei_steps", "1 ..= 2000"),
            ("design_frames = 1", "inception.design_frames", "2 ..= 60"),
            ("contrast = 0.1", "contrast", "unknown field"),
        ];
        for (line, field, allowed) in cases {
            let e = with_session(&format!("[inception]\n{line}\n"), 1e5).unwrap_err();
            assert!(e.contains(field) && e.contains(allowed), "{line}: {e}");
        }
    }

    /// Pixels in [0, 1] around a mean m spread at most sqrt(m (1 - m)): at m = 0.9 that is 0.3.
    #[test]
    fn a_contrast_beyond_the_luminance_s_reach_is_refused() {
        let at = |full: f64| {
            with_session(
                &format!(
                    "[inception]\nmean_luminance = 0.9\nlow_contrast = 0.05\nfull_contrast = {full}\n"
                ),
                1e5,
            )
        };
        assert!(at(0.29).is_ok());
        let e = at(0.31).unwrap_err();
        assert!(
            e.contains("inception.full_contrast") && e.contains("0.3000"),
            "{e}"
        );
    }

    /// The longest verify block is a bounded wait: 850 stimuli x 20 repeats of 10 s trials is
    /// 170000 s, past a day.
    #[test]
    fn a_verify_block_longer_than_a_day_is_refused() {
        let c = InceptionConfig {
            max_targets: 200,
            random_controls: 50,
            verify_repeats: 20,
            ..InceptionConfig::default()
        };
        assert_eq!(c.max_verify_stimuli(), 850);
        let e = c.check_fits(10.0, None).unwrap_err();
        assert_eq!(e.field, "inception.max_targets");
        assert!(e.allowed.contains("170000"), "{e}");
        assert!(c.check_fits(3.0, None).is_ok());
    }
}
