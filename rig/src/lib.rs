//! twinloop-rig: the real-time closed-loop rig daemon and the `twinloop` binary.
//!
//! # Layout (in the order data flows)
//! - [`protocol`]: the ZeroMQ wire format every source and subscriber speaks.
//! - [`clock`]: [`clock::RigTime`], the one time base, and the host's monotonic clock.
//! - [`export`]: a recorded session as an NWB 2.x file (`twinloop export nwb`, feature `nwb`).
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod export;
pub mod frames;
pub mod npy;
pub mod protocol;
pub mod replay;
pub mod report;
pub mod ring;
pub mod scheduler;
pub mod session;
pub mod sim;
pub mod sinks;
pub mod sources;
pub mod stages;
pub mod telemetry;
pub mod twin_data;
