//! The default (`model = "gabor"`) mouse must replay bit for bit what it was before the richer
//! cell models existed: old seeds, sessions and benchmarks depend on it.
//!
//! `fixtures/gabor_seed7.json` was written by this test from the code before `sim::v1` was
//! added (set `TWINLOOP_WRITE_GABOR_FIXTURE=1` to rewrite it, which only makes sense on a
//! commit whose gabor path is known to be the reference).

use super::*;
use serde::{Deserialize, Serialize};

/// What the fixture pins: the first cells' parameters (as serialised, so every f64 is compared
/// through its shortest round-trip text), and per frame the spikes and rates (as f32 bits) of
/// the neural path plus a checksum of one plane's imaging frame.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Replay {
    params_json: Vec<String>,
    spikes: Vec<Vec<u32>>,
    rate_bits: Vec<Vec<u32>>,
    imaging_sums: Vec<u64>,
}

const FIXTURE: &str = "src/sim/fixtures/gabor_seed7.json";

fn geometry() -> SimGeometry {
    SimGeometry {
        imaging_width: 96,
        imaging_height: 96,
        eye_width: 64,
        eye_height: 48,
        ..SimGeometry::default()
    }
}

fn config() -> SimConfig {
    let mut cfg = SimConfig {
        seed: 7,
        neurons: 30,
        ..SimConfig::default()
    };
    cfg.cells.soma_radius_px = [3.0, 4.0];
    cfg
}

/// A drifting grating, a new view every 1/60 s.
fn view(geom: &SimGeometry, t_s: f64) -> Vec<u8> {
    let mut v = Vec::with_capacity(geom.view_width * geom.view_height);
    for r in 0..geom.view_height {
        for c in 0..geom.view_width {
            let (az, el) = geom.view_pixel_deg(r as f64, c as f64);
            let ph = std::f64::consts::TAU * (0.04 * (0.8 * az + 0.6 * el) - 2.0 * t_s);
            v.push((127.5 * (1.0 + ph.cos())).round() as u8);
        }
    }
    v
}

fn record() -> Replay {
    let (cfg, geom) = (config(), geometry());
    let mut neural = SimMouse::new(&cfg, &geom).expect("valid config");
    let mut imaging = SimMouse::new(&cfg, &geom).expect("valid config");
    let n = neural.cells().len();
    let params_json = neural
        .cells()
        .iter()
        .take(8)
        .map(|c| serde_json::to_string(&c.params).expect("params serialise"))
        .collect();
    let (mut spikes, mut rates) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut frame = vec![0u16; geom.imaging_width * geom.imaging_height];
    let mut out = Replay {
        params_json,
        spikes: Vec::new(),
        rate_bits: Vec::new(),
        imaging_sums: Vec::new(),
    };
    for k in 0..30 {
        let t_show = k as f64 / 60.0;
        let shown = view(&geom, t_show);
        neural.show(&shown, RigTime::from_secs_f64(t_show));
        imaging.show(&shown, RigTime::from_secs_f64(t_show));
        if k % 2 == 1 {
            let t = RigTime::from_secs_f64((k + 1) as f64 / 60.0);
            neural.neural_frame(t, &mut spikes, &mut rates);
            out.spikes.push(spikes.iter().map(|&s| s as u32).collect());
            out.rate_bits
                .push(rates.iter().map(|r| r.to_bits()).collect());
            imaging.imaging_frame(t, &mut frame);
            out.imaging_sums
                .push(frame.iter().map(|&p| u64::from(p)).sum());
        }
    }
    out
}

#[test]
fn the_default_gabor_mouse_replays_the_pre_v1_fixture_bit_for_bit() {
    let now = record();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("TWINLOOP_WRITE_GABOR_FIXTURE").is_some() {
        let text = serde_json::to_string(&now).expect("fixture serialises");
        std::fs::write(&path, text).expect("fixture written");
    }
    let text = std::fs::read_to_string(&path).expect("fixture present");
    let then: Replay = serde_json::from_str(&text).expect("fixture parses");
    assert_eq!(now.params_json, then.params_json, "cell parameters changed");
    assert_eq!(now.spikes, then.spikes, "spikes changed");
    assert_eq!(now.rate_bits, then.rate_bits, "rates changed");
    assert_eq!(
        now.imaging_sums, then.imaging_sums,
        "imaging frames changed"
    );
    // The fixture is not trivially empty: cells fire and the grating drives them.
    assert!(then.spikes.iter().flatten().sum::<u32>() > 0);
}
