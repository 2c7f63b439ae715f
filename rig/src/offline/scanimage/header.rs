//! The ScanImage header: the acquisition-wide `SI.* = value` lines (first page's Software tag
//! in ScanImage 2016 and later, the ImageDescription before), read for the layout of the pages
//! and the rates.
//!
//! | key | gives |
//! | --- | --- |
//! | `SI.hChannels.channelSave` (`1`, `[1;2]`, `[1 2]`) | channels saved |
//! | `SI.hStackManager.enable` (2020+), `SI.hFastZ.enable` (before) | whether volumes interleave |
//! | `SI.hStackManager.stackMode` (2020+: `'fast'` / `'slow'`) | a slow stack is not a time series of volumes: one plane |
//! | `SI.hStackManager.actualNumSlices`, else `numSlices` | planes, only when a fast stack is on (the counts linger when it is off) |
//! | `SI.hStackManager.numFramesPerVolumeWithFlyback` - `numFramesPerVolume` | flyback pages closing each volume, discarded |
//! | `SI.hRoiManager.scanFrameRate` | frames per second (every plane and flyback page) |
//! | `SI.hRoiManager.scanVolumeRate` | volumes per second: the rate of one plane's series |
//!
//! The volume rate is `scanVolumeRate` for a volume, `scanFrameRate` for one plane, else the
//! other divided or multiplied by the pages per volume. A value present but unusable (not a
//! number, 0, negative, absurd) is an error naming its key when it decides the layout, and
//! [`Rate::Unusable`] for a rate, so that `--fs` can still stand in.

use thiserror::Error;

/// The slowest volume rate accepted, Hz (100 s a volume: slower is a z-stack, not a movie).
pub const MIN_VOLUME_RATE_HZ: f64 = 0.01;

/// A header value that decides the page layout and cannot be used.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{key} = {value} is not usable ({reason}); pass {flag} to override the header")]
pub struct HeaderError {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
    pub flag: &'static str,
}

/// The volume rate as far as the header tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Rate {
    /// A usable rate, Hz.
    Hz(f64),
    /// No rate in the header.
    Absent,
    /// A rate key with an unusable value: what and why.
    Unusable(String),
}

/// What the header says about the pages. Layout values are kept as results, so that a flag
/// overriding one (`--channels`, `--planes`) makes its error moot.
#[derive(Debug, Clone, PartialEq)]
pub struct SiHeader {
    /// Channels saved, when the header says.
    pub channels: Result<Option<usize>, HeaderError>,
    /// Planes and the flyback pages closing each volume (per channel), when the header says
    /// (1 plane when no fast stack is on).
    pub stack: Result<Option<(usize, usize)>, HeaderError>,
    /// `scanFrameRate`.
    pub frame_rate: Rate,
    /// `scanVolumeRate`.
    pub volume_rate: Rate,
}

/// `key = value` lines, ScanImage style.
pub fn si_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Whether a rate, Hz, is one a movie can have: finite, at least [`MIN_VOLUME_RATE_HZ`], at
/// most `MAX_DEVICE_RATE_HZ`. The error says the range.
pub fn check_rate(hz: f64) -> Result<(), String> {
    let max = crate::vocab::section::MAX_DEVICE_RATE_HZ;
    if hz.is_finite() && (MIN_VOLUME_RATE_HZ..=max).contains(&hz) {
        Ok(())
    } else {
        Err(format!(
            "a rate must be a number of Hz from {MIN_VOLUME_RATE_HZ} to {max}"
        ))
    }
}

/// Channels saved, from `[1;2]`, `[1 2]`, `1` or `[1,2,3]`.
fn count_channels(value: &str) -> usize {
    value
        .trim_matches(|c| c == '[' || c == ']')
        .split([';', ',', ' '])
        .filter(|s| !s.trim().is_empty())
        .count()
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("true" | "1"))
}

