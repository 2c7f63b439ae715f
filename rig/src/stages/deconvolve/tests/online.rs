//! Bank behaviour: online equals offline, provisional answers, bounded lag, gaps, missing samples.

use super::super::bank::{AR1_POOL_BYTES, AR2_POOL_BYTES};
use super::super::{
    Ar1Params, Ar2Params, BankConfig, DeconvolveBank, DeconvolveError, Params, deconvolve_trace,
};

fn trace(n: usize, seed: u64, g: f64) -> Vec<f64> {
    let mut state = seed;
    let mut uni = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut c = 0.0;
    (0..n)
        .map(|_| {
            c = g * c + if uni() < 0.05 { 0.5 + uni() } else { 0.0 };
            c + 0.15 * ((0..4).map(|_| uni()).sum::<f64>() - 2.0)
        })
        .map(|v| f64::from(v as f32))
        .collect()
}

fn p1(lambda: f64, s_min: f64) -> Params {
    Params::Ar1(Ar1Params::new(0.93, lambda, s_min).unwrap())
}
fn p2(lambda: f64, s_min: f64) -> Params {
    Params::Ar2(Ar2Params::new(1.55, -0.59, lambda, s_min).unwrap())
}

/// Runs `cells` traces through a bank; returns (provisional, settled) as cells × frames.
fn run(bank: &mut DeconvolveBank, ys: &[Vec<f64>]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (n, t) = (ys.len(), ys[0].len());
    let mut prov = vec![vec![0.0; t]; n];
    let mut settled = vec![vec![f32::INFINITY; t]; n];
    let (mut frame, mut p, mut row) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut drain = |bank: &mut DeconvolveBank, settled: &mut Vec<Vec<f32>>| {
        while let Some(f) = bank.pop_settled(&mut row).unwrap() {
            for c in 0..n {
                settled[c][f as usize] = row[c];
            }
        }
    };
    for k in 0..t {
        for c in 0..n {
            frame[c] = ys[c][k];
        }
        bank.push_frame(&frame, &mut p).unwrap();
        for c in 0..n {
            prov[c][k] = p[c];
        }
        drain(bank, &mut settled);
    }
    bank.flush();
    drain(bank, &mut settled);
    (prov, settled)
}

fn max_rel(a: &[f32], b: &[f64]) -> f64 {
    let scale = b
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            if x.is_nan() && y.is_nan() {
                0.0
            } else {
                (f64::from(x) - y).abs() / scale
            }
        })
        .fold(0.0, f64::max)
}

#[test]
fn unbounded_online_equals_offline() {
    for params in [
        p1(0.0, 0.0),
        p1(0.2, 0.0),
        p1(0.1, 0.3),
        p2(0.0, 0.0),
        p2(0.2, 0.0),
        p2(0.1, 0.3),
    ] {
        let ys: Vec<Vec<f64>> = (0..5).map(|s| trace(800, s, 0.93)).collect();
        let mut bank = DeconvolveBank::uniform(
            5,
            params,
            BankConfig {
                max_lag: None,
                bridge_max_frames: 0,
            },
        )
        .unwrap();
        let (_, settled) = run(&mut bank, &ys);
        for (c, y) in ys.iter().enumerate() {
            let off = deconvolve_trace(y, &params);
            let e = max_rel(&settled[c], &off.s);
            assert!(e < 1e-6, "{params:?} cell {c}: {e}");
        }
    }
}

#[test]
fn provisional_is_offline_on_the_prefix() {
    for params in [p1(0.0, 0.0), p1(0.3, 0.2), p2(0.0, 0.0), p2(0.3, 0.2)] {
        let y = trace(300, 9, 0.93);
        let mut bank = DeconvolveBank::uniform(
            1,
            params,
            BankConfig {
                max_lag: None,
                bridge_max_frames: 0,
            },
        )
        .unwrap();
        let (prov, _) = run(&mut bank, std::slice::from_ref(&y));
        for t in 0..y.len() {
            let off = deconvolve_trace(&y[..=t], &params);
            let scale = off.s.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            let d = (f64::from(prov[0][t]) - off.s[t]).abs();
            assert!(
                d < 1e-6 * scale,
                "{params:?} t {t}: {} vs {}",
                prov[0][t],
                off.s[t]
            );
        }
    }
}

