//! Stream and dtype codes of the wire protocol.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a message carries. Inputs (1–15) come from a rig; outputs (16–31) are published by the
/// daemon. Codes are part of the wire format: never renumber.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u16)]
pub enum Stream {
    /// Two-photon frame, u16 or i16 `[height, width]`; `plane`/`channel` set; `aux` = frame number.
    TwoPhoton = 1,
    /// Eye-camera frame, u8 `[height, width]`; `aux` = camera frame number.
    EyeCamera = 2,
    /// Treadmill encoder, i64 `[1]`: cumulative counts at `t_ns`.
    Treadmill = 3,
    /// Sync event, no payload; `aux` = [`SyncCode`].
    Sync = 4,
    /// Control, JSON: `{"event": "hello" | "end", ...}` from a bridge.
    Control = 5,
    /// Per-cell activity of one imaging frame, f32 `[cells]`; `aux` = its imaging frame's seq.
    Activity = 16,
    /// Stimulus onset, JSON (trial index, spec, rig time).
    Stimulus = 17,
    /// A display flip, no payload; `seq` = display frame, `aux` = trial index (-1 for gray).
    Flip = 18,
    /// What the mouse sees on a flip, u8 `[h, w]` at the twin's resolution; `seq` = display frame.
    View = 19,
    /// A selector decision, JSON.
    Decision = 20,
    /// Daemon status heartbeat, JSON (counters, progress).
    Status = 21,
    /// Flow-control acknowledgement, no payload; `aux` = stream code, `seq` = index of the
    /// last two-photon message handed on since `hello`.
    Ack = 22,
    /// Behaviour for one imaging frame, JSON (pupil centre and radius, treadmill speed, fills).
    Behaviour = 23,
    /// A device clock's new mapping onto the rig clock, JSON (`sources::clocks::ClockUpdate`).
    Clock = 24,
    /// The cells' scan offsets within a frame, JSON (`scheduler::ScanOffsets`), once the
    /// cells are known.
    Cells = 25,
    /// The twin's prediction of each cell's activity on one imaging frame, f32 `[cells]`, made
    /// before that frame's activity was folded in; `seq`/`aux` = the imaging frame's seq.
    Prediction = 26,
    /// Motion correction of one imaging frame, JSON (`sinks::records::RegistrationRecord`:
    /// rigid shift, block-shift summary, quality); `seq` = its imaging frame's seq.
    Registration = 27,
    /// The inception protocol's notes as the session log holds them (phases, pre-registration,
    /// design results with their images and predictions, verify trials, the verdict), and each
    /// verify presentation's measured responses as they come in (not logged: the verdict holds
    /// them), JSON; `seq` = message index.
    Inception = 28,
}

impl Stream {
    pub const ALL: [Stream; 18] = [
        Stream::TwoPhoton,
        Stream::EyeCamera,
        Stream::Treadmill,
        Stream::Sync,
        Stream::Control,
        Stream::Activity,
        Stream::Stimulus,
        Stream::Flip,
        Stream::View,
        Stream::Decision,
        Stream::Status,
        Stream::Ack,
        Stream::Behaviour,
        Stream::Clock,
        Stream::Cells,
        Stream::Prediction,
        Stream::Registration,
        Stream::Inception,
    ];

