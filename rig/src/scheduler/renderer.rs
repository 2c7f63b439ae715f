//! PLACEHOLDER renderer: timestamps the display frames it would show and renders what the mouse
//! sees at the twin's resolution on the CPU. The wgpu renderer (real monitor, vsync, photodiode
//! patch, gamma, spherical correction) replaces it in the stimulus issue.
//!
//! Its display clock follows the imaging frame clock: it renders flips up to the newest imaging
//! frame's time plus one imaging period (the lookahead the simulated mouse needs to produce the
//! next frame), so a simulated session is lock-step and deterministic at any speed. A real rig's
//! renderer runs on the monitor's vsync instead.

use super::{Decision, Onset};
use crate::clock::RigTime;
use crate::protocol::{Dtype, Header, Message, Stream};
use crate::ring::Wakeup;
use crate::sinks::event_bus::Bus;
use crate::sinks::records::{FlipRecord, RecordKind};
use crate::sources::RecorderItem;
use crate::telemetry::{Anomaly, Counters};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use twinloop_stimulus::{StimulusSpec, ViewGeometry, cpu};

pub struct PlaceholderRenderer {
    pub queue: Receiver<Decision>,
    /// Each trial's onset, for the selector (never blocks: a full channel drops it, logged).
    pub onsets: Sender<Onset>,
    pub latest_frame_t: Arc<AtomicI64>,
    pub stop: Arc<AtomicBool>,
    pub wake: Arc<Wakeup>,
    pub bus: Bus,
    pub events: Sender<RecorderItem>,
    pub counters: Arc<Counters>,
    pub view: ViewGeometry,
    pub display_period_ns: i64,
    pub frame_period_ns: i64,
    pub stimulus_ns: i64,
    pub gray_ns: i64,
}

enum Showing {
    Gray {
        until: RigTime,
    },
    Trial {
        // Boxed: specs (clips, images) can be large, and the gray state is the common one.
        decision: Box<Decision>,
        onset: RigTime,
        until: RigTime,
    },
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RendererReport {
    pub flips: u64,
    pub trials: u64,
    pub underruns: u64,
}

impl PlaceholderRenderer {
    pub fn run(self) -> RendererReport {
        let _span = tracing::info_span!("stage", name = "renderer").entered();
        self.wake.register_current();
        let mut report = RendererReport::default();
        let mut pixels = vec![cpu::MEAN_GRAY; self.view.pixels()];
        // The first flip coincides with the first imaging frame.
        let t0 = loop {
            let t = self.latest_frame_t.load(Ordering::Acquire);
            if t != i64::MIN {
                break RigTime::from_nanos(t);
            }
            if self.stop.load(Ordering::Acquire) {
                return report;
            }
            self.wake.wait(Duration::from_millis(5));
        };
        let mut showing = Showing::Gray {
            until: RigTime::from_nanos(t0.as_nanos() + self.gray_ns),
        };
        let mut display_frame = 0u64;
        loop {
            let latest = self.latest_frame_t.load(Ordering::Acquire);
            let horizon = latest + self.frame_period_ns + self.display_period_ns;
            let mut rendered = false;
            loop {
                let t = RigTime::from_nanos(
                    t0.as_nanos() + display_frame as i64 * self.display_period_ns,
                );
                if t.as_nanos() > horizon {
                    break;
                }
                let onset = self.advance(&mut showing, t, display_frame, &mut report);
                let (spec, trial, since) = match &showing {
                    Showing::Gray { .. } => (&StimulusSpec::Gray, -1i64, 0.0),
                    Showing::Trial {
                        decision, onset, ..
                    } => (
                        &decision.spec,
                        decision.trial as i64,
                        t.nanos_since(*onset) as f64 * 1e-9,
                    ),
                };
                cpu::render(spec, since, &self.view, &mut pixels);
                self.flip(display_frame, t, trial, onset, &pixels);
                report.flips += 1;
                display_frame += 1;
                rendered = true;
            }
            if !rendered {
                if self.stop.load(Ordering::Acquire) {
                    break;
                }
                self.wake.wait(Duration::from_millis(2));
            }
        }
        report
    }

    /// Move the trial state machine to flip time `t`; true when a trial starts on this flip.
    fn advance(
        &self,
        showing: &mut Showing,
        t: RigTime,
        display_frame: u64,
        report: &mut RendererReport,
    ) -> bool {
        if let Showing::Trial { until, .. } = showing
            && t >= *until
        {
            *showing = Showing::Gray {
                until: RigTime::from_nanos(until.as_nanos() + self.gray_ns),
            };
        }
        let Showing::Gray { until } = showing else {
            return false;
        };
        if t < *until {
            return false;
        }
        match self.queue.try_recv() {
            Ok(decision) => {
                let onset = Onset {
                    trial: decision.trial,
                    stimulus: decision.stimulus,
                    t,
                };
                if self.onsets.try_send(onset).is_err() {
                    tracing::warn!(trial = decision.trial, "the selector did not take an onset");
                }
                let value = serde_json::json!({
                    "trial": decision.trial,
                    "stimulus": decision.stimulus,
                    "name": decision.name,
                    "spec": decision.spec,
                    "onset_t_ns": t.as_nanos(),
                    "display_frame": display_frame,
                });
                self.bus.publish(Message::json(
                    Stream::Stimulus,
                    decision.trial,
                    t.as_nanos(),
                    &value,
                ));
                let _ = self.events.send(RecorderItem::Json {
                    kind: RecordKind::Stimulus,
                    value,
                });
                Counters::inc(&self.counters.trials);
                report.trials += 1;
                *showing = Showing::Trial {
                    decision: Box::new(decision),
                    onset: t,
                    until: RigTime::from_nanos(t.as_nanos() + self.stimulus_ns),
                };
                true
            }
            Err(_) => {
                // The renderer never waits for the selector: gray now, count it, try next flip.
                Counters::inc(&self.counters.underruns);
                report.underruns += 1;
                let _ = self
                    .events
                    .try_send(RecorderItem::Anomaly(Anomaly::Underrun { display_frame }));
                false
            }
        }
    }

    fn flip(&self, display_frame: u64, t: RigTime, trial: i64, onset: bool, pixels: &[u8]) {
        Counters::inc(&self.counters.flips);
        let _ = self.events.send(RecorderItem::Flip(FlipRecord {
            display_frame,
            t,
            trial,
            onset,
        }));
        let mut flip = Header::new(Stream::Flip, Dtype::U8, &[0], display_frame, t.as_nanos());
        flip.aux = trial;
        flip.flags = onset as u32;
        self.bus.publish(Message {
            header: flip,
            payload: Bytes::new(),
        });
        let mut view = Header::new(
            Stream::View,
            Dtype::U8,
            &[self.view.height as u32, self.view.width as u32],
            display_frame,
            t.as_nanos(),
        );
        view.aux = trial;
        view.flags = onset as u32;
        self.bus.publish(Message {
            header: view,
            payload: Bytes::copy_from_slice(pixels),
        });
    }
}