#[test]
fn bounded_lag_is_close_and_does_not_grow() {
    for params in [p1(0.1, 0.0), p2(0.1, 0.0)] {
        let ys: Vec<Vec<f64>> = (0..8).map(|s| trace(3000, 100 + s, 0.93)).collect();
        let mut bank = DeconvolveBank::uniform(
            8,
            params,
            BankConfig {
                max_lag: Some(100),
                bridge_max_frames: 0,
            },
        )
        .unwrap();
        let cap0 = bank.pool_capacity();
        let (_, settled) = run(&mut bank, &ys);
        let st = bank.stats();
        assert!(
            bank.pool_capacity() <= 128,
            "{params:?}: pools {} (from {cap0})",
            bank.pool_capacity()
        );
        assert_eq!(st.row_grows, 0);
        for (c, y) in ys.iter().enumerate() {
            let off = deconvolve_trace(y, &params);
            let e = max_rel(&settled[c], &off.s);
            assert!(e < 1e-3, "{params:?} cell {c}: {e}");
        }
    }
}

#[test]
fn error_shrinks_with_the_lag() {
    // (params, max_lag, bound on the ∞-norm relative error vs offline); lag 0 / 2 is causal.
    let table = [
        (p1(0.1, 0.0), 0, 0.3),
        (p1(0.1, 0.0), 5, 0.08),
        (p1(0.1, 0.0), 30, 0.01),
        (p2(0.1, 0.0), 5, 0.25),
        (p2(0.1, 0.0), 10, 0.03),
        (p2(0.1, 0.0), 30, 1e-3),
    ];
    let y = trace(2000, 5, 0.93);
    for (params, lag, bound) in table {
        let mut bank = DeconvolveBank::uniform(
            1,
            params,
            BankConfig {
                max_lag: Some(lag),
                bridge_max_frames: 0,
            },
        )
        .unwrap();
        let (_, settled) = run(&mut bank, std::slice::from_ref(&y));
        let off = deconvolve_trace(&y, &params);
        assert!(
            settled[0].iter().all(|v| v.is_finite() && *v >= -1e-6),
            "{params:?} lag {lag}"
        );
        let e = max_rel(&settled[0], &off.s);
        assert!(e < bound, "{params:?} lag {lag}: {e}");
    }
}

#[test]
fn restarting_gap_equals_two_offline_segments() {
    for params in [p1(0.2, 0.1), p2(0.2, 0.1)] {
        let y = trace(600, 3, 0.93);
        let (a, b) = y.split_at(250);
        let mut bank = DeconvolveBank::uniform(
            1,
            params,
            BankConfig {
                max_lag: None,
                bridge_max_frames: 2,
            },
        )
        .unwrap();
        let (mut p, mut row) = (vec![0.0f32], vec![0.0f32]);
        let mut got = Vec::new();
        for (i, seg) in [a, b].iter().enumerate() {
            if i == 1 {
                bank.push_gap(7);
            }
            for v in seg.iter() {
                bank.push_frame(&[*v], &mut p).unwrap();
            }
        }
        bank.flush();
        while let Some(f) = bank.pop_settled(&mut row).unwrap() {
            got.push((f, row[0]));
        }
        assert_eq!(got.len(), 600);
        assert_eq!(got[250].0, 257, "frame indices jump over the gap");
        let want: Vec<f64> = [
            deconvolve_trace(a, &params).s,
            deconvolve_trace(b, &params).s,
        ]
        .concat();
        let got_s: Vec<f32> = got.iter().map(|g| g.1).collect();
        assert!(max_rel(&got_s, &want) < 1e-6, "{params:?}");
        assert_eq!(bank.stats().restarts, 1);
    }
}

#[test]
fn bridged_gap_equals_missing_samples() {
    for params in [p1(0.2, 0.1), p2(0.2, 0.1)] {
        let mut y = trace(400, 4, 0.93);
        let mut bank = DeconvolveBank::uniform(
            1,
            params,
            BankConfig {
                max_lag: None,
                bridge_max_frames: 2,
            },
        )
        .unwrap();
        let (mut p, mut row) = (vec![0.0f32], vec![0.0f32]);
        for (t, v) in y.iter().enumerate() {
            if t == 200 || t == 201 {
                continue;
            }
            if t == 202 {
                bank.push_gap(2);
            }
            bank.push_frame(&[*v], &mut p).unwrap();
        }
        bank.flush();
        let mut got = Vec::new();
        while let Some(f) = bank.pop_settled(&mut row).unwrap() {
            assert_eq!(f as usize, got.len());
            got.push(row[0]);
        }
        y[200] = f64::NAN;
        y[201] = f64::NAN;
        let off = deconvolve_trace(&y, &params);
        assert!(got[200].is_nan() && got[201].is_nan());
        assert!(max_rel(&got, &off.s) < 1e-6, "{params:?}");
    }
}

