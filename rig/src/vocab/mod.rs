//! Vocabulary: the words every layer speaks. Wire protocol, log record kinds and layouts,
//! payload types and rig time. Imports nothing else in the crate.
//!
//! - [`clock`]: [`clock::RigTime`], the one time base, and the host's monotonic clock.
//! - [`protocol`]: the ZeroMQ wire format every source and subscriber speaks.
//! - [`records`]: the session log's record kinds and their payloads.
//! - [`registration`]: how a frame was motion-corrected.
//! - [`scan`]: where each cell sits in its frame's scan.
//! - [`section`]: how every config section checks itself.
//! - [`npy`]: numpy's `.npy` format for the files a session writes.
pub mod clock;
pub mod npy;
pub mod protocol;
pub mod records;
pub mod registration;
pub mod scan;
pub mod section;
