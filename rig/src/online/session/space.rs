//! Is there room for the session? Checked at start against the rate the config implies, so a
//! disk that cannot hold the planned session is a warning before it starts, not a surprise
//! 25 s in.

use crate::config::Config;
use std::path::Path;

/// Bytes per second the session log grows by, roughly: raw frames when recorded, plus about
/// 50 kB/s of activity, flips, behaviour and decisions (measured on the simulated rig).
pub fn expected_log_rate(cfg: &Config) -> f64 {
    let mut rate = 50e3;
    if cfg.session.record_frames {
        let two_photon = f64::from(cfg.imaging.width) * f64::from(cfg.imaging.height) * 2.0;
        let channels = f64::from(cfg.imaging.channels.max(1));
        rate += two_photon * channels * cfg.imaging.frame_rate_hz;
        rate += f64::from(cfg.eye.width) * f64::from(cfg.eye.height) * cfg.eye.frame_rate_hz;
    }
    rate
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` writes into the zeroed struct we own; the path is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Warns, naming the directory and both figures, when less than the planned session fits.
pub fn check(dir: &Path, cfg: &Config) {
    let rate = expected_log_rate(cfg);
    let needed = rate * cfg.session.duration_s;
    match free_bytes(dir) {
        Some(free) if (free as f64) < needed => tracing::warn!(
            dir = %dir.display(),
            free_mb = free as f64 / 1e6,
            needed_mb = needed / 1e6,
            fits_s = free as f64 / rate,
            "not enough disk for the planned session: recording stops when the disk is full"
        ),
        Some(_) => {}
        None => tracing::warn!(dir = %dir.display(), "cannot tell the free disk space"),
    }
}
