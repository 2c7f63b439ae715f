//! The `v1_rich` cells against their closed forms, the static model against the running
//! simulator, and the true optimum against closed-form optima and dense grating grids.

use super::budget::contrast_of;
use super::*;
use crate::sim::neurons::{BrainState, Neurons};
use crate::sim::receptive_field::RfBank;
use crate::sim::tuning::{CellParams, CellType};
use crate::sim::{SimConfig, SimGeometry};
use std::f64::consts::{SQRT_2, TAU};

fn base(sigma: f64, sf: f64, dir: f64) -> CellParams {
    CellParams {
        rf_azimuth_deg: 0.0,
        rf_elevation_deg: 0.0,
        rf_sigma_deg: sigma,
        preferred_direction_deg: dir,
        preferred_orientation_deg: dir % 180.0,
        spatial_freq_cpd: sf,
        temporal_freq_hz: 2.0,
        phase_deg: 40.0,
        direction_selectivity: 0.0,
        cell_type: CellType::Complex,
        sustained_fraction: 0.2,
        baseline_rate_hz: 1.0,
        max_rate_hz: 15.0,
        c50: 0.1,
        nr_exponent: 2.0,
        run_coupling: 0.0,
        pupil_coupling: 0.0,
        latent_coupling: 0.0,
        f0_photons: 5.0,
        dff_per_spike: 0.2,
        v1: None,
    }
}

fn surround_cell(si: f64, ratio: f64, w_n: f64) -> CellParams {
    let mut p = base(6.0, 0.08, 30.0);
    p.v1 = Some(V1Tuning {
        surround: Some(Surround {
            sigma_deg: ratio * p.rf_sigma_deg,
            weight: surround_weight_for(si, ratio, w_n),
            suppression_index: si,
        }),
        normalisation_weight: w_n,
        conjunction: None,
    });
    p
}

fn conjunction_cell() -> CellParams {
    let mut p = base(8.0, 0.04, 0.0);
    let sigma = 0.6 * p.rf_sigma_deg;
    p.v1 = Some(V1Tuning {
        surround: None,
        normalisation_weight: 0.5,
        conjunction: Some(Conjunction {
            arm_direction_deg: [90.0, 180.0],
            offset_deg: 1.2 * sigma,
            sigma_deg: sigma,
            spatial_freq_cpd: 0.45 / sigma,
            phase_deg: [0.0, 70.0],
        }),
    });
    p
}

/// Contrast image of `f(az, el)` over the view.
fn image(geom: &SimGeometry, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let mut v = Vec::new();
    for r in 0..geom.view_height {
        for c in 0..geom.view_width {
            let (az, el) = geom.view_pixel_deg(r as f64, c as f64);
            v.push(f(az, el));
        }
    }
    v
}

fn grating(dir_deg: f64, sf: f64, phase: f64) -> impl Fn(f64, f64) -> f64 {
    let (s, c) = dir_deg.to_radians().sin_cos();
    move |az, el| (TAU * sf * (az * c + el * s) + phase).cos()
}

/// The drive of a budget-matched version of contrast image `x`.
fn budget_drive(model: &StaticCell, budget: StimBudget, x: &[f64]) -> f64 {
    let mut px: Vec<f64> = x.iter().map(|c| 0.5 + 0.5 * c).collect();
    budget.project(&mut px);
    let (m, c) = StimBudget::measure(&px);
    assert!((m - budget.mean_luminance).abs() < 1e-6 && (c - budget.rms_contrast).abs() < 1e-6);
    model.drive(&contrast_of(&px), None)
}

/// The best drive over a dense grid of full-field gratings (5 deg, 12 frequencies up to the
/// view's Nyquist, 8 phases), each matched to `budget`.
fn best_grating(model: &StaticCell, geom: &SimGeometry, budget: StimBudget) -> f64 {
    let mut best: f64 = 0.0;
    for o in 0..36 {
        for f in 0..12 {
            let sf = 0.01 * (0.26f64 / 0.01).powf(f as f64 / 11.0);
            for p in 0..8 {
                let x = image(geom, grating(o as f64 * 5.0, sf, p as f64 * TAU / 8.0));
                best = best.max(budget_drive(model, budget, &x));
            }
        }
    }
    best
}

