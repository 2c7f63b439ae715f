//! Synthetic tests: an analytic scene (plane waves, cell-like blobs, puncta) rendered exactly at
//! any displacement, so shifted frames need no interpolation.

use super::*;

/// splitmix64: small, deterministic, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub(crate) fn normal(&mut self) -> f32 {
        let u1 = self.uniform(1e-7, 1.0);
        let u2 = self.uniform(0.0, 1.0);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

struct Blob {
    cy: f32,
    cx: f32,
    sigma: f32,
    amp: f32,
}

/// A two-photon-like field of view defined everywhere: smooth background waves, cells
/// (sigma 2.5-4 px) and fine puncta (sigma 1-1.6 px).
pub(crate) struct Scene {
    base: f32,
    waves: Vec<(f32, f32, f32, f32)>,
    blobs: Vec<Blob>,
}

impl Scene {
    pub(crate) fn new(h: usize, w: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let margin = 24.0;
        let waves = (0..12)
            .map(|_| {
                let wavelength = rng.uniform(10.0, 60.0);
                let angle = rng.uniform(0.0, std::f32::consts::TAU);
                let k = std::f32::consts::TAU / wavelength;
                (
                    k * angle.sin(),
                    k * angle.cos(),
                    rng.uniform(0.0, 6.3),
                    rng.uniform(15.0, 50.0),
                )
            })
            .collect();
        let area = (h as f32 + 2.0 * margin) * (w as f32 + 2.0 * margin);
        let mut blobs = Vec::new();
        for (count, (s_lo, s_hi), (a_lo, a_hi)) in [
            (area / 500.0, (2.5, 4.0), (250.0, 900.0)),
            (area / 120.0, (1.0, 1.6), (60.0, 200.0)),
        ] {
            for _ in 0..count as usize {
                blobs.push(Blob {
                    cy: rng.uniform(-margin, h as f32 + margin),
                    cx: rng.uniform(-margin, w as f32 + margin),
                    sigma: rng.uniform(s_lo, s_hi),
                    amp: rng.uniform(a_lo, a_hi),
                });
            }
        }
        Self {
            base: 300.0,
            waves,
            blobs,
        }
    }

    /// `out(y, x) = scene(y - d_y(y, x), x - d_x(y, x))`: the scene moved by the field `d`
    /// (`|d| <= max_disp`).
    pub(crate) fn render(
        &self,
        h: usize,
        w: usize,
        field: impl Fn(f32, f32) -> (f32, f32),
        max_disp: f32,
    ) -> Vec<f32> {
        let mut src_y = vec![0.0f32; h * w];
        let mut src_x = vec![0.0f32; h * w];
        let mut out = vec![self.base; h * w];
        for y in 0..h {
            for x in 0..w {
                let (dy, dx) = field(y as f32, x as f32);
                let (sy, sx) = (y as f32 - dy, x as f32 - dx);
                src_y[y * w + x] = sy;
                src_x[y * w + x] = sx;
                out[y * w + x] += self
                    .waves
                    .iter()
                    .map(|&(ky, kx, ph, a)| a * (ky * sy + kx * sx + ph).sin())
                    .sum::<f32>();
            }
        }
        for b in &self.blobs {
            let r = 4.0 * b.sigma + max_disp + 1.0;
            let (y0, y1) = (
                (b.cy - r).floor().max(0.0) as usize,
                ((b.cy + r).ceil().max(0.0) as usize).min(h),
            );
            let (x0, x1) = (
                (b.cx - r).floor().max(0.0) as usize,
                ((b.cx + r).ceil().max(0.0) as usize).min(w),
            );
            let k = -0.5 / (b.sigma * b.sigma);
            for y in y0..y1 {
                for x in x0..x1 {
                    let i = y * w + x;
                    let (ey, ex) = (src_y[i] - b.cy, src_x[i] - b.cx);
                    out[i] += b.amp * (k * (ey * ey + ex * ex)).exp();
                }
            }
        }
        out
    }

    pub(crate) fn shifted(&self, h: usize, w: usize, dy: f32, dx: f32) -> Vec<f32> {
        self.render(h, w, |_, _| (dy, dx), dy.abs().max(dx.abs()))
    }
}