/// A page count from the header: a whole number from 1 to 64.
fn count(text: &str, key: &'static str, flag: &'static str) -> Result<Option<usize>, HeaderError> {
    let Some(v) = si_value(text, key) else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        // MATLAB writes whole numbers without a point; `3.0` is accepted, `2.5` is not.
        Ok(n) if n.fract() == 0.0 && (1.0..=64.0).contains(&n) => Ok(Some(n as usize)),
        _ => Err(HeaderError {
            key,
            value: v.to_string(),
            reason: "must be a whole number from 1 to 64".into(),
            flag,
        }),
    }
}

/// A rate key: absent, usable, or unusable with the reason.
fn rate(text: &str, key: &'static str) -> Rate {
    let Some(v) = si_value(text, key) else {
        return Rate::Absent;
    };
    match v.parse::<f64>() {
        Ok(hz) => match check_rate(hz) {
            Ok(()) => Rate::Hz(hz),
            Err(why) => Rate::Unusable(format!("{key} = {v}: {why}")),
        },
        Err(_) => Rate::Unusable(format!("{key} = {v}: not a number")),
    }
}

impl SiHeader {
    /// Reads the `SI.*` lines of `text` (none: every field `None` or absent).
    pub fn parse(text: &str) -> SiHeader {
        let channels = match si_value(text, "SI.hChannels.channelSave") {
            None => Ok(None),
            Some(v) => match count_channels(v) {
                n @ 1..=64 => Ok(Some(n)),
                n => Err(HeaderError {
                    key: "SI.hChannels.channelSave",
                    value: v.to_string(),
                    reason: format!("{n} channels; 1 to 64 can be read"),
                    flag: "--channels",
                }),
            },
        };
        let slow = si_value(text, "SI.hStackManager.stackMode")
            .is_some_and(|m| m.trim_matches(['\'', '"']).eq_ignore_ascii_case("slow"));
        let stack_on = (truthy(si_value(text, "SI.hStackManager.enable")) && !slow)
            || truthy(si_value(text, "SI.hFastZ.enable"));
        let stack = if stack_on {
            stack_layout(text)
        } else if text.contains("SI.") {
            Ok(Some((1, 0)))
        } else {
            Ok(None)
        };
        SiHeader {
            channels,
            stack,
            frame_rate: rate(text, "SI.hRoiManager.scanFrameRate"),
            volume_rate: rate(text, "SI.hRoiManager.scanVolumeRate"),
        }
    }

    /// The rate of one plane's series when a volume is `pages` pages per channel (planes and
    /// flyback): `scanFrameRate` for one page, else `scanVolumeRate`, else `scanFrameRate`
    /// divided by the pages.
    pub fn plane_rate(&self, pages: usize) -> Rate {
        match (pages, &self.volume_rate, &self.frame_rate) {
            (1, _, Rate::Hz(f)) => Rate::Hz(*f),
            (_, Rate::Hz(v), _) => Rate::Hz(*v),
            (n, _, Rate::Hz(f)) => Rate::Hz(f / n as f64),
            (_, Rate::Unusable(why), _) | (_, _, Rate::Unusable(why)) => {
                Rate::Unusable(why.clone())
            }
            _ => Rate::Absent,
        }
    }
}

/// A fast stack's planes and flyback pages.
fn stack_layout(text: &str) -> Result<Option<(usize, usize)>, HeaderError> {
    let planes = match count(text, "SI.hStackManager.actualNumSlices", "--planes")? {
        Some(n) => Some(n),
        None => count(text, "SI.hStackManager.numSlices", "--planes")?,
    };
    let with = count(
        text,
        "SI.hStackManager.numFramesPerVolumeWithFlyback",
        "--planes",
    )?;
    let without = count(text, "SI.hStackManager.numFramesPerVolume", "--planes")?;
    let flyback = match (with, without) {
        (Some(w), Some(n)) if w >= n => w - n,
        (Some(w), Some(n)) => {
            return Err(HeaderError {
                key: "SI.hStackManager.numFramesPerVolumeWithFlyback",
                value: w.to_string(),
                reason: format!("fewer than numFramesPerVolume = {n}"),
                flag: "--planes",
            });
        }
        _ => 0,
    };
    Ok(planes.map(|p| (p, flyback)))
}

