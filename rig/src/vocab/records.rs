//! The record kinds of the session log and their payload layouts (all little-endian).
//!
//! | kind | name       | payload |
//! |------|------------|---------|
//! | 1    | `Input`    | `recv_ns i64`, `has_payload u8`, 3 pad, `clock_gen u32` (0: not mapped), wire header (64 B, `t_ns` as received), payload if `has_payload` |
//! | 2    | `Activity` | `frame_seq u64`, `t_ns i64`, `plane u8`, 3 pad, `n u32`, `n` x f32 |
//! | 3    | `Flip`     | `display_frame u64`, `t_ns i64`, `trial i64` (-1 gray), `onset u8`, 7 pad |
//! | 4    | `Fluorescence` | as `Activity`'s prefix, then `n` x F, `n` x Fneu, `n` x dF/F (f32) |
//! | 16   | `Stimulus` | JSON: a trial's onset (trial index, stimulus id, spec, rig time) |
//! | 17   | `Decision` | JSON: a selector decision (see `scheduler::Decision`) |
//! | 18   | `Anomaly`  | JSON: a counted anomaly (`telemetry::Anomaly`) |
//! | 19   | `Note`     | JSON: session events (start, end, summary) |
//! | 20   | `Pupil`    | JSON: one eye frame's pupil (`stages::behaviour::PupilRecord`) |
//! | 21   | `Behaviour`| JSON: one imaging frame's behaviour (`stages::behaviour::BehaviourRecord`) |
//! | 22   | `Clock`    | JSON: a device clock's new mapping (`sources::clocks::ClockUpdate`) |
//! | 23   | `Cells`    | JSON: the cells' scan offsets (`scheduler::ScanOffsets`) |
//! | 24   | `Registration` | `frame_seq u64`, `t_ns i64`, `plane u8`, `flags u8`, `blocks u16`, `blocks_smoothed u16`, 2 pad, `dy_px`, `dx_px`, `quality`, `peak_snr`, `block_max_px`, `block_mean_px`, `saturated_fraction` f32 (`RegistrationRecord`) |
//! | 25   | `Manifest` | JSON: the session's manifest (`manifest.json`'s content), the first record of a version 2 log |
//! | 26   | `End`      | JSON: the session's end, the recorder's last record ([`EndRecord`]) |
//!
//! Every input message is logged as it arrived (`Input`), so a replay re-parses the very bytes
//! the live daemon saw. Frames carry their pixels only when `session.record_frames` is set.
//! With the imaging pipeline, `Activity` holds each cell's deconvolved activity and
//! `Fluorescence` (logged just before it, for the same frame) the traces it came from.

use crate::vocab::clock::RigTime;
use crate::vocab::protocol::{HEADER_LEN, Header, ProtocolError};
use crate::vocab::registration::FrameRegistration;

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
    Clock = 22,
    Cells = 23,
    /// Binary (the recorder writes it without allocating): see [`RegistrationRecord`].
    Registration = 24,
    /// JSON: the manifest, so a session whose `manifest.json` is lost still reads.
    Manifest = 25,
    /// JSON: the recorder's last record on a clean end ([`EndRecord`]); a log without it was cut short.
    End = 26,
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
            Clock,
            Cells,
            Registration,
            Manifest,
            End,
        ]
        .into_iter()
        .find(|k| *k as u16 == code)
    }
}

/// The payload of the [`RecordKind::End`] record: what the recorder wrote before it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndRecord {
    /// Records in the log before this one.
    pub records: u64,
    /// Two-photon and eye frames logged (`Input` records from the frame rings).
    pub frames: u64,
    /// How the session ended: ingest's end (`source_ended`, `duration`, `idle`, `stopped`...),
    /// or "inputs finished" when nothing said.
    pub ended: String,
}

pub const INPUT_PREFIX_LEN: usize = 16 + HEADER_LEN;

/// The fixed part of an `Input` record (the payload follows it).
pub fn encode_input_prefix(
    recv_ns: i64,
    has_payload: bool,
    clock_gen: u32,
    header: &Header,
) -> [u8; INPUT_PREFIX_LEN] {
    let mut b = [0u8; INPUT_PREFIX_LEN];
    b[0..8].copy_from_slice(&recv_ns.to_le_bytes());
    b[8] = has_payload as u8;
    b[12..16].copy_from_slice(&clock_gen.to_le_bytes());
    b[16..].copy_from_slice(&header.encode());
    b
}

