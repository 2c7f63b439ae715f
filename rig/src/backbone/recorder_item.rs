//! What every thread hands the recorder, the session log's only writer, besides the frame and
//! activity rings. It sits in the backbone, not beside the recorder, because the stages below
//! the online layer produce it.

use crate::backbone::telemetry::Anomaly;
use crate::vocab::protocol::Message;
use crate::vocab::records::{FlipRecord, RecordKind};

/// Low-rate items for the recorder (everything but two-photon and eye frames and activity).
#[derive(Debug)]
pub enum RecorderItem {
    /// A non-frame input message, as received.
    Input {
        recv_ns: i64,
        /// The clock-fit generation its time was mapped with (0: not mapped).
        clock_gen: u32,
        message: Message,
    },
    Anomaly(Anomaly),
    Flip(FlipRecord),
    Json {
        kind: RecordKind,
        value: serde_json::Value,
    },
}
