//! From the daemon's event bus to the dashboard: the publisher thread hands every message it
//! publishes (and every activity it sends) to a [`DashBridge`], which turns the ones the page
//! shows into [`DashEvent`]s. The two-photon thumbnail comes from a ring the extraction stage
//! fills with every n-th frame's pooled handle (no copy on the stage's thread); the copy into
//! the event is made here, off the frame path. Nothing here can block the publisher: the feed
//! drops and counts when full.

use super::{DashEvent, DashFeed};
use crate::backbone::frames::{Activity, Frame};
use crate::backbone::ring::RingRx;
use crate::vocab::protocol::{Message, Stream};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// How often latency histograms are sent.
const LATENCY_EVERY: Duration = Duration::from_secs(1);

pub struct DashBridge {
    feed: DashFeed,
    frames: Option<RingRx<Frame>>,
    latency: Option<Histogram<u64>>,
    last_latency: Instant,
}

impl DashBridge {
    pub fn new(feed: DashFeed, frames: Option<RingRx<Frame>>) -> DashBridge {
        DashBridge {
            feed,
            frames,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 2).ok(),
            last_latency: Instant::now(),
        }
    }

    /// A message the publisher sent.
    pub fn on_message(&mut self, m: &Message) {
        for ev in events(m) {
            self.feed.send(ev);
        }
    }

    /// One frame's activity, as the publisher pops it.
    pub fn on_activity(&mut self, a: &Activity) {
        if let Some(h) = self.latency.as_mut() {
            let _ = h.record((a.ready_ns - a.frame.recv_ns).max(1) as u64);
        }
        self.feed.send(DashEvent::Activity {
            t_s: a.frame.t.as_secs_f64(),
            values: a.values().to_vec(),
        });
    }

    /// Thumbnails waiting in the ring, and the latency histogram once a second.
    pub fn poll(&mut self) {
        if let Some(rx) = self.frames.as_mut() {
            while let Some(f) = rx.try_pop() {
                self.feed.send(DashEvent::Frame {
                    t_s: f.meta.t.as_secs_f64(),
                    width: f.meta.width,
                    height: f.meta.height,
                    pixels: f.pixels().to_vec(),
                });
            }
        }
        if self.last_latency.elapsed() >= LATENCY_EVERY
            && let Some(h) = self.latency.as_ref()
            && !h.is_empty()
        {
            self.last_latency = Instant::now();
            let ms = |ns: u64| ns as f64 / 1e6;
            let histogram = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
                .iter()
                .scan(0u64, |below, &edge| {
                    let upto = h.count_between(0, (edge * 1e6) as u64);
                    let n = upto.saturating_sub(*below);
                    *below = upto;
                    Some((edge, n))
                })
                .collect();
            self.feed.send(DashEvent::Latency {
                stage: "frame received → activity".into(),
                p50_ms: ms(h.value_at_quantile(0.5)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                histogram,
            });
        }
    }
}

fn json(m: &Message) -> Option<serde_json::Value> {
    serde_json::from_slice(&m.payload).ok()
}

/// The dashboard's view of one bus message: none, one or (a decision with the twin's accuracy)
/// two events, each message's JSON parsed once.
fn events(m: &Message) -> Vec<DashEvent> {
    let mut out = Vec::new();
    if let Some(ev) = event(m, &mut out) {
        out.push(ev);
    }
    out
}

