//! `twinloop calibrate gamma | geometry | latency`: measurements of the stimulus monitor to the
//! `[display]` tables a session config reads. Each writes a TOML fragment to add to the config
//! (`[display.gamma]`, `[display.monitor]`, `[display.latency]`: sub-tables, so they go after an
//! existing `[display]` section), and refuses to write one the config would not accept.
//!
//! - gamma: a `level,luminance` CSV of photometer readings (drive level 0–255 shown full
//!   screen, luminance in cd/m²). Measure after the monitor has warmed up (30 min), in the rig's
//!   ambient light, at 9 or more levels spread over 0–255.
//! - geometry: a TOML of tape-measure and protractor readings
//!   (`twinloop_calibration::display::geometry::MonitorMeasurements`: the screen's pixels and
//!   visible size, the eye-to-centre distance and direction, the direction of its normal).
//! - latency: a session recorded on the monitor (`backend = "window"`) with the photodiode over
//!   its patch, and the photodiode's recording on the rig clock: a `t_s,value` CSV, or a `.npy`
//!   with `--sample-rate-hz` and `--t0-s`.
//!
//! The fits and their checks are `twinloop_calibration::display`'s.

use crate::backbone::session_log::SessionDir;
use crate::config::DisplayLatency;
use crate::vocab::records::{FlipRecord, RecordKind};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use twinloop_calibration::display::gamma;
use twinloop_calibration::display::geometry::MonitorMeasurements;
use twinloop_calibration::display::latency::{self, Flip};

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// Fit the monitor's gamma from photometer readings and write `[display.gamma]`.
    Gamma {
        /// `level,luminance` CSV (drive level 0-255, cd/m²).
        readings: PathBuf,
        /// The TOML to write: a `[display.gamma]` table to add to a session config.
        #[arg(long)]
        out: PathBuf,
    },
    /// The monitor's pose from measured geometry; writes `[display.monitor]`.
    Geometry {
        /// TOML with width_px, height_px, width_cm, height_cm (visible area),
        /// center_distance_cm (eye to screen centre), center_azimuth_deg,
        /// center_elevation_deg (its direction from the eye), normal_azimuth_deg,
        /// normal_elevation_deg (the direction the screen faces, away from the eye).
        measurements: PathBuf,
        /// The TOML to write: a `[display.monitor]` table to add to a session config.
        #[arg(long)]
        out: PathBuf,
    },
    /// The delay from a logged flip to its light, from a photodiode over the patch; writes
    /// `[display.latency]`.
    Latency {
        /// The session directory (recorded on the monitor, not the simulated display).
        session: PathBuf,
        /// The photodiode recording on the rig clock: `t_s,value` CSV, or a 1-D `.npy`.
        #[arg(long)]
        trace: PathBuf,
        /// A `.npy` trace's sample rate (a CSV's comes from its times).
        #[arg(long)]
        sample_rate_hz: Option<f64>,
        /// Rig time of a `.npy` trace's first sample, s.
        #[arg(long)]
        t0_s: Option<f64>,
        /// The longest plausible delay from a flip to its light, ms.
        #[arg(long, default_value_t = 100.0)]
        max_delay_ms: f64,
        /// The TOML to write: a `[display.latency]` table to add to a session config.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: &CalibrateArgs) -> anyhow::Result<()> {
    match &args.what {
        What::Gamma { readings, out } => gamma_cmd(readings, out),
        What::Geometry { measurements, out } => geometry_cmd(measurements, out),
        What::Latency {
            session,
            trace,
            sample_rate_hz,
            t0_s,
            max_delay_ms,
            out,
        } => {
            let trace = read_trace(trace, *sample_rate_hz, *t0_s)?;
            latency_cmd(session, &trace, *max_delay_ms, out)
        }
    }
}

fn write(out: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}

fn gamma_cmd(readings: &Path, out: &Path) -> anyhow::Result<()> {
    let r = gamma::read_csv(readings)?;
    let fit = gamma::fit(&r).with_context(|| format!("fitting {}", readings.display()))?;
    // The LUT must be what `[display] gamma` accepts; refuse to write one it would not.
    twinloop_stimulus::GammaLut::from_table(&fit.table)
        .map_err(|e| anyhow::anyhow!("the fitted table is not a valid LUT: {e}"))?;
    let mut text = format!(
        "# `twinloop calibrate gamma {}`: {} readings; gamma {:.3}, L(0) {:.3} cd/m², \
         L(255) {:.3} cd/m², residual {:.2}% of the range rms ({:.3} cd/m² at most).\n\
         # Add to the session config (a [display] section may already be there).\n\
         [display.gamma]\ntable = [",
        readings.display(),
        r.len(),
        fit.gamma,
        fit.offset,
        fit.offset + fit.gain,
        100.0 * fit.rms_residual_fraction,
        fit.max_residual,
    );
    for (i, v) in fit.table.iter().enumerate() {
        let sep = if i % 8 == 0 { "\n    " } else { " " };
        write!(text, "{sep}{v:.6},")?;
    }
    text.push_str("\n]\n");
    write(out, &text)?;
    if fit.rms_residual_fraction > 0.02 {
        tracing::warn!(
            rms_percent = 100.0 * fit.rms_residual_fraction,
            "the power law fits this monitor poorly; check the readings"
        );
    }
    tracing::info!(gamma = fit.gamma, out = %out.display(), "gamma LUT written");
    Ok(())
}

