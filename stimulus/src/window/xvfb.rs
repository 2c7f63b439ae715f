//! A virtual X server (Xvfb) for exercising the stimulus window without a monitor: tests and
//! `twinloop bench display` start one when `DISPLAY` is unset.
//!
//! Xvfb has no real display and so no real vsync: flip intervals measured under it say how the
//! loop behaves on a software rasteriser, not how a monitor paces it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `Xvfb :N`, killed when dropped.
pub struct Xvfb {
    child: Child,
    /// The value for `DISPLAY` (e.g. `":93"`).
    pub display: String,
}

impl Xvfb {
    /// Start `Xvfb` on the first free display number from `first` on, with one screen of
    /// `width` × `height` × 24, and wait (up to 10 s) for its socket.
    pub fn start(first: u32, width: u32, height: u32) -> Result<Xvfb, String> {
        for n in first..first + 50 {
            if Path::new(&format!("/tmp/.X{n}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            {
                continue;
            }
            let mut child = Command::new("Xvfb")
                .arg(format!(":{n}"))
                .args(["-screen", "0", &format!("{width}x{height}x24")])
                .args(["-nolisten", "tcp", "-noreset"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!("cannot start Xvfb ({e}); install it: apt-get install xvfb")
                })?;
            let socket = format!("/tmp/.X11-unix/X{n}");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if Path::new(&socket).exists() {
                    return Ok(Xvfb {
                        child,
                        display: format!(":{n}"),
                    });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    // Lost a race for this number: try the next.
                    tracing::debug!(display = n, %status, "Xvfb exited at start");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(format!(
            "no Xvfb display could start on :{first}..:{}",
            first + 49
        ))
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