    pub fn from_code(code: u16) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| *s as u16 == code)
    }

    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The topic frame, also the subscription prefix.
    pub const fn topic(self) -> &'static str {
        match self {
            Stream::TwoPhoton => "two_photon",
            Stream::EyeCamera => "eye_camera",
            Stream::Treadmill => "treadmill",
            Stream::Sync => "sync",
            Stream::Control => "control",
            Stream::Activity => "activity",
            Stream::Stimulus => "stimulus",
            Stream::Flip => "flip",
            Stream::View => "view",
            Stream::Decision => "decision",
            Stream::Status => "status",
            Stream::Ack => "ack",
            Stream::Behaviour => "behaviour",
            Stream::Clock => "clock",
            Stream::Cells => "cells",
            Stream::Prediction => "prediction",
            Stream::Registration => "registration",
            Stream::Inception => "inception",
        }
    }

    /// Dtypes this stream may carry.
    pub fn allows(self, dtype: Dtype) -> bool {
        match self {
            Stream::TwoPhoton => matches!(dtype, Dtype::U16 | Dtype::I16),
            Stream::EyeCamera | Stream::View => dtype == Dtype::U8,
            Stream::Treadmill => dtype == Dtype::I64,
            Stream::Sync | Stream::Flip | Stream::Ack => true,
            Stream::Activity | Stream::Prediction => dtype == Dtype::F32,
            Stream::Control
            | Stream::Stimulus
            | Stream::Decision
            | Stream::Status
            | Stream::Behaviour
            | Stream::Clock
            | Stream::Cells
            | Stream::Registration
            | Stream::Inception => dtype == Dtype::Json,
        }
    }

    /// Whether a rig sends this stream to the daemon.
    pub const fn is_input(self) -> bool {
        (self as u16) < 16
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.topic())
    }
}

/// Element type of a payload.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Dtype {
    U8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    U64 = 6,
    I64 = 7,
    F32 = 8,
    F64 = 9,
    /// UTF-8 JSON text; shape `[n_bytes]`.
    Json = 32,
}

impl Dtype {
    pub fn from_code(code: u8) -> Option<Dtype> {
        use Dtype::*;
        [U8, U16, I16, U32, I32, U64, I64, F32, F64, Json]
            .into_iter()
            .find(|d| *d as u8 == code)
    }

    pub const fn size_bytes(self) -> usize {
        match self {
            Dtype::U8 | Dtype::Json => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Codes carried in `aux` of a [`Stream::Sync`] message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(i64)]
pub enum SyncCode {
    /// The microscope's frame clock (one tick per imaging frame).
    FrameClock = 1,
    /// Photodiode under the monitor's sync patch turned bright.
    PhotodiodeRise = 2,
    /// Photodiode turned dark.
    PhotodiodeFall = 3,
    /// Trial marker from the rig's own sequencer.
    TrialMarker = 4,
    /// A shared sync pulse as one clock domain saw it: the header's `channel` names the domain
    /// ([`ClockDomain`]: 0 = rig master, 1 = two-photon, 2 = eye camera, 3 = treadmill,
    /// 4 = photodiode) and `t_ns` is that domain's time of the pulse.
    ClockTick = 5,
}

impl SyncCode {
    pub fn from_code(code: i64) -> Option<SyncCode> {
        use SyncCode::*;
        [
            FrameClock,
            PhotodiodeRise,
            PhotodiodeFall,
            TrialMarker,
            ClockTick,
        ]
        .into_iter()
        .find(|c| *c as i64 == code)
    }
}

/// A clock that timestamps samples: the rig's master clock or one device's own. Carried in the
/// `channel` byte of a [`SyncCode::ClockTick`]. Codes are part of the wire format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ClockDomain {
    /// The rig clock every sample is placed on.
    Rig = 0,
    /// The two-photon microscope's frame clock.
    TwoPhoton = 1,
    EyeCamera = 2,
    Treadmill = 3,
    /// The photodiode under the display's sync patch (photodiode sync events).
    Photodiode = 4,
}

impl ClockDomain {
    pub const DEVICES: [ClockDomain; 4] = [
        ClockDomain::TwoPhoton,
        ClockDomain::EyeCamera,
        ClockDomain::Treadmill,
        ClockDomain::Photodiode,
    ];

    pub fn from_code(code: u8) -> Option<ClockDomain> {
        std::iter::once(ClockDomain::Rig)
            .chain(ClockDomain::DEVICES)
            .find(|d| *d as u8 == code)
    }

    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn name(self) -> &'static str {
        match self {
            ClockDomain::Rig => "rig",
            ClockDomain::TwoPhoton => "two_photon",
            ClockDomain::EyeCamera => "eye_camera",
            ClockDomain::Treadmill => "treadmill",
            ClockDomain::Photodiode => "photodiode",
        }
    }

    /// Index among [`ClockDomain::DEVICES`] (`None` for the rig clock).
    pub fn device_index(self) -> Option<usize> {
        (self as usize).checked_sub(1)
    }
}
