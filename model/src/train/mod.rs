//! Learning the twin from recordings: the data ([`recording`]) and, as it lands, the fit.

pub mod recording;

pub use recording::{BehaviourStandardisation, RecordedTrial, Recording, RecordingMeta};
