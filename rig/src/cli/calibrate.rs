//! `twinloop calibrate gamma <readings.csv> --out gamma.toml`: photometer readings of the
//! stimulus monitor to the inverse gamma LUT that `[display] gamma` reads.
//!
//! The CSV is `level,luminance` per line (drive level 0–255 shown full screen, luminance in
//! cd/m² from the photometer; a `level,luminance` header and `#` comments are allowed). Measure
//! after the monitor has warmed up (30 min), in the rig's ambient light, at 9 or more levels
//! spread over 0–255. The fit and its residuals are `twinloop_calibration::display::gamma`'s.
//! Geometry and latency calibration (`calibration/src/display/{geometry,latency}.rs`) have no
//! command yet.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::fmt::Write as _;
use std::path::PathBuf;
use twinloop_calibration::display::gamma;

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
}

pub fn run(args: &CalibrateArgs) -> anyhow::Result<()> {
    match &args.what {
        What::Gamma { readings, out } => {
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
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
            if fit.rms_residual_fraction > 0.02 {
                tracing::warn!(
                    rms_percent = 100.0 * fit.rms_residual_fraction,
                    "the power law fits this monitor poorly; check the readings"
                );
            }
            tracing::info!(gamma = fit.gamma, out = %out.display(), "gamma LUT written");
            Ok(())
        }
    }
}