/// A view fine enough (0.5 deg pixels, +-60 deg both ways) that discs and envelopes are
/// close to their continuous forms; the default 64x36 view has ~1.9 deg pixels.
fn fine_geometry() -> SimGeometry {
    SimGeometry {
        view_width: 240,
        view_height: 240,
        view_azimuth_deg: (-60.0, 60.0),
        view_elevation_deg: (-60.0, 60.0),
        ..SimGeometry::default()
    }
}

#[test]
fn size_tuning_peaks_at_a_finite_size_and_falls_to_one_minus_si() {
    let (geom, cfg) = (fine_geometry(), SimConfig::default());
    for (si, ratio, w_n) in [(0.4, 2.0, 0.3), (0.6, 2.5, 0.8)] {
        // 2.4 carrier cycles per envelope s.d., so the closed form's many-cycles premise holds
        // (the carrier's double-frequency term is exp(-2 (2 pi 2.4)^2) of a full-field
        // response; it only matters for discs under about one carrier cycle across).
        let mut p = surround_cell(si, ratio, w_n);
        p.spatial_freq_cpd = 0.4;
        let v1 = p.v1.as_ref().expect("rich");
        let w_s = v1.surround.as_ref().expect("surround").weight;
        assert!(w_s > 0.0);
        let model = StaticCell::new(&p, &cfg, &geom);
        let g = 1.0 + w_s + w_n;
        let radii: Vec<f64> = (1..=40).map(|i| i as f64 * 0.25).collect();
        let sigma = p.rf_sigma_deg;
        let gr = grating(p.preferred_direction_deg, p.spatial_freq_cpd, 0.0);
        let measured: Vec<f64> = radii
            .iter()
            .map(|&r| {
                let x = image(&geom, |a, e| {
                    if a.hypot(e) <= r * sigma {
                        gr(a, e)
                    } else {
                        0.0
                    }
                });
                model.response(&x).drive
            })
            .collect();
        let closed: Vec<f64> = radii
            .iter()
            .map(|&r| g * size_tuning_closed_form(r, ratio, w_s, w_n))
            .collect();
        let m_full = model.response(&image(&geom, &gr)).drive;
        // The sustained gain scales every drive alike; the closed form's full field is 1.
        let k = m_full;
        let (m_peak, m_at) = measured
            .iter()
            .enumerate()
            .fold((0.0, 0), |b, (i, &v)| if v > b.0 { (v, i) } else { b });
        let (c_peak, c_at) = closed
            .iter()
            .enumerate()
            .fold((0.0, 0), |b, (i, &v)| if v > b.0 { (v, i) } else { b });
        assert!(m_at + 5 < radii.len(), "si {si}: peak at the largest size");
        assert!(
            (radii[m_at] - radii[c_at]).abs() <= 0.2 * radii[c_at],
            "si {si}: peak at {} s.d., closed form {}",
            radii[m_at],
            radii[c_at]
        );
        assert!(
            (m_full / m_peak - (1.0 - si)).abs() < 0.04,
            "si {si}: full-field / peak {}",
            m_full / m_peak
        );
        for ((r, m), c) in radii.iter().zip(&measured).zip(&closed) {
            if *r < 0.5 {
                // A disc under 6 deg across holds ~2 carrier cycles: outside the premise.
                continue;
            }
            assert!(
                (m / k - c).abs() < 0.06 * c_peak,
                "si {si}, r {r}: drive {} vs closed form {c}",
                m / k
            );
        }
    }
}

/// A cell with a normalisation pool of weight `w_n` and no surround.
fn pool_cell(w_n: f64) -> CellParams {
    let mut p = base(6.0, 0.08, 30.0);
    p.v1 = Some(V1Tuning {
        surround: None,
        normalisation_weight: w_n,
        conjunction: None,
    });
    p
}

