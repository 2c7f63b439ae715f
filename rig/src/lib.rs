//! twinloop-rig: the real-time closed-loop rig daemon and the `twinloop` binary.
//!
//! # Layout: layers, one way
//! - [`vocab`]: wire protocol, log record kinds, payload types, rig time. Imports nothing else.
//! - [`backbone`]: frame pool and rings, frames, telemetry, the session log.
//! - [`sim`]: the simulated mouse and its bridge, speaking vocab only.
//! - [`stages`]: the per-frame computations (imaging, behaviour, clocks, decisions).
//! - [`config`]: the session's config, one section per component.
//! - [`online`]: the live daemon's threads, sockets and session wiring.
//! - [`offline`]: replay, report, export and everything else that reads a recorded session.
//! - [`sweep`]: many sessions or benchmark arms in shards, here or on Slurm: runs `online`
//!   sessions and `offline` benchmark arms, so it sits above both.
//! - [`cli`]: one file per command.
//!
//! # The dependency rule
//! A module imports only from layers below it:
//!
//! ```text
//! vocab ← backbone ← stages ← config ← online  ← sweep
//! vocab ← sim ──────────────┘        ← offline ┘
//! ```
//!
//! `online` and `offline` never import each other; `cli` may import anything. Test modules are
//! exempt (a test may set up a whole session). `tests/layers.rs` enforces the rule, and keeps
//! the other crates from importing `rig`.
pub mod backbone;
pub mod cli;
pub mod config;
pub mod offline;
pub mod online;
pub mod sim;
pub mod stages;
pub mod sweep;
pub mod vocab;