/// A decoded `Input` record.
pub struct InputRecord<'a> {
    pub recv_ns: i64,
    /// The clock-fit generation its time was mapped with (0: not mapped).
    pub clock_gen: u32,
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
        clock_gen: u32::from_le_bytes(b[12..16].try_into().unwrap_or_default()),
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

/// How one imaging frame was registered (the `Registration` record, and the JSON of the
/// `registration` bus stream).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegistrationRecord {
    pub frame_seq: u64,
    pub t_ns: i64,
    pub plane: u8,
    #[serde(flatten)]
    pub registration: FrameRegistration,
}

pub const REGISTRATION_LEN: usize = 52;

impl RegistrationRecord {
    pub fn encode(&self) -> [u8; REGISTRATION_LEN] {
        let r = &self.registration;
        let mut b = [0u8; REGISTRATION_LEN];
        b[0..8].copy_from_slice(&self.frame_seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.t_ns.to_le_bytes());
        b[16] = self.plane;
        b[17] = r.flags;
        b[18..20].copy_from_slice(&r.blocks.to_le_bytes());
        b[20..22].copy_from_slice(&r.blocks_smoothed.to_le_bytes());
        let floats = [
            r.dy_px,
            r.dx_px,
            r.quality,
            r.peak_snr,
            r.block_max_px,
            r.block_mean_px,
            r.saturated_fraction,
        ];
        for (i, v) in floats.iter().enumerate() {
            b[24 + 4 * i..28 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<RegistrationRecord, RecordError> {
        if b.len() != REGISTRATION_LEN {
            return Err(RecordError::Short {
                kind: "registration",
                len: b.len(),
            });
        }
        let f = |i: usize| {
            let o = 24 + 4 * i;
            f32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
        };
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[0..8]);
        let frame_seq = u64::from_le_bytes(w);
        w.copy_from_slice(&b[8..16]);
        let t_ns = i64::from_le_bytes(w);
        Ok(RegistrationRecord {
            frame_seq,
            t_ns,
            plane: b[16],
            registration: FrameRegistration {
                flags: b[17],
                blocks: u16::from_le_bytes([b[18], b[19]]),
                blocks_smoothed: u16::from_le_bytes([b[20], b[21]]),
                dy_px: f(0),
                dx_px: f(1),
                quality: f(2),
                peak_snr: f(3),
                block_max_px: f(4),
                block_mean_px: f(5),
                saturated_fraction: f(6),
            },
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
    use crate::vocab::protocol::{Dtype, Stream};

    #[test]
    fn input_record_round_trips_with_and_without_payload() {
        let h = Header::new(Stream::TwoPhoton, Dtype::U16, &[2, 3], 9, 77);
        let payload = [1u8; 12];
        let mut rec = encode_input_prefix(5, true, 0, &h).to_vec();
        rec.extend_from_slice(&payload);
        let back = decode_input(&rec).unwrap();
        assert_eq!((back.recv_ns, back.header), (5, h));
        assert_eq!(back.payload, Some(&payload[..]));
        let meta_only = encode_input_prefix(5, false, 0, &h);
        assert!(decode_input(&meta_only).unwrap().payload.is_none());
        // A recorded payload that contradicts its header is an error, not a silent mismatch.
        let mut bad = encode_input_prefix(5, true, 0, &h).to_vec();
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
        let r = RegistrationRecord {
            frame_seq: 9,
            t_ns: -3,
            plane: 2,
            registration: FrameRegistration {
                dy_px: 1.25,
                dx_px: -0.5,
                quality: 0.9,
                peak_snr: 12.0,
                blocks: 36,
                blocks_smoothed: 2,
                block_max_px: 0.75,
                block_mean_px: 0.25,
                saturated_fraction: 0.001,
                flags: 4,
            },
        };
        assert_eq!(RegistrationRecord::decode(&r.encode()).unwrap(), r);
        assert!(RegistrationRecord::decode(&r.encode()[1..]).is_err());
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