/// Shot-like noise (sd `k * sqrt(v)`), rounded to u16.
pub(crate) fn noisy_u16(img: &[f32], k: f32, rng: &mut Rng) -> Vec<u16> {
    img.iter()
        .map(|&v| {
            (v + k * v.max(0.0).sqrt() * rng.normal())
                .round()
                .clamp(0.0, 65535.0) as u16
        })
        .collect()
}

fn rms(errs: &[f32]) -> f32 {
    (errs.iter().map(|e| e * e).sum::<f32>() / errs.len() as f32).sqrt()
}

fn rigid_params() -> RegistrationParams {
    RegistrationParams {
        nonrigid: false,
        ..Default::default()
    }
}

#[test]
fn rigid_recovers_known_subpixel_shifts_within_a_tenth_of_a_pixel() {
    let (h, w) = (256, 256);
    let scene = Scene::new(h, w, 1);
    let reference = scene.shifted(h, w, 0.0, 0.0);
    let mut reg = Registrar::new(&reference, h, w, &rigid_params()).expect("registrar");
    let mut rng = Rng::new(2);
    let mut out = vec![0.0; h * w];
    let mut errs = Vec::new();
    for _ in 0..16 {
        let (dy, dx) = (rng.uniform(-12.0, 12.0), rng.uniform(-12.0, 12.0));
        let frame = noisy_u16(&scene.shifted(h, w, dy, dx), 1.0, &mut rng);
        let r = reg.register(&frame, &mut out).expect("register");
        assert!(r.flags.is_clean(), "{r:?}");
        errs.push(r.rigid_dy - dy);
        errs.push(r.rigid_dx - dx);
    }
    let e = rms(&errs);
    eprintln!(
        "rigid shift error vs truth: {e:.4} px RMS over {} axes",
        errs.len()
    );
    assert!(e < 0.1, "{e}");
}

#[test]
fn registering_the_reference_to_itself_gives_zero_shift() {
    let (h, w) = (256, 256);
    let scene = Scene::new(h, w, 3);
    let reference = scene.shifted(h, w, 0.0, 0.0);
    let mut reg =
        Registrar::new(&reference, h, w, &RegistrationParams::default()).expect("registrar");
    let mut out = vec![0.0; h * w];
    let r = reg.register(&reference, &mut out).expect("register");
    assert_eq!((r.rigid_dy, r.rigid_dx), (0.0, 0.0));
    assert!((r.quality - 1.0).abs() < 1e-4, "{r:?}");
    assert_eq!(r.n_blocks, 9);
    let blocks = reg.block_shifts().expect("nonrigid on");
    // The frame is tapered and the reference is not (as in suite2p), so a block may land one
    // subpixel step off zero.
    assert!(
        blocks
            .dy
            .iter()
            .chain(blocks.dx)
            .all(|&v| v.abs() <= 0.1 + 1e-6),
        "{blocks:?}"
    );
    let rigid = Registrar::new(&reference, h, w, &rigid_params())
        .expect("rigid")
        .register(&reference, &mut out);
    assert_eq!(rigid.map(|r| (r.rigid_dy, r.rigid_dx)), Ok((0.0, 0.0)));
    let worst = out
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-3, "{worst}");
}

