//! Where a design phase's time goes on this machine: MEI gradient steps (forward with the
//! graph, backward, and the inference fast path for comparison) and the library screen
//! (rendering + budget matching vs the twin's forward), for `targets` MEIs batched through one
//! graph.
//!
//! `cargo run --release -p twinloop-model --example bench_design_phase -- [targets] [units]
//!  [frames] [score_frames] [library] [steps]`
//! Defaults: 100 targets, 300 units, 10 frames (5 scored), a 10,000-candidate library, 3 timed
//! MEI steps. The twin is the embedded sim twin's architecture with synthetic weights at
//! `units` units (speed does not depend on the values). Compare with
//! `model/scripts/bench_design_phase_torch.py`, same shapes, PyTorch.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use twinloop_model::insilico::mei::unit_objective;
use twinloop_model::insilico::{
    Library, MeiOptions, Responder, ScreenOptions, StimulusBudget, TwinResponder, screen,
};
use twinloop_model::{Twin, Weights, pretrained};

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    twinloop_model::confine_candle_pool();
    let args: Vec<String> = std::env::args().collect();
    let targets = arg(&args, 1, 100);
    let units = arg(&args, 2, 300).max(targets);
    let frames = arg(&args, 3, 10);
    let score = arg(&args, 4, 5);
    let library = arg(&args, 5, 10_000);
    let steps = arg(&args, 6, 3).max(1);
    let mut cfg = pretrained::sim_config()?;
    cfg.units = units;
    let dev = Device::Cpu;
    let mut twin = Twin::new(cfg.clone(), &Weights::synthetic(7), &dev)?;
    let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
    println!(
        "twin: sim architecture, {units} units, {h}x{w} stimulus, {frames} frames ({score} \
         scored); {targets} targets; candle threads {}",
        candle_core::utils::get_num_threads()
    );
    let unit_list: Vec<usize> = (0..targets).collect();
    let mut model = TwinResponder::new(&mut twin, frames, score)?;
    let budget = StimulusBudget::low_contrast();
    let x0: Vec<f32> = twinloop_model::insilico::mei::normals(1, targets * h * w)
        .into_iter()
        .map(|z| (budget.mean_luminance + budget.rms_contrast * z) as f32)
        .collect();
    let x = Tensor::from_vec(x0, (targets, 1, h, w), &dev)?;
    let var = Var::from_tensor(&x)?;

    // MEI step parts: forward through the graph (tracked), backward, and the same forward on
    // the untracked fast path; with candle's conv2d in the graph (before) and with the gemm
    // convolution and its gemm backward (after).
    let mut per_step = 0.0;
    for gemm_grad in [false, true] {
        twinloop_model::ops::conv_grad::set_enabled(gemm_grad);
        let (mut fwd, mut bwd, mut fast) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..steps {
            let t = Instant::now();
            let obj = unit_objective(&mut model, var.as_tensor(), &unit_list)?;
            let _ = obj.sum_all()?.to_scalar::<f32>()?;
            fwd.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let grads = obj.sum_all()?.backward()?;
            let g = grads.get(var.as_tensor()).expect("gradient");
            let _ = g.sum_all()?.to_scalar::<f32>()?;
            bwd.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let r = model.responses(&x)?;
            let _ = r.sum_all()?.to_scalar::<f32>()?;
            fast.push(t.elapsed().as_secs_f64());
        }
        let (fwd, bwd, fast) = (median(fwd), median(bwd), median(fast));
        println!(
            "MEI step, {} convs ({targets} images x {frames} frames): forward with graph \
             {fwd:.3} s, backward {bwd:.3} s (backward/forward {:.2}), inference fast path \
             {fast:.3} s (backward/fast {:.2})",
            if gemm_grad { "gemm-backward" } else { "candle" },
            bwd / fwd,
            bwd / fast
        );
        per_step = fwd + bwd;
    }

    // Library screen: rendering + matching alone, then the whole screen.
    let lib = Library {
        seed: 1,
        size: library,
    };
    let t = Instant::now();
    let mut met = 0;
    for i in 0..library {
        met += lib.image(i, h, w, &budget).is_ok() as usize;
    }
    let render = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = screen(
        &mut model,
        &lib,
        &unit_list,
        &ScreenOptions { batch: 100, budget },
    )?;
    let total = t.elapsed().as_secs_f64();
    println!(
        "library screen ({library} candidates, {met} met the budget, {} screened): {total:.1} s, \
         of which render + match {render:.1} s, twin forward {:.1} s ({:.2} ms per candidate)",
        report.screened,
        total - render,
        1e3 * (total - render) / report.screened.max(1) as f64
    );

    let opts = MeiOptions::default();
    for contrasts in [1usize, 2] {
        let mei = contrasts as f64 * opts.steps as f64 * per_step;
        println!(
            "design phase estimate, {contrasts} contrast(s), {} MEI steps each: MEIs {mei:.0} s \
             + screen {:.0} s = {:.0} s ({:.1} min)",
            opts.steps,
            contrasts as f64 * total,
            mei + contrasts as f64 * total,
            (mei + contrasts as f64 * total) / 60.0
        );
    }
    Ok(())
}
