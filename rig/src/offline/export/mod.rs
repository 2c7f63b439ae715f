//! Exports of a recorded session to the formats experimenters' own tools read.
//!
//! - [`nwb`]: Neurodata Without Borders 2.x (HDF5), `twinloop export nwb`; writing needs the
//!   cargo feature `nwb` (the system libhdf5), reading the session does not.

pub mod nwb;
