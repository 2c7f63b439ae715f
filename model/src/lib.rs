//! twinloop-model: the digital twin — an fnn-compatible (Wang et al. 2025, `cajal/fnn`) visual
//! cortex model on candle, streaming one frame at a time, with weights, metrics and a CLI seam.
//!
//! # Layout
//! Data flows through the modules in this order:
//! - [`config`]: the architecture's shapes (default: fnn's released network).
//! - [`weights`]: safetensors with fnn's state-dict names, checked tensor by tensor.
//! - [`device`]: CPU (reference) or CUDA behind the `cuda` feature, with fallback.
//! - [`ops`]: custom ops candle lacks (bilinear `grid_sample`, forward + backward).
//! - [`layers`]: standardised causal convolutions, linears, inter-group convs, group concat.
//! - [`perspective`]: pupil → rotation → ray tracing → retina image (shared by all streams).
//! - [`modulation`]: pupil size and running → state (per stream).
//! - [`core`]: dense causal feedforward + conv-LSTM with grouped attention (per stream).
//! - [`readout`]: per-neuron position and feature weights (per stream).
//! - [`network`]: [`Twin`], streams averaged in log space, `exp`.
//! - [`metrics`]: CC_abs, CC_max, CC_norm, single-trial correlation, FEVE.
//! - [`pretrained`]: the embedded default twin (a small core pretrained on simulated mice).
//! - [`frozen_core`]: what the closed loop's readouts read, behind one trait: an fnn core
//!   from weights ([`frozen_core::FnnCore`]) or the energy bank.
//! - [`energy_core`]: the baseline frozen core (a fixed motion-energy bank) the pretrained core
//!   ([`pretrained`], the loop's default) is measured against.
//! - [`design`]: the online readout posterior (Laplace, Poisson) and the information criterion
//!   that chooses the next stimulus.
//! - [`insilico`]: in-silico experiments: scoring a twin on a recording, tuning curves from
//!   drifting gratings, most-exciting inputs by gradient ascent on the stimulus.
//! - [`train`]: recordings the twin learns from and is scored on; the transfer fit.
//! - [`cli`]: `twin predict` as a library function.

pub mod cli;
pub mod config;
pub mod core;
pub mod design;
pub mod device;
pub mod embeddings;
pub mod energy_core;
pub mod error;
pub mod frozen_core;
pub mod insilico;
pub mod layers;
pub mod metrics;
pub mod modulation;
pub mod network;
pub mod ops;
pub mod perspective;
pub mod pretrained;
pub mod readout;
pub mod train;
pub mod weights;

/// The tensor types of the public API (weights maps, devices), so callers need not depend on
/// candle themselves.
pub use candle_core::{Device, Tensor};
pub use config::TwinConfig;
pub use device::{DevicePreference, confine_candle_pool, select_device};
pub use error::{ModelError, Result};
pub use network::{FrameOutput, Twin};
pub use weights::Weights;
