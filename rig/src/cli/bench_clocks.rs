//! `twinloop bench clocks`: the daemon's online clock fit on the simulator's jittered clocks.
//!
//! The simulated devices' clocks and sync pulse train (`[sim.clocks]` of the embedded
//! `configs/sim.toml`, or the given config) run for `--seconds` of rig time; every tick goes
//! through the daemon's own [`ClockSync`] in the order the bridge sends it, and a sample every
//! frame period of each device is mapped online and compared with the rig time it truly had.
//! Reports, per device, the fit's drift against the simulated one, the residual RMS, the online
//! mapping error (p50/p99/max, after the first fit) and the refit time per tick.

use crate::config::Config;
use crate::sim::clocks::{SimClocks, Tick};
use crate::stages::clocks::{ClockState, ClockSync};
use crate::vocab::protocol::ClockDomain;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct ClocksArgs {
    /// Config whose `[sim.clocks]` and `[clocks]` to use (default: the embedded sim.toml).
    pub config: Option<PathBuf>,
    /// Rig time to simulate, s.
    #[arg(long, default_value_t = 600.0)]
    pub seconds: f64,
    /// Samples per second per device.
    #[arg(long, default_value_t = 30.0)]
    pub sample_hz: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn run(a: &ClocksArgs) -> Result<()> {
    let cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default_sim(),
    };
    let mut sim = cfg.sim.clocks.clone();
    sim.enabled = true;
    let mut clocks = SimClocks::new(&sim, cfg.sim.seed);
    let mut fit = ClockSync::new(cfg.clocks.clone());
    let step = (1e9 / a.sample_hz).round() as i64;
    let end = (a.seconds * 1e9) as i64;
    let mut ticks: Vec<Tick> = Vec::new();
    let mut errors: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut refit_ns: Vec<f64> = Vec::new();
    let mut t = 0i64;
    while t <= end {
        clocks.ticks_until(t, &mut ticks);
        for tick in &ticks {
            let started = Instant::now();
            fit.on_tick(tick.domain, tick.t_ns);
            if tick.domain != ClockDomain::Rig {
                refit_ns.push(started.elapsed().as_nanos() as f64);
            }
        }
        for (i, d) in ClockDomain::DEVICES.into_iter().enumerate() {
            let dev = clocks.stamp(d, t);
            let fitted = fit.state(d) == Some(ClockState::Fitted);
            let (rig, _) = fit.map(d, dev);
            if fitted {
                errors[i].push((rig - t) as f64);
            }
        }
        t += step;
    }
    println!(
        "clock fit on the simulator's clocks: {:.0} s, ticks at {} Hz, {:.0}% missing, {} spurious/s per device",
        a.seconds,
        sim.tick_hz,
        sim.missing_fraction * 100.0,
        sim.spurious_hz
    );
    println!(
        "{:<11} {:>9} {:>11} {:>9} {:>11} {:>10} {:>10} {:>10}",
        "device", "jitter", "drift sim", "fitted", "resid rms", "|err| p50", "p99", "max"
    );
    let summary = fit.summary();
    for (i, d) in ClockDomain::DEVICES.into_iter().enumerate() {
        let Some(dev) = sim.device(d) else { continue };
        let Some(s) = summary.iter().find(|s| s.domain == d) else {
            continue;
        };
        let want = (1.0 / (1.0 + dev.drift_ppm * 1e-6) - 1.0) * 1e6;
        let mut e: Vec<f64> = errors[i].iter().map(|x| x.abs()).collect();
        e.sort_by(f64::total_cmp);
        let (drift, rms) = s
            .fit
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |f| (f.drift_ppm, f.residual_rms_ns));
        println!(
            "{:<11} {:>6.0} us {:>7.2} ppm {:>9.2} {:>8.1} us {:>7.1} us {:>7.1} us {:>7.1} us",
            d.name(),
            dev.jitter_us,
            want,
            drift,
            rms * 1e-3,
            percentile(&e, 0.5) * 1e-3,
            percentile(&e, 0.99) * 1e-3,
            e.last().copied().unwrap_or(f64::NAN) * 1e-3
        );
    }
    refit_ns.sort_by(f64::total_cmp);
    println!(
        "refit per device tick ({} ticks, window {}): p50 {:.1} us, p99 {:.1} us",
        refit_ns.len(),
        cfg.clocks.window_ticks,
        percentile(&refit_ns, 0.5) * 1e-3,
        percentile(&refit_ns, 0.99) * 1e-3
    );
    Ok(())
}
