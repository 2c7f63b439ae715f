//! The behaviour stage: pupil from every eye-camera frame, running speed from the treadmill,
//! and both resampled onto each imaging frame's time for the twin (fnn's perspective takes the
//! pupil centre, its modulation the pupil radius and the treadmill velocity).
//!
//! The algorithms live in `twinloop_calibration::{eye, body}`; this thread only feeds them in
//! arrival order and publishes one [`BehaviourRecord`] per imaging frame (on the bus as
//! `behaviour`, in the log as a `Behaviour` record), once the eye camera has caught up with
//! that frame's time (or a few frames later, held and flagged).

use crate::backbone::bus::Bus;
use crate::backbone::frames::EyeFrame;
use crate::backbone::recorder_item::RecorderItem;
use crate::backbone::ring::{RingRx, Wakeup};
use crate::backbone::telemetry::Counters;
use crate::vocab::clock::RigTime;
use crate::vocab::protocol::{Message, Stream};
use crate::vocab::records::RecordKind;
use crate::vocab::section::{Invalid, Section};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use twinloop_calibration::body::{
    BehaviourAligner, BehaviourConfig, Fill, Treadmill, TreadmillConfig,
};
use twinloop_calibration::eye::{PupilConfig, PupilQuality, PupilTracker};

/// The `[behaviour]` section of a config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourStageConfig {
    /// Pupil detection (plausible sizes, thresholds).
    pub pupil: PupilConfig,
    /// The wheel: diameter, counts per revolution, counter width.
    pub treadmill: TreadmillConfig,
    /// Resampling onto imaging frame times.
    pub aligner: BehaviourConfig,
}

impl Section for BehaviourStageConfig {
    const NAME: &'static str = "behaviour";

    fn validate(&self) -> Result<(), Invalid> {
        // The calibration crate's messages name the field within its own section.
        let named = |sub: &str, e: String| Invalid::new(format!("behaviour.{sub}"), "", e);
        self.pupil
            .validate()
            .map_err(|e| named("pupil", e.to_string()))?;
        self.treadmill
            .validate()
            .map_err(|e| named("treadmill", e.to_string()))?;
        self.aligner
            .validate()
            .map_err(|e| named("aligner", e.to_string()))
    }
}

/// What the behaviour stage is told besides eye frames, in arrival order.
#[derive(Debug, Clone, Copy)]
pub enum BehaviourInput {
    Treadmill {
        t_ns: i64,
        count: i64,
    },
    /// An imaging frame (plane 0, channel 0) that needs its behaviour.
    Frame {
        seq: u64,
        t_ns: i64,
    },
}

/// Behaviour for one imaging frame, as logged and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BehaviourRecord {
    pub frame_seq: u64,
    pub t_ns: i64,
    /// `None` where the input is missing (no valid sample near this frame).
    pub pupil_x_px: Option<f64>,
    pub pupil_y_px: Option<f64>,
    pub pupil_radius_px: Option<f64>,
    pub treadmill_cm_s: Option<f64>,
    pub pupil: Fill,
    pub treadmill: Fill,
}

/// One eye frame's pupil, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PupilRecord {
    pub seq: u64,
    pub t_ns: i64,
    pub quality: PupilQuality,
    pub centre_x_px: Option<f64>,
    pub centre_y_px: Option<f64>,
    pub radius_px: Option<f64>,
}

/// Frames waiting for the eye camera to catch up before their behaviour is emitted anyway.
const MAX_PENDING_FRAMES: usize = 8;

pub struct BehaviourStage {
    eye: RingRx<EyeFrame>,
    inputs: Receiver<BehaviourInput>,
    wake: Arc<Wakeup>,
    /// Built at the first eye frame, for its size (and again if the size changes).
    tracker: Option<PupilTracker>,
    treadmill: Treadmill,
    aligner: BehaviourAligner,
    eye_size: (usize, usize),
    pupil_config: PupilConfig,
    bus: Bus,
    events: Sender<RecorderItem>,
    to_selector: Option<Sender<BehaviourRecord>>,
    counters: Arc<Counters>,
}

