//! Offline: everything that reads a recorded session or a file, never the live daemon.
//!
//! - [`replay`]: re-runs a session from its log (exactly, or with another policy or twin).
//! - [`report`]: the self-contained HTML report.
//! - [`export`]: NWB 2.x.
//! - [`twin_data`]: a session as a twin-fitting recording.
//! - [`scanimage`]: ScanImage TIFF reading for `twinloop process`.
//! - [`suite2p`]: `twinloop process`'s results as suite2p's plane folders.
//! - [`design_bench`]: the closed-loop design benchmark harness (`twinloop bench loop`), with
//!   [`heldout`] (the held-out set and its noise-free truth), [`oracle_core`] (the correctly
//!   specified core), [`loop_pools`] (its stimuli through a core) and [`loop_summary`] (the
//!   paired tables).
pub mod design_bench;
pub mod export;
pub mod heldout;
pub mod inception_bench;
pub mod loop_pools;
pub mod loop_summary;
pub mod oracle_core;
pub mod replay;
pub mod report;
pub mod scanimage;
pub mod suite2p;
pub mod twin_data;
pub mod twin_residuals;
