//! The JSON snapshot the page draws, one panel per key.

use super::*;

impl DashState {
    /// The JSON the page draws: one key per panel (`frame`, `traces`,
    /// `stimulus`, `latency`, `counters`, `accuracy`, `decisions`,
    /// `behaviour`, `inception`: null without an inception protocol) plus `t_s` (latest event time), `history_s` and `state`
    /// (event counts).
    pub fn snapshot(&self) -> Value {
        json!({
            "t_s": self.now_s.map_or(Value::Null, num_t),
            "history_s": self.history_s,
            "state": {
                "events": self.events,
                "rejected": self.rejected,
                "last_rejection": self.last_rejection,
            },
            "frame": self.frame_json(),
            "traces": self.traces_json(),
            "stimulus": self.stimulus_json(),
            "latency": self.latency_json(),
            "counters": self.counters_json(),
            "accuracy": self.accuracy_json(),
            "decisions": self.decisions_json(),
            "behaviour": self.behaviour_json(),
            "inception": self.inception.as_ref().map_or(Value::Null, |t| t.json()),
        })
    }

    fn frame_json(&self) -> Value {
        let shifts = json!({
            "t": self.shifts.times(),
            "dy": self.shifts.column(|v| Some(v.0)),
            "dx": self.shifts.column(|v| Some(v.1)),
        });
        let selected: Vec<Value> = self
            .selected
            .iter()
            .filter_map(|&i| {
                self.cell_on_thumbnail(i)
                    .map(|(y, x, r)| json!({"cell": i, "y": num_f32(y), "x": num_f32(x), "r": num_f32(r)}))
            })
            .collect();
        let (frame_seq, cells_seq, selection_seq) = self.frame_version();
        let mut out = json!({
            "version": format!("{frame_seq}.{cells_seq}.{selection_seq}"),
            "frames": self.frames_seen,
            "n_cells": self.centres.len(),
            "selected": selected,
            "shifts": shifts,
            "t_s": Value::Null,
            "width": Value::Null,
            "height": Value::Null,
        });
        if let (Some(f), Some(obj)) = (&self.frame, out.as_object_mut()) {
            obj.insert("t_s".into(), num_t(f.t_s));
            obj.insert("width".into(), f.width.into());
            obj.insert("height".into(), f.height.into());
            obj.insert("src_width".into(), f.src_width.into());
            obj.insert("src_height".into(), f.src_height.into());
            obj.insert("scale".into(), f.scale.into());
        }
        out
    }

    fn traces_json(&self) -> Value {
        let per_cell = |w: &Window<Vec<f32>>| -> Value {
            Value::Array(
                self.selected
                    .iter()
                    .map(|&i| w.column(|v| v.get(i).copied()))
                    .collect(),
            )
        };
        json!({
            "cells": self.selected,
            "by_variance": self.selection_by_variance,
            "variance": self.selected.iter().map(|&i| num_f64(self.stats.variance(i))).collect::<Vec<_>>(),
            "n_cells": self.stats.n.len().max(self.centres.len()),
            "samples": self.stats.samples,
            "activity": {"t": self.activity.times(), "values": per_cell(&self.activity)},
            "prediction": {"t": self.prediction.times(), "values": per_cell(&self.prediction)},
        })
    }

    fn stimulus_json(&self) -> Value {
        let pending = |p: &Pending| json!({"trial": p.trial, "name": p.name, "mode": p.mode});
        let (trial, name, onset_t) = match &self.onset {
            Some(o) => (json!(o.trial), json!(o.name), num_t(o.t_s)),
            None => (Value::Null, Value::Null, Value::Null),
        };
        let (view_t, width, height) = match &self.view {
            Some(v) => (num_t(v.t_s), json!(v.width), json!(v.height)),
            None => (Value::Null, Value::Null, Value::Null),
        };
        json!({
            "trial": trial,
            "name": name,
            "onset_t_s": onset_t,
            "onsets": self.onsets,
            "view_version": self.view_seq,
            "view_t_s": view_t,
            "view_trial": self.view_trial,
            "width": width,
            "height": height,
            "next": self.queue.front().map_or(Value::Null, pending),
            "queue": self.queue.iter().map(pending).collect::<Vec<_>>(),
        })
    }

    fn latency_json(&self) -> Value {
        Value::Array(
            self.latency
                .iter()
                .map(|(stage, e)| {
                    json!({
                        "stage": stage,
                        "p50_ms": num_f64(e.p50_ms),
                        "p99_ms": num_f64(e.p99_ms),
                        "histogram": e.histogram.iter().map(|&(edge, n)| json!([num_f64(edge), n])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }

    fn counters_json(&self) -> Value {
        json!({
            "values": self.counters,
            "anomalies": self.anomalies,
            "recent_anomalies": self.recent_anomalies.iter().rev().map(|(t, m)| json!({"t_s": t.map_or(Value::Null, num_t), "message": m})).collect::<Vec<_>>(),
        })
    }

    fn accuracy_json(&self) -> Value {
        let pts: Vec<&(u64, f64)> = self.accuracy.points().collect();
        json!({
            "trials": pts.iter().map(|p| p.0).collect::<Vec<_>>(),
            "cc_norm": pts.iter().map(|p| num_f64(p.1)).collect::<Vec<_>>(),
            "latest": self.accuracy.last.map_or(Value::Null, |(t, c)| json!({"trials": t, "cc_norm": num_f64(c)})),
        })
    }

    fn decisions_json(&self) -> Value {
        let pts: Vec<&DecisionPoint> = self.decisions.points().collect();
        let mode_counts: Map<String, Value> = self
            .modes
            .iter()
            .zip(&self.mode_counts)
            .map(|(m, &n)| (m.clone(), n.into()))
            .collect();
        json!({
            "count": self.decision_count,
            "trial": pts.iter().map(|p| p.trial).collect::<Vec<_>>(),
            "score": pts.iter().map(|p| p.score.map_or(Value::Null, num_f64)).collect::<Vec<_>>(),
            "mode": pts.iter().map(|p| p.mode).collect::<Vec<_>>(),
            "modes": self.modes,
            "mode_counts": mode_counts,
            "latest": self.last_decision.as_ref().map_or(Value::Null, |(trial, name, mode, score)| json!({
                "trial": trial, "name": name, "mode": mode, "score": score.map_or(Value::Null, num_f64),
            })),
        })
    }

    fn behaviour_json(&self) -> Value {
        let b = &self.behaviour;
        json!({
            "t": b.times(),
            "pupil_x": b.column(|v| Some(v[0])),
            "pupil_y": b.column(|v| Some(v[1])),
            "pupil_radius": b.column(|v| Some(v[2])),
            "speed_cm_s": b.column(|v| Some(v[3])),
        })
    }
}

/// Cuts free text to [`MAX_TEXT`] characters.
pub(super) fn cut(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_TEXT) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// A time in seconds, to the millisecond (keeps the JSON small).
pub(super) fn num_t(t: f64) -> Value {
    if t.is_finite() {
        json!((t * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// A value to 5 significant digits (keeps the JSON small); non-finite: null.
pub(super) fn num_f64(v: f64) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    if v == 0.0 {
        return json!(0.0);
    }
    let digits = 4 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    let r = (v * scale).round() / scale;
    if r.is_finite() { json!(r) } else { json!(v) }
}

pub(super) fn num_f32(v: f32) -> Value {
    num_f64(f64::from(v))
}