/// What the behaviour stage reads and where it hands things on.
pub struct BehaviourLinks {
    pub eye: RingRx<EyeFrame>,
    pub inputs: Receiver<BehaviourInput>,
    pub wake: Arc<Wakeup>,
    pub bus: Bus,
    pub events: Sender<RecorderItem>,
    /// The twin's modulation inputs, to the selector (never blocks: a full channel drops the
    /// record and the selector goes on without it after a bounded wait).
    pub to_selector: Option<Sender<BehaviourRecord>>,
    pub counters: Arc<Counters>,
}

impl BehaviourStage {
    /// The stage `[behaviour]` describes; a setting the calibration crate refuses is named.
    pub fn new(
        cfg: &BehaviourStageConfig,
        links: BehaviourLinks,
    ) -> Result<BehaviourStage, Invalid> {
        let named = |sub: &str, e: String| Invalid::new(format!("behaviour.{sub}"), "", e);
        Ok(BehaviourStage {
            eye: links.eye,
            inputs: links.inputs,
            wake: links.wake,
            tracker: None,
            treadmill: Treadmill::new(cfg.treadmill.clone())
                .map_err(|e| named("treadmill", e.to_string()))?,
            aligner: BehaviourAligner::new(cfg.aligner.clone())
                .map_err(|e| named("aligner", e.to_string()))?,
            eye_size: (0, 0),
            pupil_config: cfg.pupil.clone(),
            bus: links.bus,
            events: links.events,
            to_selector: links.to_selector,
            counters: links.counters,
        })
    }

    pub fn run(mut self) {
        let _span = tracing::info_span!("stage", name = "behaviour").entered();
        self.wake.register_current();
        let mut pending: VecDeque<(u64, i64)> = VecDeque::with_capacity(64);
        let mut inputs_open = true;
        let mut emitted = 0u64;
        loop {
            let mut busy = false;
            while let Some(f) = self.eye.try_pop() {
                busy = true;
                self.pupil(&f);
            }
            loop {
                match self.inputs.try_recv() {
                    Ok(BehaviourInput::Treadmill { t_ns, count }) => {
                        busy = true;
                        if let Some(v) = self.treadmill.push(t_ns, count) {
                            self.aligner.push_velocity(&v);
                        }
                    }
                    Ok(BehaviourInput::Frame { seq, t_ns }) => {
                        busy = true;
                        pending.push_back((seq, t_ns));
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        inputs_open = false;
                        break;
                    }
                }
            }
            let closing = !inputs_open && self.eye.is_finished();
            while let Some(&(seq, t_ns)) = pending.front() {
                if !(closing || self.aligner.caught_up(t_ns) || pending.len() > MAX_PENDING_FRAMES)
                {
                    break;
                }
                pending.pop_front();
                self.emit(seq, t_ns, emitted);
                emitted += 1;
            }
            if closing && pending.is_empty() {
                break;
            }
            if !busy {
                self.wake.wait(Duration::from_millis(5));
            }
        }
    }

    fn pupil(&mut self, f: &EyeFrame) {
        let (w, h) = (f.meta.width as usize, f.meta.height as usize);
        // The tracker is built for one frame size; a camera that changes size gets a new one.
        if self.tracker.is_none() || self.eye_size != (w, h) {
            self.tracker = PupilTracker::new(w, h, self.pupil_config.clone())
                .map_err(|e| tracing::warn!(error = %e, "cannot track pupils at this frame size"))
                .ok();
            self.eye_size = (w, h);
        }
        let Some(tracker) = &mut self.tracker else {
            return;
        };
        let t_ns = f.meta.t.as_nanos();
        let record = match tracker.track(f.pixels()) {
            Ok(m) => {
                self.aligner.push_pupil(t_ns, &m);
                let c = m.centre_px();
                PupilRecord {
                    seq: f.meta.seq,
                    t_ns,
                    quality: m.quality,
                    centre_x_px: c.map(|c| c[0]),
                    centre_y_px: c.map(|c| c[1]),
                    radius_px: m.radius_px(),
                }
            }
            Err(e) => {
                tracing::debug!(seq = f.meta.seq, error = %e, "eye frame not tracked");
                return;
            }
        };
        let Some(value) = self.counters.json("pupil record", &record) else {
            return;
        };
        // Best effort (the stage must keep up with the camera), but never silent: pupil
        // records feed the NWB export, so each one dropped for a full recorder is counted.
        if self
            .events
            .try_send(RecorderItem::Json {
                kind: RecordKind::Pupil,
                value,
            })
            .is_err()
        {
            Counters::inc(&self.counters.records_dropped);
        }
    }