/// The volume rate from per-page `frameTimestamps_sec` of one plane and channel, in page
/// order: one over the median interval, so a dropped or late frame does not move it.
pub fn rate_from_timestamps(stamps_s: &[f64]) -> Result<f64, String> {
    let mut steps: Vec<f64> = stamps_s.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return Err(format!(
            "{} frame timestamp(s) of the processed plane; two volumes are needed",
            stamps_s.len()
        ));
    }
    steps.sort_unstable_by(f64::total_cmp);
    let step = steps[steps.len() / 2];
    let hz = 1.0 / step;
    check_rate(hz).map_err(|why| {
        format!(
            "frameTimestamps_sec step {step} s (median of {} steps): {why}",
            steps.len()
        )
    })?;
    Ok(hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines ScanImage 2023 writes for a 3-plane fast stack with a flyback frame (values
    /// as in its headers: MATLAB arrays, `true`/`false`, quoted enums).
    const SI_2023_VOLUME: &str = "SI.LINE_FORMAT_VERSION = 1
SI.VERSION_MAJOR = 2023
SI.VERSION_MINOR = 1
SI.hChannels.channelSave = [1;2]
SI.hChannels.channelsActive = [1;2]
SI.hFastZ.enableFieldCurveCorr = false
SI.hFastZ.flybackTime = 0.015
SI.hRoiManager.linesPerFrame = 512
SI.hRoiManager.pixelsPerLine = 512
SI.hRoiManager.scanFrameRate = 30.0206
SI.hRoiManager.scanVolumeRate = 7.50515
SI.hStackManager.actualNumSlices = 3
SI.hStackManager.enable = true
SI.hStackManager.numFramesPerVolume = 3
SI.hStackManager.numFramesPerVolumeWithFlyback = 4
SI.hStackManager.numSlices = 11
SI.hStackManager.stackMode = 'fast'
";

    #[test]
    fn a_2023_fast_stack_gives_planes_flyback_channels_and_the_volume_rate() {
        let h = SiHeader::parse(SI_2023_VOLUME);
        // actualNumSlices, not the stale numSlices.
        assert_eq!(
            (h.channels.clone(), h.stack.clone()),
            (Ok(Some(2)), Ok(Some((3, 1))))
        );
        assert_eq!(h.frame_rate, Rate::Hz(30.0206));
        assert_eq!(h.plane_rate(4), Rate::Hz(7.50515));
        // Without scanVolumeRate: the frame rate over the 4 pages of a volume.
        let no_volume = SI_2023_VOLUME.replace("SI.hRoiManager.scanVolumeRate = 7.50515\n", "");
        assert_eq!(
            SiHeader::parse(&no_volume).plane_rate(4),
            Rate::Hz(30.0206 / 4.0)
        );
    }

    #[test]
    fn slice_counts_left_from_a_stack_that_is_off_are_ignored() {
        // ScanImage 2020, one plane: the stack is off but numSlices keeps its last value.
        let text = "SI.VERSION_MAJOR = 2020
SI.hChannels.channelSave = 1
SI.hRoiManager.scanFrameRate = 15.0253
SI.hRoiManager.scanVolumeRate = 15.0253
SI.hStackManager.enable = false
SI.hStackManager.numSlices = 5
SI.hStackManager.actualNumSlices = 5
";
        let h = SiHeader::parse(text);
        assert_eq!(
            (h.channels.clone(), h.stack.clone()),
            (Ok(Some(1)), Ok(Some((1, 0))))
        );
        assert_eq!(h.plane_rate(1), Rate::Hz(15.0253));
        // A slow stack (motor steps) is not a movie of volumes either.
        let slow = text.replace("enable = false", "enable = true").replace(
            "SI.VERSION_MAJOR = 2020\n",
            "SI.hStackManager.stackMode = 'slow'\n",
        );
        assert_eq!(SiHeader::parse(&slow).stack, Ok(Some((1, 0))));
        // Before 2020 the fast stack was hFastZ's.
        let old = "SI.hFastZ.enable = 1\nSI.hStackManager.numSlices = 4\n\
                   SI.hRoiManager.scanFrameRate = 40\n";
        let h = SiHeader::parse(old);
        assert_eq!(
            (h.stack.clone(), h.plane_rate(4)),
            (Ok(Some((4, 0))), Rate::Hz(10.0))
        );
    }

    #[test]
    fn unusable_rates_are_named_and_left_for_fs() {
        for bad in ["0", "-30", "NaN", "Inf", "1e9", "0.000001", "thirty", "[]"] {
            let text =
                format!("SI.hChannels.channelSave = 1\nSI.hRoiManager.scanFrameRate = {bad}\n");
            let h = SiHeader::parse(&text);
            assert_eq!(
                h.stack,
                Ok(Some((1, 0))),
                "a bad rate does not stop the layout"
            );
            match &h.plane_rate(1) {
                Rate::Unusable(why) => assert!(
                    why.contains("SI.hRoiManager.scanFrameRate") && why.contains(bad),
                    "{why}"
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
        // A bad volume rate falls back to the frame rate over the pages.
        let text = SI_2023_VOLUME.replace("scanVolumeRate = 7.50515", "scanVolumeRate = NaN");
        assert_eq!(
            SiHeader::parse(&text).plane_rate(4),
            Rate::Hz(30.0206 / 4.0)
        );
        let none = SiHeader::parse("no header here");
        assert_eq!(
            (none.stack.clone(), none.plane_rate(1)),
            (Ok(None), Rate::Absent)
        );
    }

    #[test]
    fn unusable_layout_values_are_errors_naming_the_key_and_the_flag() {
        let cases = [
            (
                "SI.hStackManager.actualNumSlices = 3",
                "SI.hStackManager.actualNumSlices = 0",
            ),
            (
                "SI.hStackManager.actualNumSlices = 3",
                "SI.hStackManager.actualNumSlices = NaN",
            ),
            (
                "SI.hStackManager.actualNumSlices = 3",
                "SI.hStackManager.actualNumSlices = 2.5",
            ),
            (
                "SI.hStackManager.actualNumSlices = 3",
                "SI.hStackManager.actualNumSlices = 1000",
            ),
            (
                "numFramesPerVolumeWithFlyback = 4",
                "numFramesPerVolumeWithFlyback = 2",
            ),
            (
                "SI.hChannels.channelSave = [1;2]",
                "SI.hChannels.channelSave = []",
            ),
        ];
        for (from, to) in cases {
            let text = SI_2023_VOLUME.replace(from, to);
            let h = SiHeader::parse(&text);
            let e = h
                .stack
                .and(h.channels.map(|_| None::<(usize, usize)>))
                .unwrap_err();
            let msg = e.to_string();
            let key = to.split(" = ").next().unwrap();
            assert!(msg.contains(key) && msg.contains("pass --"), "{msg}");
        }
    }

    #[test]
    fn timestamps_give_the_median_rate_and_refuse_nonsense() {
        // 7.5 Hz volumes with one late frame and one dropped.
        let mut t: Vec<f64> = (0..20).map(|k| k as f64 / 7.5).collect();
        t[5] += 0.03;
        t.remove(12);
        let hz = rate_from_timestamps(&t).unwrap();
        assert!((hz - 7.5).abs() < 1e-9, "{hz}");
        for bad in [
            vec![1.0],
            vec![],
            vec![0.0, 0.0, 0.0],
            vec![3.0, 2.0, 1.0],
            vec![0.0, 1e3],
        ] {
            let e = rate_from_timestamps(&bad).unwrap_err();
            assert!(
                e.contains("timestamp") || e.contains("frameTimestamps_sec"),
                "{e}"
            );
        }
    }
}