#[test]
fn piecewise_rigid_recovers_a_smooth_field_better_than_rigid() {
    let (h, w) = (512, 512);
    let scene = Scene::new(h, w, 4);
    let reference = scene.shifted(h, w, 0.0, 0.0);
    // Rotation by 0.8 degrees about the centre, 0.6 % stretch along x, translation (3.3, -2.1).
    let (c, theta, stretch) = (255.5f32, 0.8f32.to_radians(), 0.006f32);
    let field = move |y: f32, x: f32| {
        let (py, px) = (y - c, x - c);
        let (ry, rx) = (
            theta.sin() * px + theta.cos() * py,
            theta.cos() * px - theta.sin() * py,
        );
        (ry - py + 3.3, rx * (1.0 + stretch) - px - 2.1)
    };
    let mut rng = Rng::new(5);
    let frame = noisy_u16(&scene.render(h, w, field, 12.0), 1.0, &mut rng);

    let mut nonrigid =
        Registrar::new(&reference, h, w, &RegistrationParams::default()).expect("nonrigid");
    let mut rigid = Registrar::new(&reference, h, w, &rigid_params()).expect("rigid");
    let (mut out_nr, mut out_r) = (vec![0.0; h * w], vec![0.0; h * w]);
    let r_nr = nonrigid
        .register(&frame, &mut out_nr)
        .expect("register nonrigid");
    let r_r = rigid.register(&frame, &mut out_r).expect("register rigid");
    assert_eq!(r_nr.n_blocks, 36);

    // Block shifts against the true field at block centres.
    let grid = nonrigid.block_grid().expect("grid").clone();
    let shifts = nonrigid.block_shifts().expect("shifts");
    let (mut block_errs, mut rigid_errs) = (Vec::new(), Vec::new());
    for iy in 0..grid.ny() {
        for ix in 0..grid.nx() {
            let b = iy * grid.nx() + ix;
            let (ty, tx) = field(grid.centre_y(iy), grid.centre_x(ix));
            block_errs.extend([shifts.dy[b] - ty, shifts.dx[b] - tx]);
            rigid_errs.extend([r_r.rigid_dy - ty, r_r.rigid_dx - tx]);
        }
    }
    let (e_block, e_rigid) = (rms(&block_errs), rms(&rigid_errs));
    // Residual image error in the interior (beyond the largest displacement).
    let interior = |out: &[f32]| {
        let mut errs = Vec::new();
        for y in 24..h - 24 {
            for x in 24..w - 24 {
                errs.push(out[y * w + x] - reference[y * w + x]);
            }
        }
        rms(&errs)
    };
    let (img_nr, img_r) = (interior(&out_nr), interior(&out_r));
    eprintln!(
        "smooth field: block shift error {e_block:.3} px RMS (rigid alone {e_rigid:.3}); \
         registered image error {img_nr:.1} vs rigid {img_r:.1} (counts RMS); \
         {} of 36 blocks smoothed",
        r_nr.n_blocks_smoothed
    );
    assert!(e_block < 0.25, "{e_block}");
    assert!(e_block < e_rigid / 4.0);
    assert!(img_nr < img_r * 0.6, "{img_nr} vs {img_r}");
}

#[test]
fn bad_input_errors_or_is_flagged_never_panics() {
    let (h, w) = (64, 64);
    let scene = Scene::new(h, w, 6);
    let reference = scene.shifted(h, w, 0.0, 0.0);
    let params = RegistrationParams {
        block_size_px: [32, 32],
        ..Default::default()
    };
    let mut reg = Registrar::new(&reference, h, w, &params).expect("registrar");
    let mut out = vec![0.0; h * w];

    // Wrong lengths.
    let short = vec![0u16; h * w - 1];
    assert!(matches!(
        reg.register(&short, &mut out),
        Err(RegistrationError::LengthMismatch { what: "frame", got, .. }) if got == h * w - 1
    ));
    let frame = noisy_u16(&reference, 1.0, &mut Rng::new(7));
    assert!(matches!(
        reg.register(&frame, &mut out[..10]),
        Err(RegistrationError::LengthMismatch { what: "output", .. })
    ));
    // All zero and all saturated: flagged blank, copied unchanged.
    for v in [0u16, u16::MAX] {
        let flat = vec![v; h * w];
        let r = reg.register(&flat, &mut out).expect("blank frame");
        assert!(r.flags.blank && !r.flags.is_clean());
        assert_eq!((r.rigid_dy, r.rigid_dx), (0.0, 0.0));
        assert!(out.iter().all(|&o| o == v as f32));
        assert_eq!(r.saturated_fraction, if v == u16::MAX { 1.0 } else { 0.0 });
    }
    // Partly saturated: registered, fraction reported.
    let mut part = frame.clone();
    part[..h * w / 10].fill(u16::MAX);
    let r = reg.register(&part, &mut out).expect("partly saturated");
    assert!(
        !r.flags.blank && (r.saturated_fraction - 0.1).abs() < 0.01,
        "{r:?}"
    );
    // Non-finite f32 frame.
    let mut bad: Vec<f32> = reference.clone();
    bad[100] = f32::NAN;
    assert_eq!(
        reg.register(&bad, &mut out),
        Err(RegistrationError::NonFiniteFrame { index: 100 })
    );
    bad[100] = f32::INFINITY;
    assert!(reg.rigid_shift(&bad).is_err());
    // Pure noise: registered, flagged low SNR or at least poor quality.
    let mut rng = Rng::new(8);
    let noise: Vec<f32> = (0..h * w).map(|_| 500.0 + 50.0 * rng.normal()).collect();
    let r = reg.register(&noise, &mut out).expect("noise frame");
    assert!(r.quality < 0.5, "{r:?}");

    // Bad references and shapes.
    let mut nan_ref = reference.clone();
    nan_ref[5] = f32::NAN;
    assert!(matches!(
        Registrar::new(&nan_ref, h, w, &params),
        Err(RegistrationError::NonFiniteReference { index: 5 })
    ));
    assert!(matches!(
        Registrar::new(&vec![7.0; h * w], h, w, &params),
        Err(RegistrationError::FlatReference)
    ));
    assert!(matches!(
        Registrar::new(&reference, h, w + 1, &params),
        Err(RegistrationError::LengthMismatch {
            what: "reference",
            ..
        })
    ));
    assert!(matches!(
        Registrar::new(&reference[..64], 8, 8, &params),
        Err(RegistrationError::FrameTooSmall { .. })
    ));
    assert!(matches!(
        Registrar::new(&[], 5000, 5000, &params),
        Err(RegistrationError::FrameTooLarge { .. })
    ));
    let bad_params = RegistrationParams {
        snr_thresh: f32::NAN,
        ..Default::default()
    };
    assert!(matches!(
        Registrar::new(&reference, h, w, &bad_params),
        Err(RegistrationError::InvalidParam {
            field: "snr_thresh",
            ..
        })
    ));
    // Errors print their cause.
    let msg = RegistrationError::NonFiniteReference { index: 5 }.to_string();
    assert!(msg.contains("non-finite") && msg.contains('5'));
}