#[test]
fn a_plaid_drives_less_than_its_component_by_the_normalisation_factor() {
    let (geom, cfg) = (SimGeometry::default(), SimConfig::default());
    for p in [pool_cell(1.0), surround_cell(0.3, 3.0, 2.0)] {
        let v1 = p.v1.as_ref().expect("rich");
        let w_n = v1.normalisation_weight;
        let w_s = v1.surround.as_ref().map_or(0.0, |s| s.weight);
        let model = StaticCell::new(&p, &cfg, &geom);
        let c = 0.5;
        let pref = grating(30.0, 0.08, 0.3);
        let orth = grating(120.0, 0.08, 1.1);
        let component = model.response(&image(&geom, |a, e| c * pref(a, e))).drive;
        let plaid = model
            .response(&image(&geom, |a, e| c * (pref(a, e) + orth(a, e))))
            .drive;
        // The orthogonal grating adds nothing to the centre or the iso-oriented surround
        // (exp(-9) of either), and doubles the pool's contrast energy: RMS c -> sqrt(2) c.
        let closed = (1.0 + w_s * c + w_n * c) / (1.0 + w_s * c + w_n * SQRT_2 * c);
        assert!(
            (plaid / component - closed).abs() < 0.01,
            "w_n {w_n}, w_s {w_s}: plaid / component {} vs {closed}",
            plaid / component
        );
        // The parameters are chosen so the suppression is large enough to be seen.
        assert!(closed < 0.9, "w_n {w_n}, w_s {w_s}: closed form {closed}");
    }
}

#[test]
fn a_conjunction_cell_prefers_its_corner_to_either_arm_and_to_any_grating() {
    let (geom, cfg) = (SimGeometry::default(), SimConfig::default());
    let p = conjunction_cell();
    let model = StaticCell::new(&p, &cfg, &geom);
    let c =
        p.v1.as_ref()
            .and_then(|v| v.conjunction.clone())
            .expect("conj");
    // Each arm: a Gabor patch at its subunit with the subunit's own carrier.
    let arm = |k: usize| {
        let (az, el, dir) = c.subunit(k, p.rf_azimuth_deg, p.rf_elevation_deg);
        let (s, co) = dir.to_radians().sin_cos();
        let (sig, sf) = (c.sigma_deg, c.spatial_freq_cpd);
        move |a: f64, e: f64| {
            let (u, v) = (a - az, e - el);
            (-(u * u + v * v) / (2.0 * sig * sig)).exp() * (TAU * sf * (u * co + v * s)).cos()
        }
    };
    let budget = StimBudget::grey(0.08);
    let (a, b) = (arm(0), arm(1));
    let corner = budget_drive(&model, budget, &image(&geom, |x, y| a(x, y) + b(x, y)));
    let arm_a = budget_drive(&model, budget, &image(&geom, a));
    let arm_b = budget_drive(&model, budget, &image(&geom, b));
    let gratings = best_grating(&model, &geom, budget);
    assert!(
        corner > 3.0 * arm_a.max(arm_b),
        "corner {corner}, arms {arm_a} {arm_b}"
    );
    assert!(
        corner > 2.0 * gratings,
        "corner {corner}, best grating {gratings}"
    );
}

