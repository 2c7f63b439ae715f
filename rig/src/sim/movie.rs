//! A standard movie for tests and benchmarks of the imaging pipeline: the mouse watching
//! full-field drifting gratings that turn every second, recorded by the simulated microscope.

use super::{SimGeometry, SimMouse};
use crate::vocab::clock::RigTime;

/// The display refresh the movie's gratings are shown at.
const DISPLAY_HZ: f64 = 60.0;
/// Spatial frequency (cycles/degree) and drift (Hz) of the gratings: mid-range for mouse V1.
const SF_CPD: f64 = 0.04;
const TF_HZ: f64 = 2.0;

impl SimMouse {
    /// `frames` imaging frames at `geom.imaging_rate_hz`, frame-major, while a full-field sine
    /// grating drifts on screen, its direction stepping by 135 degrees every second (so all
    /// eight directions come in eight seconds). Every display flip up to a frame's time is shown
    /// before that frame is taken.
    pub fn record_turning_gratings(&mut self, geom: &SimGeometry, frames: usize) -> Vec<u16> {
        let px = geom.imaging_width * geom.imaging_height;
        let mut view = vec![0u8; geom.view_width * geom.view_height];
        let mut out = vec![0u16; frames * px];
        let mut shown = 0u64;
        for (k, frame) in out.chunks_exact_mut(px).enumerate() {
            let t = k as f64 / geom.imaging_rate_hz;
            while shown as f64 / DISPLAY_HZ <= t {
                let ts = shown as f64 / DISPLAY_HZ;
                let trial = ts.floor();
                grating(geom, 45.0 * ((trial * 3.0) % 8.0), ts - trial, &mut view);
                self.show(&view, RigTime::from_secs_f64(ts));
                shown += 1;
            }
            self.imaging_frame(RigTime::from_secs_f64(t), frame);
        }
        out
    }
}

/// A full-field sine grating drifting along `direction_deg`, `t_s` into its trial, as the mouse
/// sees the view (u8, 128 = mean gray).
fn grating(geom: &SimGeometry, direction_deg: f64, t_s: f64, out: &mut [u8]) {
    let (s, c) = direction_deg.to_radians().sin_cos();
    for (i, px) in out.iter_mut().enumerate() {
        let (row, col) = (i / geom.view_width, i % geom.view_width);
        let (az, el) = geom.view_pixel_deg(row as f64, col as f64);
        let phase = std::f64::consts::TAU * (SF_CPD * (az * c + el * s) - TF_HZ * t_s);
        *px = (127.5 * (1.0 + phase.sin())).round() as u8;
    }
}