#[test]
fn pixel_types_agree_and_free_rigid_shift_matches_registrar() {
    let (h, w) = (96, 128);
    let scene = Scene::new(h, w, 9);
    let reference = scene.shifted(h, w, 0.0, 0.0);
    let moved = scene.shifted(h, w, -3.4, 5.7);
    let as_u16: Vec<u16> = moved.iter().map(|&v| v.round() as u16).collect();
    let as_i16: Vec<i16> = moved.iter().map(|&v| v.round() as i16).collect();
    let as_f32: Vec<f32> = as_u16.iter().map(|&v| v as f32).collect();
    let params = rigid_params();
    let mut reg = Registrar::new(&reference, h, w, &params).expect("registrar");
    let a = reg.rigid_shift(&as_u16).expect("u16");
    let b = reg.rigid_shift(&as_i16).expect("i16");
    let c = reg.rigid_shift(&as_f32).expect("f32");
    let d = rigid_shift(&as_u16, &reference, h, w, &params).expect("free fn");
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a, d);
    assert!(
        (a.dy + 3.4).abs() < 0.1 && (a.dx - 5.7).abs() < 0.1,
        "{a:?}"
    );
}

#[test]
fn compute_reference_recovers_the_scene_up_to_a_constant_offset() {
    let (h, w) = (128, 128);
    let scene = Scene::new(h, w, 10);
    let mut rng = Rng::new(11);
    let truth: Vec<(f32, f32)> = (0..40)
        .map(|_| (rng.uniform(-6.0, 6.0), rng.uniform(-6.0, 6.0)))
        .collect();
    let frames: Vec<Vec<u16>> = truth
        .iter()
        .map(|&(dy, dx)| noisy_u16(&scene.shifted(h, w, dy, dx), 2.0, &mut rng))
        .collect();
    let views: Vec<&[u16]> = frames.iter().map(|f| f.as_slice()).collect();
    let params = rigid_params();
    let reference = compute_reference(&views, h, w, &params).expect("reference");
    let mut reg = Registrar::new(&reference, h, w, &params).expect("registrar");
    let est: Vec<RigidShift> = views
        .iter()
        .map(|f| reg.rigid_shift(f).expect("shift"))
        .collect();
    let n = est.len() as f32;
    let off_y = est.iter().zip(&truth).map(|(e, t)| e.dy - t.0).sum::<f32>() / n;
    let off_x = est.iter().zip(&truth).map(|(e, t)| e.dx - t.1).sum::<f32>() / n;
    let errs: Vec<f32> = est
        .iter()
        .zip(&truth)
        .flat_map(|(e, t)| [e.dy - t.0 - off_y, e.dx - t.1 - off_x])
        .collect();
    let e = rms(&errs);
    eprintln!("compute_reference: offset ({off_y:.2}, {off_x:.2}) px, shift error {e:.3} px RMS");
    assert!(e < 0.15, "{e}");
    assert!(off_y.abs() < 3.0 && off_x.abs() < 3.0);
    // Edge cases.
    assert_eq!(
        compute_reference::<u16>(&[], h, w, &params),
        Err(RegistrationError::NoFrames)
    );
    let one = compute_reference(&views[..1], h, w, &params).expect("one frame");
    assert_eq!(one[17], views[0][17] as f32);
    assert!(matches!(
        compute_reference(&[&views[0][..10]], h, w, &params),
        Err(RegistrationError::LengthMismatch { .. })
    ));
}