fn geometry_cmd(measurements: &Path, out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(measurements)
        .with_context(|| format!("reading {}", measurements.display()))?;
    let m: MonitorMeasurements = toml::from_str(&text).with_context(|| {
        format!(
            "{}: expected width_px, height_px, width_cm, height_cm, center_distance_cm, \
             center_azimuth_deg, center_elevation_deg, normal_azimuth_deg, normal_elevation_deg",
            measurements.display()
        )
    })?;
    let pose = m
        .fit()
        .with_context(|| format!("fitting {}", measurements.display()))?;
    let table = toml::to_string(&pose)?;
    // What `[display.monitor]` reads, checked as the renderer checks it.
    let geometry: twinloop_stimulus::MonitorGeometry =
        toml::from_str(&table).context("the fitted pose is not a [display.monitor] table")?;
    geometry
        .validate()
        .map_err(|e| anyhow::anyhow!("the fitted pose is refused by the renderer: {e}"))?;
    let text = format!(
        "# `twinloop calibrate geometry {}`: the perpendicular from the eye is {:.2} cm long \
         and meets the screen {:.2} cm right, {:.2} cm up of its centre.\n\
         # Add to the session config (a [display] section may already be there).\n\
         [display.monitor]\n{table}",
        measurements.display(),
        pose.distance_cm,
        pose.eye_x_cm,
        pose.eye_y_cm,
    );
    write(out, &text)?;
    tracing::info!(distance_cm = pose.distance_cm, out = %out.display(), "monitor pose written");
    Ok(())
}

fn read_trace(
    path: &Path,
    sample_rate_hz: Option<f64>,
    t0_s: Option<f64>,
) -> anyhow::Result<latency::Trace> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if !is_npy {
        if sample_rate_hz.is_some() || t0_s.is_some() {
            bail!(
                "{}: a CSV trace has its times in its first column; --sample-rate-hz and --t0-s \
                 are for a .npy trace",
                path.display()
            );
        }
        return Ok(latency::read_trace_csv(path)?);
    }
    let (Some(sample_rate_hz), Some(t0_s)) = (sample_rate_hz, t0_s) else {
        bail!(
            "{}: a .npy trace needs --sample-rate-hz and --t0-s (the rig time of its first \
             sample, s)",
            path.display()
        );
    };
    Ok(latency::Trace {
        samples: latency::read_trace(path)?,
        sample_rate_hz,
        t0_ns: (t0_s * 1e9).round() as i64,
    })
}

fn latency_cmd(
    session: &Path,
    trace: &latency::Trace,
    max_delay_ms: f64,
    out: &Path,
) -> anyhow::Result<()> {
    let dir = SessionDir::open(session)?;
    let manifest = dir.read_manifest()?;
    let display = &manifest.config["display"];
    if display["backend"].as_str().is_none_or(|b| b == "sim") {
        bail!(
            "{}: the session ran on the simulated display (display.backend = \"sim\"): its \
             flips never lit a screen; record one with backend = \"window\" and the photodiode \
             over the patch",
            session.display()
        );
    }
    // Flip times already shifted by a latency measured before: the new delay adds to it.
    let applied_ms = display["latency"]["ms"].as_f64().unwrap_or(0.0);
    let mut reader = dir.open_log()?;
    let mut buf = Vec::new();
    let mut flips = Vec::new();
    while let Some(info) = reader.next_into(&mut buf)? {
        if RecordKind::from_code(info.kind) == Some(RecordKind::Flip) {
            let f = FlipRecord::decode(&buf)?;
            flips.push(Flip {
                t_ns: f.t.as_nanos(),
                onset: f.onset,
            });
        }
    }
    if flips.is_empty() {
        bail!("{}: no flips in the session log", session.display());
    }
    let report = latency::measure(
        &trace.samples,
        trace.sample_rate_hz,
        trace.t0_ns,
        &flips,
        (max_delay_ms * 1e6).round() as i64,
    )
    .with_context(|| format!("matching the photodiode to {}", session.display()))?;
    let total = DisplayLatency {
        ms: applied_ms + report.median_ms,
        jitter_ms: report.jitter_ms,
    };
    if total.ms.is_nan() || total.ms < 0.0 {
        bail!(
            "the light came {:.3} ms before the flips' times (they already carried {applied_ms} \
             ms): the trace's times are not on the rig clock",
            -total.ms
        );
    }
    let mut text = format!(
        "# `twinloop calibrate latency {}`: {} of {} onsets matched to {} photodiode edges; \
         median {:.3} ms, p95 {:.3} ms, jitter {:.3} ms, range {:.3}..{:.3} ms",
        session.display(),
        report.matched,
        report.onsets,
        report.edges,
        report.median_ms,
        report.p95_ms,
        report.jitter_ms,
        report.min_ms,
        report.max_ms,
    );
    if applied_ms != 0.0 {
        write!(
            text,
            " after the {applied_ms} ms the session's flip times already carried"
        )?;
    }
    text += ".\n# Add to the session config (a [display] section may already be there).\n\
             [display.latency]\n";
    text += &toml::to_string(&total)?;
    write(out, &text)?;
    tracing::info!(latency_ms = total.ms, out = %out.display(), "display latency written");
    Ok(())
}
