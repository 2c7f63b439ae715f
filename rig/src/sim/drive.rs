//! What sets a plane's firing rates: the seam between what the mouse sees and does, and its
//! cells' spikes.
//!
//! Each neural substep the simulator asks the plane's [`CellDrive`] for every cell's rate; the
//! spikes, calcium, microscope and truth downstream are the same whatever the drive. Two drives:
//! - [`Population`]: the simulated V1 cells (receptive fields, `v1_rich` stage, temporal filters,
//!   nonlinearity, state gain; `receptive_field`, `v1`, `neurons`);
//! - `TwinCells` (`twin_cells.rs`): a fitted twin's predicted rates, one unit per cell
//!   (`source.kind = "twin"`).

use super::behaviour::Behaviour;
use super::neurons::{BrainState, Neurons};
use super::receptive_field::RfBank;
use super::tuning::CellParams;
use super::{SimGeometry, v1};

/// One neural substep, as every plane's cells see it.
pub(crate) struct Substep<'a> {
    /// Rig time at the end of the substep, ns.
    pub t_ns: i64,
    /// The view on screen during the substep (`view_height * view_width`, u8).
    pub view: &'a [u8],
    /// Where the eye looks (azimuth, elevation), deg; (0, 0) when gaze does not shift the view.
    pub gaze_deg: (f64, f64),
    /// The view or the gaze changed enough since the last filtering to filter again.
    pub refilter: bool,
    /// Running, pupil and the shared latent.
    pub state: BrainState,
}

/// Sets every cell's firing rate for one substep.
pub(crate) trait CellDrive: Send {
    /// The rates before the first substep, Hz.
    fn resting_rates(&self, rates_hz: &mut [f32]);

    /// Each cell's rate (Hz) during `step`. `behaviour` is the mouse's, for drives that read it
    /// at times of their own (at or before `step.t_ns`).
    fn rates(&mut self, step: &Substep<'_>, behaviour: &mut Behaviour, rates_hz: &mut [f32]);

    /// Why the drive could not set rates, once it could not (the simulator's frame API has no
    /// error path: the bridge checks this and stops the session).
    fn failure(&self) -> Option<&str> {
        None
    }

    /// The last frame's counts per cell when the drive sets them itself (a twin with recorded
    /// noise, for fast mode's frames), instead of the Poisson spikes drawn from its rates.
    fn frame_counts(&self) -> Option<&[u32]> {
        None
    }
}

/// The simulated V1 population: spatial filtering of the gaze-shifted view, the `v1_rich`
/// stage when configured, then each cell's temporal filter, nonlinearity and state gain.
pub(crate) struct Population {
    rf: RfBank,
    /// Surround, pool and conjunction stage of `v1_rich` cells (`None` for `gabor`).
    rich: Option<v1::RichStage>,
    neurons: Neurons,
    drive_even: Vec<f32>,
    drive_odd: Vec<f32>,
    /// Each cell's normalisation gain from `rich`.
    drive_gain: Vec<f32>,
    baseline_hz: Vec<f32>,
}

impl Population {
    pub(crate) fn new(params: &[&CellParams], geom: &SimGeometry, dt_s: f64) -> Population {
        let n = params.len();
        Population {
            rf: RfBank::new(params, geom),
            rich: v1::RichStage::new(params, geom),
            neurons: Neurons::new(params, dt_s),
            drive_even: vec![0.0; n],
            drive_odd: vec![0.0; n],
            drive_gain: vec![1.0; n],
            baseline_hz: params.iter().map(|p| p.baseline_rate_hz as f32).collect(),
        }
    }
}

impl CellDrive for Population {
    /// Before the first substep a cell fires at its spontaneous rate.
    fn resting_rates(&self, rates_hz: &mut [f32]) {
        rates_hz.copy_from_slice(&self.baseline_hz);
    }

    fn rates(&mut self, step: &Substep<'_>, _behaviour: &mut Behaviour, rates_hz: &mut [f32]) {
        if step.refilter {
            self.rf.load_view(step.view, step.gaze_deg);
            self.rf.project(&mut self.drive_even, &mut self.drive_odd);
            if let Some(r) = &mut self.rich {
                r.apply(
                    step.view,
                    step.gaze_deg,
                    &mut self.drive_even,
                    &mut self.drive_odd,
                    &mut self.drive_gain,
                );
            }
        }
        let gain = self.rich.as_ref().map(|_| &self.drive_gain[..]);
        self.neurons.step(
            &self.drive_even,
            &self.drive_odd,
            gain,
            &step.state,
            rates_hz,
        );
    }
}
