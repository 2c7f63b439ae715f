//! Scan-line delay: a raster-scanning microscope images a frame one line at a time, so a cell
//! near the bottom is seen almost a frame period after one near the top.

/// Rig time (ns) at which row `row` of a frame starting at `frame_start_ns` was scanned:
/// `frame_start + (row / lines) · frame_period`.
///
/// `row` is in pixel-centre coordinates of the frame, the same as a cell's centroid: the top
/// edge of the frame is 0 and line `i` spans `[i, i + 1)`, so a centroid on line `i`'s centre is
/// `i + 0.5`, half a line after that line began. Lines are taken as evenly spaced over the
/// frame period (flyback spread over the lines, as the line clock does); out-of-range rows are
/// clamped to the frame. Within-line (x) timing, ≤ one line period, is ignored.
pub fn scanline_time_ns(frame_start_ns: i64, row: f64, lines: u32, frame_period_ns: i64) -> i64 {
    if lines == 0 || !row.is_finite() {
        return frame_start_ns;
    }
    let fraction = (row / f64::from(lines)).clamp(0.0, 1.0);
    frame_start_ns + (fraction * frame_period_ns as f64).round() as i64
}

/// Seconds after its frame's timestamp at which a cell centred on `row` was scanned: the same
/// rule as [`scanline_time_ns`] (`(row / lines) · frame_period`, clamped to the frame), in
/// seconds and unrounded, for the per-cell scan offsets the selector and consumers add to a
/// frame's time.
pub fn scan_offset_s(row: f64, lines: u32, frame_period_s: f64) -> f64 {
    if lines == 0 || !row.is_finite() {
        return 0.0;
    }
    (row / f64::from(lines)).clamp(0.0, 1.0) * frame_period_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_spread_over_the_frame_period() {
        // 512 lines at 30 Hz.
        let period = 33_333_333;
        assert_eq!(scanline_time_ns(1_000, 0.0, 512, period), 1_000);
        assert_eq!(
            scanline_time_ns(1_000, 256.0, 512, period),
            1_000 + 16_666_667
        );
        assert_eq!(scanline_time_ns(0, 512.0, 512, period), period);
        // A cell centred on line 100 is seen 100.5 lines into the frame.
        let t = scanline_time_ns(0, 100.5, 512, period);
        assert_eq!(t, (100.5 / 512.0 * period as f64).round() as i64);
        // Clamped and degenerate inputs.
        assert_eq!(scanline_time_ns(5, -3.0, 512, period), 5);
        assert_eq!(scanline_time_ns(5, 900.0, 512, period), 5 + period);
        assert_eq!(scanline_time_ns(5, f64::NAN, 512, period), 5);
        assert_eq!(scanline_time_ns(5, 10.0, 0, period), 5);
    }

    #[test]
    fn scan_offsets_agree_with_scanline_times() {
        let period_s = 1.0 / 30.0;
        for row in [0.0, 0.5, 100.5, 255.9, 511.5, 600.0] {
            let ns = scanline_time_ns(0, row, 512, 33_333_333);
            let s = scan_offset_s(row, 512, period_s);
            assert!(
                (s * 1e9 - ns as f64).abs() <= 1.0,
                "row {row}: {s} s vs {ns} ns"
            );
        }
        assert_eq!(scan_offset_s(f64::NAN, 512, period_s), 0.0);
    }
}
