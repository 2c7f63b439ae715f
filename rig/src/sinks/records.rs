//! The record kinds of the session log and their payload layouts (all little-endian).
//!
//! | kind | name       | payload |
//! |------|------------|---------|
//! | 1    | `Input`    | `recv_ns i64`, `has_payload u8`, 7 pad, wire header (64 B), payload if `has_payload` |
//! | 2    | `Activity` | `frame_seq u64`, `t_ns i64`, `plane u8`, 3 pad, `n u32`, `n` x f32 |
//! | 3    | `Flip`     | `display_frame u64`, `t_ns i64`, `trial i64` (-1 gray), `onset u8`, 7 pad |
//! | 4    | `Fluorescence` | as `Activity`'s prefix, then `n` x F, `n` x Fneu, `n` x dF/F (f32) |
//! | 16   | `Stimulus` | JSON: a trial's onset (trial index, stimulus id, spec, rig time) |
//! | 17   | `Decision` | JSON: a selector decision (see `scheduler::Decision`) |
//! | 18   | `Anomaly`  | JSON: a counted anomaly (`telemetry::Anomaly`) |
//! | 19   | `Note`     | JSON: session events (start, end, summary) |
//! | 20   | `Pupil`    | JSON: one eye frame's pupil (`stages::behaviour::PupilRecord`) |
//! | 21   | `Behaviour`| JSON: one imaging frame's behaviour (`stages::behaviour::BehaviourRecord`) |
//!
//! Every input message is logged as it arrived (`Input`), so a replay re-parses the very bytes
//! the live daemon saw. Frames carry their pixels only when `session.record_frames` is set.
//! With the imaging pipeline, `Activity` holds each cell's deconvolved activity and
//! `Fluorescence` (logged just before it, for the same frame) the traces it came from.

