//! `twinloop sim-rig`: the simulated rig as a separate process, speaking the wire protocol to a
//! daemon (or to any tool that speaks it).

use super::run::load_config;
use crate::sim::SimMouse;
use crate::sim::bridge::{self, SimRigOptions};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct SimRigArgs {
    /// Rig config (TOML) for geometry, rates and the `[sim]` section; default configs/sim.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The daemon's ingest (PULL) endpoint.
    #[arg(long, default_value = "tcp://127.0.0.1:5555")]
    pub ingest: String,
    /// The daemon's publish (PUB) endpoint.
    #[arg(long, default_value = "tcp://127.0.0.1:5556")]
    pub publish: String,
    /// Seconds of rig time to send (default: the config's `session.duration_s`).
    #[arg(long)]
    pub duration: Option<f64>,
    /// As fast as the daemon acknowledges, not in real time.
    #[arg(long)]
    pub fast: bool,
    /// Where to write the simulator's ground truth.
    #[arg(long, default_value = "sim-truth")]
    pub truth_dir: PathBuf,
}

pub fn run(args: &SimRigArgs) -> anyhow::Result<()> {
    let cfg = load_config(args.config.as_deref())?;
    let geometry = cfg.sim_geometry();
    let mouse = SimMouse::with_planes(&cfg.sim, &geometry, cfg.imaging.planes.into())?;
    let opts = SimRigOptions {
        ingest: args.ingest.clone(),
        publish: args.publish.clone(),
        duration_s: args.duration.unwrap_or(cfg.session.duration_s),
        realtime: !args.fast && cfg.session.realtime,
        flow_window: cfg.source.flow_window,
        geometry,
        truth_dir: Some(args.truth_dir.clone()),
        view_timeout: Duration::from_secs(2),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(bridge::run(mouse, opts))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
