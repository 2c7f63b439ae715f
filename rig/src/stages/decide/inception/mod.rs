//! The inception protocol of issue #18 (Walker et al., Nat Neurosci 22:2060, 2019), within one
//! session: record, then rounds of design (the twin refitted, targets chosen by a rule logged
//! first, MEIs synthesised while natural clips keep imaging) and verify (MEIs and controls
//! interleaved, each prediction logged before its stimulus is shown), then the verdict.
//!
//! The pieces here are pure and know nothing of threads; the selector thread and replay drive
//! them alike:
//! - [`config`]: the `[inception]` section and its phase plan;
//! - [`phase`]: [`PhaseMachine`], the phase and what to show next from rig time and events,
//!   with the design timeout's fallback to the library's predicted best, counted;
//! - [`schedule`]: the verify block's stimuli and their seeded, interleaved order;
//! - [`tally`]: the measured responses gathered per stimulus and target;
//! - [`verdict`]: Welch + Benjamini–Hochberg per target, the selectivity matrix and its
//!   permutation test, the one-line verdict;
//! - [`records`]: what the session log carries.
//!
//! - [`design`]: the design worker (twin refit, controls, library screen, MEIs);
//! - [`windows`]: trial responses as the protocol measures them;
//! - [`driver`]: [`InceptionSelector`], the protocol as the daemon's selector around the
//!   adaptive designer, which the live selector thread and replay drive alike.
//!
//! # Example
//! Two rounds after ten minutes of recording, three-minute design blocks, 10 repeats:
//!
//! ```toml
//! [inception]
//! rounds = 2
//! record_s = 600.0
//! rerecord_s = 0.0
//! design_s = 180.0
//! verify_repeats = 10
//! min_heldout_cc = 0.5
//! max_targets = 20
//! mean_luminance = 0.5
//! low_contrast = 0.1
//! full_contrast = 0.25
//! tolerance = 0.05
//! random_controls = 5
//! library_size = 10000
//! ```
//!
//! With 2 s stimuli and 1 s gray, a verify block of 20 targets is at most
//! (20 × 4 + 5) stimuli × 10 repeats × 3 s = 2550 s, so this protocol needs a session of
//! 600 + 2 × (180 + 2550) = 6060 s; a shorter one is refused, naming `inception.rounds`.

pub mod config;
pub mod design;
pub mod driver;
pub mod phase;
pub mod records;
pub mod schedule;
pub mod tally;
pub mod verdict;
pub mod windows;

pub use config::{InceptionConfig, PhasePlan};
pub use driver::InceptionSelector;
pub use phase::{Event, Phase, PhaseMachine, Show, Step, Transition};
pub use schedule::{Photometry, StimulusSet, VerifySchedule};
pub use tally::Tally;
pub use verdict::{Verdict, verdict};