#[test]
fn odd_sizes_and_uneven_blocks_register() {
    for (h, w, block) in [
        (101usize, 77usize, [32usize, 48usize]),
        (77, 130, [128, 128]),
        (16, 16, [16, 16]),
    ] {
        let scene = Scene::new(h, w, 12);
        let reference = scene.shifted(h, w, 0.0, 0.0);
        let (dy, dx) = (1.3f32, -0.6f32);
        let frame = scene.shifted(h, w, dy, dx);
        let params = RegistrationParams {
            block_size_px: block,
            ..Default::default()
        };
        let mut reg = Registrar::new(&reference, h, w, &params).expect("registrar");
        let mut out = vec![0.0; h * w];
        let r = reg.register(&frame, &mut out).expect("register");
        let grid = reg.block_grid().expect("grid");
        assert_eq!(r.n_blocks, grid.len());
        if h >= 64 {
            assert!(
                (r.rigid_dy - dy).abs() < 0.15 && (r.rigid_dx - dx).abs() < 0.15,
                "{h}x{w}: {r:?}"
            );
        }
        assert!(out.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn low_snr_blocks_fall_back_to_their_neighbours() {
    let (h, w) = (256, 256);
    let scene = Scene::new(h, w, 13);
    let reference = scene.shifted(h, w, 0.0, 0.0);
    let (dy, dx) = (2.4f32, -1.7f32);
    let mut frame = scene.shifted(h, w, dy, dx);
    // The top-left 80 x 80 px: featureless noise, as if a vessel or a dark patch hid the cells.
    let mut rng = Rng::new(14);
    for y in 0..80 {
        for x in 0..80 {
            frame[y * w + x] = 600.0 + 30.0 * rng.normal();
        }
    }
    let params = RegistrationParams {
        block_size_px: [64, 64],
        ..Default::default()
    };
    let mut reg = Registrar::new(&reference, h, w, &params).expect("registrar");
    let mut out = vec![0.0; h * w];
    let r = reg.register(&frame, &mut out).expect("register");
    let blocks = reg.block_shifts().expect("blocks");
    assert!(r.n_blocks_smoothed >= 1, "{r:?}");
    // Block 0 covers only noise: its own map is below threshold and it takes its neighbours'.
    assert!(blocks.smoothing[0] > 0, "{blocks:?}");
    // Blocks touching the noise patch (or smoothed with maps that do) are looser.
    let grid = reg.block_grid().expect("grid");
    for b in 0..r.n_blocks {
        let (ys, xs) = (grid.y_starts[b / grid.nx()], grid.x_starts[b % grid.nx()]);
        let touches_noise = ys < 80 && xs < 80;
        // 64 px blocks estimate to ~0.1 px RMS (biased towards whole pixels), 128 px blocks to
        // ~0.04 px.
        let tol = if touches_noise || blocks.smoothing[b] > 0 {
            0.5
        } else {
            0.3
        };
        assert!(
            (blocks.dy[b] - dy).abs() < tol && (blocks.dx[b] - dx).abs() < tol,
            "block {b}: ({}, {}) smoothing {}",
            blocks.dy[b],
            blocks.dx[b],
            blocks.smoothing[b]
        );
    }
}