#[test]
fn nan_and_inf_do_not_poison_the_state() {
    for params in [p1(0.2, 0.0), p2(0.2, 0.0)] {
        let clean = trace(500, 8, 0.93);
        let mut dirty = clean.clone();
        for (t, bad) in [
            (0, f64::NAN),
            (1, f64::NAN),
            (100, f64::NAN),
            (101, f64::INFINITY),
            (300, f64::NEG_INFINITY),
            (499, f64::NAN),
        ] {
            dirty[t] = bad;
        }
        for lag in [None, Some(50)] {
            let mut bank = DeconvolveBank::uniform(
                1,
                params,
                BankConfig {
                    max_lag: lag,
                    bridge_max_frames: 0,
                },
            )
            .unwrap();
            let (prov, settled) = run(&mut bank, std::slice::from_ref(&dirty));
            assert_eq!(bank.stats().missing_samples, 6);
            for t in [0, 1, 100, 101, 300, 499] {
                assert!(
                    prov[0][t].is_nan() && settled[0][t].is_nan(),
                    "{params:?} {lag:?} t {t}"
                );
            }
            let finite = settled[0]
                .iter()
                .enumerate()
                .filter(|(t, _)| ![0, 1, 100, 101, 300, 499].contains(t));
            assert!(
                finite.clone().all(|(_, v)| v.is_finite()),
                "{params:?} {lag:?}"
            );
            // Far from the bad samples the spikes agree with the clean trace's.
            let off = deconvolve_trace(&clean, &params);
            let scale = off.s.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (t, v) in settled[0].iter().enumerate().take(250).skip(150) {
                assert!(
                    (f64::from(*v) - off.s[t]).abs() < 0.05 * scale,
                    "{params:?} {lag:?} t {t}"
                );
            }
        }
    }
}

#[test]
fn pool_sizes_match_the_docs() {
    assert_eq!(
        std::mem::size_of::<super::super::ar1::Pool>(),
        AR1_POOL_BYTES
    );
    assert_eq!(
        std::mem::size_of::<super::super::ar2::Pool>(),
        AR2_POOL_BYTES
    );
}

#[test]
fn rejects_bad_shapes_and_mixed_orders() {
    let mut bank = DeconvolveBank::uniform(3, p1(0.0, 0.0), BankConfig::default()).unwrap();
    let mut out = vec![0.0; 3];
    assert!(matches!(
        bank.push_frame(&[1.0f32, 2.0], &mut out),
        Err(DeconvolveError::Length { got: 2, .. })
    ));
    assert!(bank.pop_settled(&mut [0.0; 2]).is_err());
    assert!(matches!(
        DeconvolveBank::new(&[p1(0.0, 0.0), p2(0.0, 0.0)], BankConfig::default()),
        Err(DeconvolveError::MixedOrder { cell: 1, .. })
    ));
    assert_eq!(
        DeconvolveBank::uniform(
            1,
            p2(0.0, 0.0),
            BankConfig {
                max_lag: Some(0),
                bridge_max_frames: 0
            }
        )
        .unwrap()
        .max_lag(),
        Some(2)
    );
}

#[test]
fn a_drained_bank_never_grows_through_bridged_gaps() {
    // The online pipeline's use: lag 30, gaps of up to 8 frames bridged, drained after every
    // call. A ring sized for the lag alone grew on the first bridged gap.
    let config = BankConfig {
        max_lag: Some(30),
        bridge_max_frames: 8,
    };
    let ys: Vec<Vec<f64>> = (0..4).map(|s| trace(2000, 300 + s, 0.93)).collect();
    let mut bank = DeconvolveBank::uniform(4, p1(0.0, 0.0), config).unwrap();
    let (mut frame, mut p, mut row) = (vec![0.0; 4], vec![0.0; 4], vec![0.0; 4]);
    let mut popped = 0;
    for k in 0..ys[0].len() {
        if k % 100 == 50 {
            bank.push_gap(8);
            while bank.pop_settled(&mut row).unwrap().is_some() {
                popped += 1;
            }
        }
        for (c, y) in ys.iter().enumerate() {
            frame[c] = y[k];
        }
        bank.push_frame(&frame, &mut p).unwrap();
        while bank.pop_settled(&mut row).unwrap().is_some() {
            popped += 1;
        }
    }
    let st = bank.stats();
    assert_eq!(st.bridged_gaps, 20);
    assert_eq!(st.row_grows, 0, "rows grew {} times", st.row_grows);
    assert!(popped > 2000, "settled rows were drained ({popped})");
}