    fn emit(&mut self, frame_seq: u64, t_ns: i64, index: u64) {
        let b = self.aligner.frame(t_ns);
        let record = BehaviourRecord {
            frame_seq,
            t_ns,
            pupil_x_px: finite(b.pupil_x_px),
            pupil_y_px: finite(b.pupil_y_px),
            pupil_radius_px: finite(b.pupil_radius_px),
            treadmill_cm_s: finite(b.treadmill_cm_s),
            pupil: b.pupil,
            treadmill: b.treadmill,
        };
        if !(b.pupil == Fill::Measured && b.treadmill == Fill::Measured) {
            Counters::inc(&self.counters.behaviour_filled);
        }
        let Some(value) = self.counters.json("behaviour record", &record) else {
            return;
        };
        if let Some(tx) = &self.to_selector
            && tx.try_send(record).is_err()
        {
            tracing::debug!(frame_seq, "the selector did not take a behaviour record");
        }
        self.bus.publish(Message::json(
            Stream::Behaviour,
            index,
            RigTime::from_nanos(t_ns).as_nanos(),
            &value,
        ));
        let _ = self.events.send(RecorderItem::Json {
            kind: RecordKind::Behaviour,
            value,
        });
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::frames::{EyeBuf, FrameMeta};
    use crate::backbone::ring::{Pool, ring};
    use crate::backbone::telemetry::Anomaly;
    use crate::vocab::protocol::{Dtype, Header};

    /// Pupil records that found the recorder's queue full were dropped uncounted (#16); they
    /// feed the NWB export, so each one lost is now counted.
    #[test]
    fn pupil_records_dropped_for_a_full_recorder_are_counted() {
        let (w, h) = (64u32, 48u32);
        let counters = Arc::new(Counters::default());
        let wake = Wakeup::new();
        let (mut eye_tx, eye) = ring(16, Arc::clone(&wake));
        let (inputs_tx, inputs) = crossbeam_channel::bounded(4);
        let (bus, _inbox) = crate::backbone::bus::bus(16, Arc::clone(&counters));
        // The recorder's queue holds one item and is full already.
        let (events, events_rx) = crossbeam_channel::bounded(1);
        events
            .send(RecorderItem::Anomaly(Anomaly::Underrun {
                display_frame: 0,
            }))
            .unwrap();
        let stage = BehaviourStage::new(
            &BehaviourStageConfig::default(),
            BehaviourLinks {
                eye,
                inputs,
                wake,
                bus,
                events,
                to_selector: None,
                counters: Arc::clone(&counters),
            },
        )
        .unwrap();
        let pool = Pool::new(8, || EyeBuf::with_capacity((w * h) as usize));
        let n = 4u64;
        for seq in 0..n {
            let header = Header::new(Stream::EyeCamera, Dtype::U8, &[h, w], seq, seq as i64);
            let mut slot = pool.try_take().unwrap();
            slot.meta = FrameMeta::from_header(&header, 0);
            slot.pixels.fill(128);
            slot.len = (w * h) as usize;
            assert!(eye_tx.try_push(slot.freeze()).is_ok());
        }
        drop((eye_tx, inputs_tx));
        stage.run();
        assert_eq!(counters.snapshot().records_dropped, n);
        assert_eq!(events_rx.len(), 1, "only the item that filled the queue");
    }
}
