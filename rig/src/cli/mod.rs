//! The `twinloop` command line. Each subcommand is one file: its clap arguments and its `run`.

mod analyze;
mod bench;
mod bench_clocks;
pub mod bench_design;
mod bench_display;
mod bench_imaging;
mod bench_inception;
mod bench_loop;
mod bench_transfer;
mod calibrate;
mod deconvolve;
mod export;
mod process;
mod render;
mod replay;
mod report;
mod run;
mod sim_movie;
mod sim_rig;
mod sweep;
mod twin;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "twinloop",
    version,
    about = "Real-time closed-loop two-photon rig controller with a digital twin"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a session (default: the embedded simulated session, configs/sim.toml).
    Run(run::RunArgs),
    /// Run the simulated rig alone, as an external bridge to a daemon started with
    /// `source.kind = "bridge"`.
    SimRig(sim_rig::SimRigArgs),
    /// Write the simulated mouse's imaging as a ScanImage acquisition (BigTIFF files and the
    /// truth), to try `process` on.
    SimMovie(sim_movie::SimMovieArgs),
    /// Deconvolve fluorescence traces (cells x frames .npy) into spikes with OASIS.
    Deconvolve(deconvolve::DeconvolveArgs),
    /// Run the imaging pipeline (registration, cells, dF/F, deconvolution) over a TIFF movie.
    Process(process::ProcessArgs),
    /// Render a stimulus or trial list to PNG frames and twin-resolution `.npy` for checking.
    Render(render::RenderArgs),
    /// The digital twin (fnn architecture): predictions from a stimulus clip and behaviour.
    Twin(twin::TwinArgs),
    /// Re-run a logged session's pipeline from its log and check it reproduces the live run.
    Replay(replay::ReplayArgs),
    /// Benchmarks that need the whole system (the closed-loop experiment).
    Bench(bench::BenchArgs),
    /// Write a self-contained HTML report of a logged session (figures inline, no network).
    Report(report::ReportArgs),
    /// Export a logged session to other formats (NWB 2.x).
    Export(export::ExportArgs),
    /// What a twin's readouts say about anatomy: the wiring rule, cell types and areas, on
    /// documented CSV tables (analysis/SCHEMA.md).
    Analyze(analyze::AnalyzeArgs),
    /// Many sessions or benchmark arms from one sweep file, in shards, here or on Slurm.
    Sweep(sweep::SweepArgs),
    /// Calibrate the stimulus monitor from measurements (`gamma`: photometer readings).
    Calibrate(calibrate::CalibrateArgs),
}

/// Entry point of the binary; errors are reported by `main` with their causes.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The imaging kernels' instruction set, chosen and logged once; a bad `TWINLOOP_SIMD`
    // stops every command here with the variable named.
    twinloop_calibration::simd::init()?;
    match cli.command {
        None => run::run(&run::RunArgs::default()),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::SimRig(args)) => sim_rig::run(&args),
        Some(Command::SimMovie(args)) => sim_movie::run(&args),
        Some(Command::Replay(args)) => replay::run(&args),
        Some(Command::Twin(args)) => twin::run(&args),
        Some(Command::Render(args)) => render::run(&args),
        Some(Command::Process(args)) => process::run(&args),
        Some(Command::Deconvolve(args)) => deconvolve::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Report(args)) => report::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Analyze(args)) => analyze::run(&args),
        Some(Command::Calibrate(args)) => calibrate::run(&args),
        Some(Command::Sweep(args)) => sweep::run(&args),
    }
}