#[test]
fn the_running_simulator_settles_on_the_static_model() {
    let (geom, cfg) = (SimGeometry::default(), SimConfig::default());
    let mut simple = surround_cell(0.5, 2.5, 0.6);
    simple.cell_type = CellType::Simple;
    simple.direction_selectivity = 0.5;
    let cells = [
        surround_cell(0.4, 2.0, 0.3),
        simple,
        conjunction_cell(),
        base(7.0, 0.05, 80.0),
    ];
    let refs: Vec<&CellParams> = cells.iter().collect();
    let mut bank = RfBank::new(&refs, &geom);
    let mut stage = RichStage::new(&refs, &geom).expect("rich cells");
    let mut neurons = Neurons::new(&refs, cfg.neural_dt_s);
    let mut rates = vec![0f32; cells.len()];
    // A budget-free mixture that drives every cell: a patch on the RF and a weak grating.
    let g = grating(30.0, 0.08, 0.4);
    let g3 = grating(80.0, 0.05, 0.0);
    let view: Vec<u8> = image(&geom, |a, e| {
        let env = (-(a * a + e * e) / 200.0).exp();
        0.5 * env * (TAU * 0.06 * (a - e)).cos() + 0.2 * g(a, e) + 0.25 * g3(a, e)
    })
    .iter()
    .map(|c| (127.5 * (1.0 + c)).round() as u8)
    .collect();
    let n = cells.len();
    let (mut e, mut o, mut gain) = (vec![0.0; n], vec![0.0; n], vec![1.0; n]);
    bank.load_view(&view, (0.0, 0.0));
    bank.project(&mut e, &mut o);
    stage.apply(&view, (0.0, 0.0), &mut e, &mut o, &mut gain);
    for _ in 0..600 {
        neurons.step(&e, &o, Some(&gain), &BrainState::default(), &mut rates);
    }
    for (i, p) in cells.iter().enumerate() {
        let want = static_response(p, &cfg, &geom, &view);
        let got = f64::from(rates[i]);
        assert!(
            (got - want.rate_hz).abs() < 1e-3 * want.rate_hz,
            "cell {i}: simulator {got} Hz, static model {} Hz",
            want.rate_hz
        );
        assert!(
            want.rate_hz > p.baseline_rate_hz + 0.5,
            "cell {i} is not driven"
        );
    }
}

#[test]
fn the_static_gradient_is_the_derivative_of_the_drive() {
    let (geom, cfg) = (SimGeometry::default(), SimConfig::default());
    let mut simple = surround_cell(0.5, 2.0, 0.5);
    simple.cell_type = CellType::Simple;
    for p in [surround_cell(0.4, 2.5, 0.7), simple, conjunction_cell()] {
        let model = StaticCell::new(&p, &cfg, &geom);
        let x = image(&geom, |a, e| {
            0.3 * (-(a * a + e * e) / 300.0).exp() * (0.2 * a + 0.1 * e).cos()
                + 0.05 * (0.3 * e).sin()
        });
        let mut grad = vec![0.0; x.len()];
        let d0 = model.drive(&x, Some(&mut grad));
        let h = 1e-6;
        let (r0, c0) = (geom.view_height / 2, geom.view_width / 2);
        for (dr, dc) in [(0, 0), (1, -2), (-3, 4), (2, 3)] {
            let i = (r0 as i64 + dr) as usize * geom.view_width + (c0 as i64 + dc) as usize;
            let mut xp = x.clone();
            xp[i] += h;
            let fd = (model.drive(&xp, None) - d0) / h;
            assert!(
                (fd - grad[i]).abs() < 1e-4 * grad.iter().fold(0.0f64, |m, g| m.max(g.abs())),
                "pixel {i}: finite difference {fd}, gradient {}",
                grad[i]
            );
        }
    }
}

