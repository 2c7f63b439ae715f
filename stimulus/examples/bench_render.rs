//! Offscreen render + readback throughput of a drifting grating (not a timed test).
//!
//! ```text
//! VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json \
//!   cargo run --release -p twinloop-stimulus --example bench_render
//! ```
//! Times, per frame (median over the run), the wgpu renderer at 1920 × 1080 and at the twin's
//! 256 × 144 (linear view, and the 1080p frame once more with spherical correction), the CPU
//! reference at 256 × 144, and — when a Python with numpy is found (`TWINLOOP_PYTHON`, else
//! `python3`) — `stimulus/benches/grating_numpy.py` on the same grating at the same sizes, in
//! the same run, and prints the ratios.

use std::process::Command;
use std::time::Instant;
use twinloop_stimulus::content::Prepared;
use twinloop_stimulus::cpu;
use twinloop_stimulus::geometry::{MonitorGeometry, Projection};
use twinloop_stimulus::gpu::{GpuRenderer, Output};
use twinloop_stimulus::{StimulusSpec, ViewGeometry};

fn view(width: usize, height: usize) -> Projection {
    Projection::Linear(ViewGeometry {
        width,
        height,
        azimuth_deg: (-60.0, 60.0),
        elevation_deg: (-34.0, 34.0),
    })
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2] * 1e3
}

fn bench_gpu(proj: &Projection, frames: usize) -> Result<(f64, String), String> {
    let mut r = GpuRenderer::new(proj.width(), proj.height()).map_err(|e| e.to_string())?;
    let name = format!("{} ({})", r.adapter().name, r.adapter().backend);
    let mut p = Prepared::new(&StimulusSpec::grating(30.0, 0.08, 2.0, 0.9, 0.0))
        .map_err(|e| e.to_string())?;
    let mut out = vec![0u8; proj.pixels()];
    // The first frame compiles pipelines; not timed.
    r.render(&p.frame(0.0), proj, Output::default(), &mut out)
        .map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(frames);
    for k in 0..frames {
        let t = Instant::now();
        r.render(&p.frame(k as f64 / 60.0), proj, Output::default(), &mut out)
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((median_ms(times), name))
}

fn bench_cpu(proj: &Projection, frames: usize) -> f64 {
    let mut p = match Prepared::new(&StimulusSpec::grating(30.0, 0.08, 2.0, 0.9, 0.0)) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut out = vec![0u8; proj.pixels()];
    let times = (0..frames)
        .map(|k| {
            let t = Instant::now();
            cpu::render_content(&p.frame(k as f64 / 60.0), proj, &mut out);
            t.elapsed().as_secs_f64()
        })
        .collect();
    median_ms(times)
}

fn numpy(w: usize, h: usize, frames: usize) -> Option<f64> {
    let python = std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/grating_numpy.py");
    let out = Command::new(&python)
        .args([script, &w.to_string(), &h.to_string(), &frames.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "numpy peer unavailable ({python}): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"median_ms\": ";
    let at = text.find(key)? + key.len();
    text[at..].split([',', '}']).next()?.trim().parse().ok()
}

fn main() {
    let big = view(1920, 1080);
    let small = view(256, 144);
    let sphere = Projection::Monitor(MonitorGeometry::default());
    let report =
        |label: &str, ms: f64| println!("{label:<44} {ms:8.3} ms/frame  {:8.1} frames/s", 1e3 / ms);
    let gpu_big = bench_gpu(&big, 60);
    let gpu_small = bench_gpu(&small, 300);
    let gpu_sphere = bench_gpu(&sphere, 60);
    match (&gpu_big, &gpu_small) {
        (Ok((b, name)), Ok((s, _))) => {
            println!("adapter: {name}");
            report("wgpu render+readback 1920x1080 (linear)", *b);
            if let Ok((m, _)) = &gpu_sphere {
                report("wgpu render+readback 1920x1080 (spherical)", *m);
            }
            report("wgpu render+readback 256x144", *s);
        }
        (Err(e), _) | (_, Err(e)) => println!("no GPU renderer: {e}"),
    }
    let cpu_small = bench_cpu(&small, 50);
    report("CPU reference 256x144", cpu_small);
    let np_big = numpy(1920, 1080, 30);
    let np_small = numpy(256, 144, 300);
    if let Some(ms) = np_big {
        report("numpy 1920x1080", ms);
    }
    if let Some(ms) = np_small {
        report("numpy 256x144", ms);
    }
    if let (Ok((g, _)), Some(n)) = (&gpu_big, np_big) {
        println!("ratio numpy / wgpu at 1920x1080: {:.2}x", n / g);
    }
    if let (Ok((g, _)), Some(n)) = (&gpu_small, np_small) {
        println!("ratio numpy / wgpu at 256x144:   {:.2}x", n / g);
    }
}
