//! Every instruction-set path of the registration kernels gives the scalar path's bits: kernel
//! by kernel on random inputs, odd lengths and edge values, and whole registrations.
//!
//! Exact equality (not an ulp bound) is the claim: each kernel is element-wise arithmetic in a
//! fixed order (`+`, `*`, `/`, `sqrt`, `min`/`max`, conversions, all correctly rounded in IEEE
//! 754 whatever the vector width), Rust never fuses `a * b + c` into an FMA, and no kernel
//! reassociates a sum. Run on every path this CPU supports (all three on an AVX-512 machine).

use super::nonrigid::BlockGrid;
use super::tests::{Rng, Scene, noisy_u16};
use super::warp::{FieldWarp, warp_rigid};
use super::*;
use crate::simd::{Isa, SimdPath};
use rustfft::num_complex::Complex32;

fn scalar() -> SimdPath {
    SimdPath::new(Isa::Scalar).expect("scalar always runs")
}

/// Random values with the awkward ones mixed in: zeros of both signs, subnormals, huge values,
/// values near the clip bounds.
fn awkward(n: usize, rng: &mut Rng) -> Vec<f32> {
    let edge = [
        0.0,
        -0.0,
        f32::MIN_POSITIVE / 4.0,
        1e-30,
        1e30,
        -1e30,
        65535.0,
        0.5,
        1e-5,
    ];
    (0..n)
        .map(|i| {
            if i % 7 == 3 {
                edge[i / 7 % edge.len()]
            } else {
                rng.uniform(-2000.0, 70000.0)
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn load_taper_and_whiten_equal_scalar_on_every_path() {
    let mut rng = Rng::new(17);
    for n in [1usize, 7, 15, 16, 17, 63, 257, 1031] {
        let img = awkward(n, &mut rng);
        let mask: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0)).collect();
        let spec: Vec<Complex32> = (0..n)
            .map(|i| {
                let (a, b) = (img[i], img[(i * 5 + 1) % n]);
                if i % 11 == 0 {
                    Complex32::new(0.0, 0.0)
                } else {
                    Complex32::new(a, -b)
                }
            })
            .collect();
        let reference: Vec<Complex32> = (0..n)
            .map(|_| Complex32::new(rng.normal(), rng.normal()))
            .collect();
        let mut u16s: Vec<u16> = (0..n).map(|_| rng.uniform(0.0, 65536.0) as u16).collect();
        u16s[n / 2] = u16::MAX;
        let i16s: Vec<i16> = u16s.iter().map(|&v| v as i16).collect();
        let run = |path: SimdPath| {
            let mut out = Vec::new();
            for clip in [None, Some((-100.0f32, 40000.0f32))] {
                let mut d = vec![0.0; n];
                path.run(
                    #[inline(always)]
                    || phasecorr::taper_into(&mut d, &img, &mask, 812.25, clip),
                );
                out.extend(bits(&d));
            }
            let mut s = spec.clone();
            path.run(
                #[inline(always)]
                || phasecorr::whiten_and_multiply(&mut s, &reference),
            );
            out.extend(s.iter().flat_map(|c| [c.re.to_bits(), c.im.to_bits()]));
            let mut d = vec![0.0; n];
            let st = path.run(
                #[inline(always)]
                || load(&u16s, &mut d),
            );
            out.extend(bits(&d));
            out.extend([
                st.min.to_bits(),
                st.max.to_bits(),
                st.n_saturated as u32,
                st.finite as u32,
            ]);
            let st = path.run(
                #[inline(always)]
                || load(&i16s, &mut d),
            );
            out.extend(bits(&d));
            out.extend([
                st.min.to_bits(),
                st.max.to_bits(),
                st.n_saturated as u32,
                st.finite as u32,
            ]);
            let mut nan = img.clone();
            nan[n - 1] = f32::NAN;
            let st = path.run(
                #[inline(always)]
                || load(&nan, &mut d),
            );
            out.extend([st.finite as u32]);
            out
        };
        let want = run(scalar());
        for path in SimdPath::all_supported() {
            assert!(
                run(path) == want,
                "{:?} differs from scalar at n = {n}",
                path.isa()
            );
        }
    }
}

#[test]
fn warps_equal_scalar_on_every_path_at_odd_sizes_and_large_shifts() {
    let mut rng = Rng::new(5);
    for (h, w) in [(37usize, 53usize), (64, 64), (33, 17)] {
        let src = awkward(h * w, &mut rng);
        let grid = BlockGrid::new(h, w, [16, 16]);
        let nb = grid.len();
        // Shifts up to and beyond the frame, so the clamped edges are exercised.
        let dy: Vec<f32> = (0..nb)
            .map(|_| rng.uniform(-1.5 * h as f32, 1.5 * h as f32))
            .collect();
        let dx: Vec<f32> = (0..nb).map(|_| rng.uniform(-3.0, 3.0)).collect();
        let run = |path: SimdPath| {
            let mut fw = FieldWarp::new(&grid, h, w);
            let mut a = vec![0.0; h * w];
            path.run(
                #[inline(always)]
                || fw.warp(&src, &dy, &dx, &mut a),
            );
            let mut b = vec![0.0; h * w];
            path.run(
                #[inline(always)]
                || warp_rigid(&src, h, w, dy[0], dx[0], &mut b),
            );
            [bits(&a), bits(&b)].concat()
        };
        let want = run(scalar());
        for path in SimdPath::all_supported() {
            assert!(run(path) == want, "{:?} differs at {h}x{w}", path.isa());
        }
    }
}

#[test]
fn whole_registrations_equal_scalar_on_every_path() {
    for (h, w, seed) in [(128usize, 128usize, 3u64), (96, 160, 4)] {
        let scene = Scene::new(h, w, seed);
        let reference = scene.shifted(h, w, 0.0, 0.0);
        let mut rng = Rng::new(seed);
        let params = RegistrationParams {
            block_size_px: [48, 48],
            ..RegistrationParams::default()
        };
        let frames: Vec<Vec<u16>> = [(1.3f32, -2.6f32), (-7.2, 4.4), (0.0, 0.0)]
            .iter()
            .map(|&(dy, dx)| noisy_u16(&scene.shifted(h, w, dy, dx), 1.0, &mut rng))
            .collect();
        let run = |path: SimdPath| {
            let mut r = Registrar::new(&reference, h, w, &params).expect("registrar");
            r.set_simd(path);
            let mut out = Vec::new();
            let mut reg = vec![0.0; h * w];
            for f in &frames {
                let res = r.register(f, &mut reg).expect("register");
                out.extend(bits(&reg));
                out.extend(bits(&[
                    res.rigid_dy,
                    res.rigid_dx,
                    res.rigid_corr,
                    res.rigid_snr,
                ]));
                let b = r.block_shifts().expect("blocks on");
                out.extend(bits(b.dy));
                out.extend(bits(b.dx));
                out.extend(bits(b.snr));
            }
            out
        };
        let want = run(scalar());
        for path in SimdPath::all_supported() {
            assert!(run(path) == want, "{:?} differs at {h}x{w}", path.isa());
        }
    }
}
