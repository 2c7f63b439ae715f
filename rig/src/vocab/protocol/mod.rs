//! The wire protocol (version 1), as specified in `docs/protocol.md`.
//!
//! Every message is three ZeroMQ frames: `[topic][header][payload]`. The topic is the stream's
//! name (so subscribers filter by prefix); the header is 64 bytes, little-endian, and describes
//! the payload completely (version, stream, sequence, rig time, dtype, shape); the payload is raw
//! little-endian array data, or UTF-8 JSON for the few structured messages.
//!
//! Parsing never allocates and never panics: every way a message can be wrong is a
//! [`ProtocolError`] that names the field.

mod header;
mod stream;

pub use header::{HEADER_LEN, Header, MAGIC, VERSION};
pub use stream::{ClockDomain, Dtype, Stream, SyncCode};

use bytes::Bytes;
use thiserror::Error;

/// Why a message was rejected. Each variant is counted and logged with its stream and sequence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("expected 3 frames [topic][header][payload], got {0}")]
    FrameCount(usize),
    #[error("header is {0} bytes, expected {HEADER_LEN}")]
    HeaderLength(usize),
    #[error("bad magic {0:02x?}, expected \"TWLP\" (is this a twinloop peer?)")]
    BadMagic([u8; 4]),
    #[error("protocol version {0} is not supported; this daemon speaks version {VERSION}")]
    UnsupportedVersion(u16),
    #[error("unknown stream code {0}")]
    UnknownStream(u16),
    #[error("unknown dtype code {0}")]
    UnknownDtype(u8),
    #[error("ndim {0} out of range 0..=4")]
    Ndim(u8),
    #[error("topic {topic:?} does not match header stream {stream}")]
    TopicMismatch { topic: String, stream: Stream },
    #[error("stream {stream} does not carry dtype {dtype}")]
    DtypeNotAllowed { stream: Stream, dtype: Dtype },
    #[error("payload is {got} bytes, but shape {shape:?} of {dtype} needs {expected}")]
    PayloadSize {
        dtype: Dtype,
        shape: [u32; 4],
        expected: usize,
        got: usize,
    },
    #[error("shape {shape:?} of {dtype} describes more bytes than this machine can address")]
    ShapeOverflow { dtype: Dtype, shape: [u32; 4] },
}

impl ProtocolError {
    /// Short, stable label used as a counter key.
    pub fn label(&self) -> &'static str {
        match self {
            ProtocolError::FrameCount(_) => "frame_count",
            ProtocolError::HeaderLength(_) => "header_length",
            ProtocolError::BadMagic(_) => "bad_magic",
            ProtocolError::UnsupportedVersion(_) => "unsupported_version",
            ProtocolError::UnknownStream(_) => "unknown_stream",
            ProtocolError::UnknownDtype(_) => "unknown_dtype",
            ProtocolError::Ndim(_) => "ndim",
            ProtocolError::TopicMismatch { .. } => "topic_mismatch",
            ProtocolError::DtypeNotAllowed { .. } => "dtype_not_allowed",
            ProtocolError::PayloadSize { .. } => "payload_size",
            ProtocolError::ShapeOverflow { .. } => "shape_overflow",
        }
    }
}

/// A validated message: header plus the payload it describes.
#[derive(Debug, Clone)]
pub struct Message {
    pub header: Header,
    pub payload: Bytes,
}

impl Message {
    /// Parse and validate the frames of one multipart message.
    pub fn parse(frames: &[Bytes]) -> Result<Message, ProtocolError> {
        let header = Message::validate(frames)?;
        Ok(Message {
            header,
            payload: frames[2].clone(),
        })
    }

    /// Validate the frames of one message and return its header; the payload is `frames[2]`.
    /// Borrowing instead of cloning the payload matters on the hot path: cloning a `Bytes`
    /// built from a `Vec` allocates.
    pub fn validate(frames: &[Bytes]) -> Result<Header, ProtocolError> {
        let [topic, header, payload] = frames else {
            return Err(ProtocolError::FrameCount(frames.len()));
        };
        let header = Header::decode(header)?;
        if topic.as_ref() != header.stream.topic().as_bytes() {
            return Err(ProtocolError::TopicMismatch {
                topic: String::from_utf8_lossy(topic).into_owned(),
                stream: header.stream,
            });
        }
        header.check_payload(payload.len())?;
        Ok(header)
    }

    /// The three frames of this message, ready for a socket.
    pub fn into_frames(self) -> [Bytes; 3] {
        [
            Bytes::from_static(self.header.stream.topic().as_bytes()),
            Bytes::copy_from_slice(&self.header.encode()),
            self.payload,
        ]
    }

    /// A JSON message on `stream` (status, decisions, stimulus onsets, control).
    pub fn json(stream: Stream, seq: u64, t_ns: i64, value: &serde_json::Value) -> Message {
        // A `Value` always encodes (its keys are strings): there is no failure to hide.
        let payload = Bytes::from(value.to_string().into_bytes());
        let header = Header::new(stream, Dtype::Json, &[payload.len() as u32], seq, t_ns);
        Message { header, payload }
    }

    /// A vector of f32 per cell (activity, the twin's prediction): little-endian, `[len]`, with
    /// the imaging frame's plane, sequence number (`seq` and `aux`) and time.
    pub fn cell_values(stream: Stream, plane: u8, seq: u64, t_ns: i64, values: &[f32]) -> Message {
        let mut payload = Vec::with_capacity(values.len() * 4);
        for v in values {
            payload.extend_from_slice(&v.to_le_bytes());
        }
        let mut header = Header::new(stream, Dtype::F32, &[values.len() as u32], seq, t_ns);
        header.plane = plane;
        header.aux = seq as i64;
        Message {
            header,
            payload: Bytes::from(payload),
        }
    }

    /// Decode little-endian u16 samples into `out` (which must be the payload's length).
    pub fn payload_u16_into(&self, out: &mut [u16]) {
        for (o, c) in out.iter_mut().zip(self.payload.chunks_exact(2)) {
            *o = u16::from_le_bytes([c[0], c[1]]);
        }
    }
}

impl From<Message> for zeromq::ZmqMessage {
    fn from(m: Message) -> zeromq::ZmqMessage {
        let [topic, header, payload] = m.into_frames();
        let mut z = zeromq::ZmqMessage::from(topic);
        z.push_back(header);
        z.push_back(payload);
        z
    }
}

#[cfg(test)]
mod tests;