/// The message's main event; a decision's accuracy goes into `extra` first.
fn event(m: &Message, extra: &mut Vec<DashEvent>) -> Option<DashEvent> {
    let h = &m.header;
    let t_s = h.t_ns as f64 * 1e-9;
    match h.stream {
        Stream::View => {
            let (height, width) = (h.shape[0], h.shape[1]);
            (m.payload.len() == (height * width) as usize).then(|| DashEvent::View {
                t_s,
                width,
                height,
                pixels: m.payload.to_vec(),
                trial: h.aux,
            })
        }
        Stream::Stimulus => {
            let v = json(m)?;
            Some(DashEvent::Onset {
                trial: v.get("trial")?.as_u64()?,
                name: v.get("name")?.as_str()?.to_string(),
                t_s,
            })
        }
        Stream::Decision => {
            let v = json(m)?;
            if let Some(acc) = v.get("accuracy")
                && let (Some(trials), Some(cc_norm)) = (
                    acc.get("trials").and_then(|v| v.as_u64()),
                    acc.get("cc_norm").and_then(|v| v.as_f64()),
                )
            {
                extra.push(DashEvent::Accuracy { trials, cc_norm });
            }
            Some(DashEvent::Decision {
                trial: v.get("trial")?.as_u64()?,
                name: v.get("name")?.as_str()?.to_string(),
                mode: v
                    .get("mode")
                    .and_then(|m| m.as_str())
                    .unwrap_or("random")
                    .to_string(),
                score: v.get("score").and_then(|s| s.as_f64()),
            })
        }
        Stream::Cells => {
            let c: crate::vocab::scan::ScanOffsets = serde_json::from_slice(&m.payload).ok()?;
            // Plane 0's cells: the thumbnail is plane 0.
            (c.plane == 0).then_some(())?;
            // Older logs and bridges may not say where the cells are.
            (c.x_px.len() == c.rows.len() && c.radius_px.len() == c.rows.len()).then(|| {
                DashEvent::Cells {
                    // `rows` are line edges (centroid + 0.5); the thumbnail wants centres.
                    centres: c
                        .rows
                        .iter()
                        .zip(&c.x_px)
                        .map(|(&y, &x)| ((y - 0.5) as f32, x as f32))
                        .collect(),
                    radii: c.radius_px.iter().map(|&r| r as f32).collect(),
                }
            })
        }
        Stream::Registration => {
            let v = json(m)?;
            // Plane 0's shifts: the thumbnail is plane 0.
            (v.get("plane").and_then(|p| p.as_u64()).unwrap_or(0) == 0).then_some(())?;
            let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN) as f32;
            Some(DashEvent::Shifts {
                t_s,
                dy: f("dy_px"),
                dx: f("dx_px"),
            })
        }
        // Plane 0's cells, as the outlines (each plane's prediction has its own cells).
        Stream::Prediction if h.plane != 0 => None,
        Stream::Prediction => Some(DashEvent::Prediction {
            t_s,
            values: m
                .payload
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }),
        Stream::Behaviour => {
            let v = json(m)?;
            let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN) as f32;
            Some(DashEvent::Behaviour {
                t_s,
                pupil_x: f("pupil_x_px"),
                pupil_y: f("pupil_y_px"),
                pupil_radius: f("pupil_radius_px"),
                speed_cm_s: f("treadmill_cm_s"),
            })
        }
        Stream::Status => {
            let v = json(m)?;
            let mut c = v.get("counters")?.as_object()?.clone();
            // The design's counts as rows of their own (`design_late`, ...): the table shows
            // numbers, not objects.
            if let Some(serde_json::Value::Object(design)) = c.remove("design") {
                for (k, x) in design {
                    c.insert(format!("design_{k}"), x);
                }
            }
            // The page's tiles, under the daemon's names: frames received, frames lost in
            // transit (sequence gaps), frames the imaging stage skipped, late decisions.
            for (tile, counter) in [
                ("frames", "frames_in"),
                ("drops", "missing"),
                ("skips", "stage_skips"),
                ("late_decisions", "design_late"),
            ] {
                if let Some(x) = c.get(counter).cloned() {
                    c.insert(tile.into(), x);
                }
            }
            Some(DashEvent::Counters(c))
        }
        Stream::Inception => json(m).map(DashEvent::Inception),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::scan::{CellPlace, ScanOffsets};

    #[test]
    fn cells_and_registration_become_outlines_and_shifts() {
        let place = |y_px, x_px| CellPlace {
            y_px,
            x_px,
            radius_px: 4.0,
        };
        let cells = ScanOffsets::from_cells([place(10.0, 20.0), place(30.5, 5.0)], 64, 1.0 / 30.0);
        let m = Message::json(
            Stream::Cells,
            0,
            0,
            &serde_json::to_value(&cells).expect("json"),
        );
        assert_eq!(
            events(&m),
            vec![DashEvent::Cells {
                centres: vec![(10.0, 20.0), (30.5, 5.0)],
                radii: vec![4.0, 4.0],
            }]
        );
        let r = serde_json::json!({"plane": 0, "dy_px": 1.25, "dx_px": -0.5, "quality": 0.9});
        let m = Message::json(Stream::Registration, 7, 2_000_000_000, &r);
        assert_eq!(
            events(&m),
            vec![DashEvent::Shifts {
                t_s: 2.0,
                dy: 1.25,
                dx: -0.5
            }]
        );
        // Another plane's shifts are not the thumbnail's.
        let r = serde_json::json!({"plane": 1, "dy_px": 1.0, "dx_px": 1.0});
        assert!(events(&Message::json(Stream::Registration, 8, 0, &r)).is_empty());
        // Nor its cells, nor the twin's prediction of them.
        let other = ScanOffsets { plane: 1, ..cells };
        let m = Message::json(
            Stream::Cells,
            0,
            0,
            &serde_json::to_value(&other).expect("json"),
        );
        assert!(events(&m).is_empty());
        let m = Message::cell_values(Stream::Prediction, 1, 3, 0, &[1.0, 2.0]);
        assert!(events(&m).is_empty());
        let m = Message::cell_values(Stream::Prediction, 0, 3, 0, &[1.0, 2.0]);
        assert_eq!(events(&m).len(), 1);
    }

    /// The inception protocol's notes reach the dashboard as they were published.
    #[test]
    fn inception_notes_become_inception_events() {
        let note = serde_json::json!({"event": "inception.response", "round": 1, "index": 0, "measured": [1.5]});
        let m = Message::json(Stream::Inception, 0, 0, &note);
        assert_eq!(events(&m), vec![DashEvent::Inception(note)]);
    }

    /// The heartbeat's counters, with the design's nested counts as rows of their own, from
    /// the daemon's own snapshot type (so a renamed field breaks this test, not the page).
    #[test]
    fn status_counters_flatten_the_design_counts() {
        use crate::backbone::telemetry::{Counters, DesignCounts};
        let counters = Counters::default();
        counters.set_design(&DesignCounts {
            late: 3,
            fallback_trials: 2,
            ..Default::default()
        });
        Counters::inc(&counters.frames_in);
        let status = serde_json::json!({ "counters": counters.snapshot() });
        let m = Message::json(Stream::Status, 0, 0, &status);
        let evs = events(&m);
        let [DashEvent::Counters(c)] = evs.as_slice() else {
            panic!("one counters event");
        };
        assert_eq!(c["design_late"], 3);
        assert_eq!(c["late_decisions"], 3, "the page's late-decisions tile");
        assert_eq!(c["design_fallback_trials"], 2);
        assert_eq!(c["frames"], 1);
        assert!(!c.contains_key("design"));
    }
}