use crate::clock::RigTime;
use crate::protocol::{HEADER_LEN, Header, ProtocolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RecordKind {
    Input = 1,
    Activity = 2,
    Flip = 3,
    Fluorescence = 4,
    Stimulus = 16,
    Decision = 17,
    Anomaly = 18,
    Note = 19,
    Pupil = 20,
    Behaviour = 21,
}

impl RecordKind {
    pub fn from_code(code: u16) -> Option<RecordKind> {
        use RecordKind::*;
        [
            Input,
            Activity,
            Flip,
            Fluorescence,
            Stimulus,
            Decision,
            Anomaly,
            Note,
            Pupil,
            Behaviour,
        ]
        .into_iter()
        .find(|k| *k as u16 == code)
    }
}

pub const INPUT_PREFIX_LEN: usize = 16 + HEADER_LEN;

/// The fixed part of an `Input` record (the payload follows it).
pub fn encode_input_prefix(
    recv_ns: i64,
    has_payload: bool,
    header: &Header,
) -> [u8; INPUT_PREFIX_LEN] {
    let mut b = [0u8; INPUT_PREFIX_LEN];
    b[0..8].copy_from_slice(&recv_ns.to_le_bytes());
    b[8] = has_payload as u8;
    b[16..].copy_from_slice(&header.encode());
    b
}

/// A decoded `Input` record.
pub struct InputRecord<'a> {
    pub recv_ns: i64,
    pub header: Header,
    /// `None` when the payload was not recorded.
    pub payload: Option<&'a [u8]>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{kind} record is {len} bytes, shorter than its fixed part")]
    Short { kind: &'static str, len: usize },
    #[error("input record has a bad header: {0}")]
    Header(#[from] ProtocolError),
    #[error("{kind} record is not valid JSON: {source}")]
    Json {
        kind: &'static str,
        source: serde_json::Error,
    },
}

pub fn decode_input(b: &[u8]) -> Result<InputRecord<'_>, RecordError> {
    if b.len() < INPUT_PREFIX_LEN {
        return Err(RecordError::Short {
            kind: "input",
            len: b.len(),
        });
    }
    let recv_ns = i64::from_le_bytes(b[0..8].try_into().unwrap_or_default());
    let header = Header::decode(&b[16..INPUT_PREFIX_LEN])?;
    let payload = (b[8] != 0).then(|| &b[INPUT_PREFIX_LEN..]);
    if let Some(p) = payload {
        header.check_payload(p.len())?;
    }
    Ok(InputRecord {
        recv_ns,
        header,
        payload,
    })
}

pub const ACTIVITY_PREFIX_LEN: usize = 32;

pub fn encode_activity_prefix(
    frame_seq: u64,
    t: RigTime,
    plane: u8,
    n: u32,
) -> [u8; ACTIVITY_PREFIX_LEN] {
    let mut b = [0u8; ACTIVITY_PREFIX_LEN];
    b[0..8].copy_from_slice(&frame_seq.to_le_bytes());
    b[8..16].copy_from_slice(&t.as_nanos().to_le_bytes());
    b[16] = plane;
    b[20..24].copy_from_slice(&n.to_le_bytes());
    b
}

/// Write `values` as little-endian bytes into `out` (reused; no allocation once it is large enough).
pub fn f32_le_bytes(values: &[f32], out: &mut Vec<u8>) {
    out.clear();
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRecord {
    pub frame_seq: u64,
    pub t: RigTime,
    pub plane: u8,
    pub values: Vec<f32>,
}

pub fn decode_activity(b: &[u8]) -> Result<ActivityRecord, RecordError> {
    let short = RecordError::Short {
        kind: "activity",
        len: b.len(),
    };
    if b.len() < ACTIVITY_PREFIX_LEN {
        return Err(short);
    }
    let n = u32::from_le_bytes(b[20..24].try_into().unwrap_or_default()) as usize;
    if b.len() != ACTIVITY_PREFIX_LEN + 4 * n {
        return Err(short);
    }
    Ok(ActivityRecord {
        frame_seq: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
        t: RigTime::from_nanos(i64::from_le_bytes(b[8..16].try_into().unwrap_or_default())),
        plane: b[16],
        values: b[ACTIVITY_PREFIX_LEN..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    })
}

/// A decoded `Fluorescence` record: one frame's traces, one value per cell in each.
#[derive(Debug, Clone, PartialEq)]
pub struct FluorescenceRecord {
    pub frame_seq: u64,
    pub t: RigTime,
    pub plane: u8,
    /// Cell fluorescence (mean over the mask, ADU).
    pub f: Vec<f32>,
    /// Neuropil fluorescence (ADU).
    pub fneu: Vec<f32>,
    /// dF/F of F − c·Fneu against its running baseline (dimensionless).
    pub dff: Vec<f32>,
}

/// Same prefix as `Activity`, with `n` the number of cells (the payload holds `3 n` values).
pub fn decode_fluorescence(b: &[u8]) -> Result<FluorescenceRecord, RecordError> {
    let short = RecordError::Short {
        kind: "fluorescence",
        len: b.len(),
    };
    if b.len() < ACTIVITY_PREFIX_LEN {
        return Err(short);
    }
    let n = u32::from_le_bytes(b[20..24].try_into().unwrap_or_default()) as usize;
    if b.len() != ACTIVITY_PREFIX_LEN + 12 * n {
        return Err(short);
    }
    let values = |k: usize| -> Vec<f32> {
        b[ACTIVITY_PREFIX_LEN + 4 * n * k..ACTIVITY_PREFIX_LEN + 4 * n * (k + 1)]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    Ok(FluorescenceRecord {
        frame_seq: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
        t: RigTime::from_nanos(i64::from_le_bytes(b[8..16].try_into().unwrap_or_default())),
        plane: b[16],
        f: values(0),
        fneu: values(1),
        dff: values(2),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlipRecord {
    pub display_frame: u64,
    pub t: RigTime,
    /// Trial index, or -1 for the inter-trial gray.
    pub trial: i64,
    pub onset: bool,
}

pub const FLIP_LEN: usize = 32;

impl FlipRecord {
    pub fn encode(&self) -> [u8; FLIP_LEN] {
        let mut b = [0u8; FLIP_LEN];
        b[0..8].copy_from_slice(&self.display_frame.to_le_bytes());
        b[8..16].copy_from_slice(&self.t.as_nanos().to_le_bytes());
        b[16..24].copy_from_slice(&self.trial.to_le_bytes());
        b[24] = self.onset as u8;
        b
    }

    pub fn decode(b: &[u8]) -> Result<FlipRecord, RecordError> {
        if b.len() != FLIP_LEN {
            return Err(RecordError::Short {
                kind: "flip",
                len: b.len(),
            });
        }
        let w = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            a
        };
        Ok(FlipRecord {
            display_frame: u64::from_le_bytes(w(0)),
            t: RigTime::from_nanos(i64::from_le_bytes(w(8))),
            trial: i64::from_le_bytes(w(16)),
            onset: b[24] != 0,
        })
    }
}

pub fn decode_json<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    b: &[u8],
) -> Result<T, RecordError> {
    serde_json::from_slice(b).map_err(|source| RecordError::Json { kind, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Dtype, Stream};

    #[test]
    fn input_record_round_trips_with_and_without_payload() {
        let h = Header::new(Stream::TwoPhoton, Dtype::U16, &[2, 3], 9, 77);
        let payload = [1u8; 12];
        let mut rec = encode_input_prefix(5, true, &h).to_vec();
        rec.extend_from_slice(&payload);
        let back = decode_input(&rec).unwrap();
        assert_eq!((back.recv_ns, back.header), (5, h));
        assert_eq!(back.payload, Some(&payload[..]));
        let meta_only = encode_input_prefix(5, false, &h);
        assert!(decode_input(&meta_only).unwrap().payload.is_none());
        // A recorded payload that contradicts its header is an error, not a silent mismatch.
        let mut bad = encode_input_prefix(5, true, &h).to_vec();
        bad.extend_from_slice(&payload[..4]);
        assert!(decode_input(&bad).is_err());
    }

    #[test]
    fn activity_and_flip_round_trip() {
        let values = [1.5f32, -2.0, 3.25];
        let mut rec = encode_activity_prefix(4, RigTime::from_nanos(10), 1, 3).to_vec();
        let mut bytes = Vec::new();
        f32_le_bytes(&values, &mut bytes);
        rec.extend_from_slice(&bytes);
        let a = decode_activity(&rec).unwrap();
        assert_eq!(
            (a.frame_seq, a.plane, a.values.as_slice()),
            (4, 1, &values[..])
        );
        assert!(decode_activity(&rec[..rec.len() - 1]).is_err());
        let f = FlipRecord {
            display_frame: 3,
            t: RigTime::from_nanos(-1),
            trial: -1,
            onset: true,
        };
        assert_eq!(FlipRecord::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn fluorescence_round_trips() {
        let (f, fneu, dff) = ([10.0f32, 20.0], [3.0f32, 4.0], [0.5f32, -0.25]);
        let mut rec = encode_activity_prefix(7, RigTime::from_nanos(33), 0, 2).to_vec();
        let mut bytes = Vec::new();
        for part in [&f[..], &fneu, &dff] {
            f32_le_bytes(part, &mut bytes);
            rec.extend_from_slice(&bytes);
        }
        let r = decode_fluorescence(&rec).unwrap();
        assert_eq!((r.frame_seq, r.t.as_nanos(), r.plane), (7, 33, 0));
        assert_eq!(
            (&r.f[..], &r.fneu[..], &r.dff[..]),
            (&f[..], &fneu[..], &dff[..])
        );
        assert!(decode_fluorescence(&rec[..rec.len() - 4]).is_err());
    }
}