#[test]
fn a_gabor_cells_optimum_is_its_matched_filter_within_a_few_percent() {
    let (geom, cfg) = (SimGeometry::default(), SimConfig::default());
    let p = base(7.0, 0.06, 20.0);
    let model = StaticCell::new(&p, &cfg, &geom);
    let budget = StimBudget {
        mean_luminance: 0.5,
        rms_contrast: 0.04,
    };
    // Closed form: the largest drive of the pair over zero-mean images of contrast-domain L2
    // norm 2 c sqrt(n) is that norm times the largest singular value of the mean-removed pair.
    let n = geom.view_width * geom.view_height;
    let (mut we, mut wo) = RfBank::from_specs(
        &[crate::sim::receptive_field::GaborSpec::of_cell(&p)],
        &geom,
    )
    .dense_weights(0);
    for w in [&mut we, &mut wo] {
        let m = w.iter().sum::<f64>() / n as f64;
        w.iter_mut().for_each(|v| *v -= m);
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let (a, b, d) = (dot(&we, &we), dot(&wo, &wo), dot(&we, &wo));
    let lambda = 0.5 * (a + b) + (0.25 * (a - b).powi(2) + d * d).sqrt();
    let radius = 2.0 * budget.rms_contrast * (n as f64).sqrt();
    let sustained = crate::sim::neurons::Bandpass::sustained_gain(&p, cfg.neural_dt_s);
    let closed = sustained * radius * lambda.sqrt();
    // The closed-form image stays inside the pixel range, so clipping does not bind.
    let peak = we.iter().fold(0.0f64, |m, v| m.max(v.abs())) * radius / a.sqrt();
    assert!(peak < 1.0, "matched filter peak contrast {peak}");
    let opt = true_optimum(&p, &cfg, &geom, budget, SearchOptions::default()).expect("budget");
    let found = model.drive(&contrast_of(&opt.pixels), None);
    assert!(
        found <= closed * (1.0 + 1e-6),
        "{found} beats the closed form {closed}"
    );
    assert!(found >= 0.97 * closed, "{found} vs closed form {closed}");
    // The best full-field grating: amplitude 2 sqrt(2) c in contrast, unit drive per unit.
    let grating_closed = sustained * 2.0 * SQRT_2 * budget.rms_contrast;
    assert!(opt.best_grating.drive <= 1.01 * grating_closed);
    assert!(found > opt.best_grating.drive);
}

#[test]
fn rich_cells_optima_beat_every_grating_of_a_dense_grid() {
    let (geom, cfg) = (SimGeometry::default(), SimConfig::default());
    let budget = StimBudget::grey(0.1);
    for p in [surround_cell(0.5, 2.5, 0.6), conjunction_cell()] {
        let model = StaticCell::new(&p, &cfg, &geom);
        let opt = true_optimum(&p, &cfg, &geom, budget, SearchOptions::default()).expect("ok");
        let check = budget.shared().check_u8(&opt.image);
        assert!(
            check.within(twinloop_model::insilico::budget::MATCH_TOLERANCE),
            "{check:?}"
        );
        let gratings = best_grating(&model, &geom, budget);
        assert!(
            opt.response.drive > 1.5 * gratings,
            "optimum {} vs best grating {gratings}",
            opt.response.drive
        );
        assert!(opt.response.rate_hz > model.rate_for_drive(gratings));
    }
}

#[test]
fn surround_weights_reproduce_the_drawn_suppression_index() {
    for (si, ratio, w_n) in [(0.1, 2.0, 0.2), (0.45, 2.5, 0.6), (0.8, 3.0, 1.0)] {
        let w = surround_weight_for(si, ratio, w_n);
        assert!((suppression_index(ratio, w, w_n) - si).abs() < 1e-6);
    }
}

#[test]
fn v1_rich_is_opt_in_and_keeps_the_gabor_cells() {
    use crate::sim::SimMouse;
    let geom = SimGeometry {
        imaging_width: 96,
        imaging_height: 96,
        ..SimGeometry::default()
    };
    let mut cfg = SimConfig {
        seed: 3,
        neurons: 200,
        ..SimConfig::default()
    };
    cfg.cells.soma_radius_px = [2.0, 3.0];
    assert_eq!(cfg.cells.model, CellModel::Gabor);
    let gabor = SimMouse::new(&cfg, &geom).expect("valid");
    assert!(gabor.cells().iter().all(|c| c.params.v1.is_none()));
    let toml_text = "model = \"v1_rich\"\n[v1_rich]\nconjunction_fraction = 0.3\n";
    cfg.cells = toml::from_str(toml_text).expect("parses");
    cfg.cells.soma_radius_px = [2.0, 3.0];
    let rich = SimMouse::new(&cfg, &geom).expect("valid");
    let n = rich.cells().len();
    let mut conj = 0;
    for (a, b) in gabor.cells().iter().zip(rich.cells()) {
        let mut stripped = b.params.clone();
        let v1 = stripped.v1.take().expect("every cell is rich");
        assert_eq!(a.params, stripped);
        conj += usize::from(v1.conjunction.is_some());
    }
    // Binomial(n, 0.3): within 4 s.d.
    let sd = (n as f64 * 0.3 * 0.7).sqrt();
    assert!(
        (conj as f64 - 0.3 * n as f64).abs() < 4.0 * sd,
        "{conj} of {n}"
    );
    cfg.cells.v1_rich.suppression_index = [0.2, 1.0];
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("cells.v1_rich.suppression_index"), "{err}");
}
