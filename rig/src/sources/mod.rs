//! Sources: where rig data enters the daemon. Every source ends in the same [`ingest::Ingest`],
//! so a real microscope bridge, the simulated rig and a replayed log look alike downstream.

pub mod clocks;
pub mod ingest;
pub mod zmq_ingest;

pub use ingest::{BehaviourFeed, Ingest, IngestOutputs, Outcome, RecorderItem};
pub mod scanimage;
