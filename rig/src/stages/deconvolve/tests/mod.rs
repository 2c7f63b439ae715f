//! Tests of the deconvolution stage: `fixtures` against the reference `oasis-deconv`,
//! `online` for the bank's frame-by-frame behaviour.

mod fixtures;
mod online;
