//! Sources: where rig data enters the daemon. Every source ends in the same [`ingest::Ingest`],
//! so a real microscope bridge and the simulated rig look alike downstream.

pub mod ingest;
pub mod rate_limit;
pub mod time_guard;
pub mod zmq_ingest;

pub use ingest::{BehaviourFeed, Ingest, IngestOutputs, Outcome};
