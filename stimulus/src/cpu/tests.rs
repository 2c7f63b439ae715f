use super::*;
use crate::content::Prepared;
use crate::spec::*;

fn grating(direction_deg: f64, tf_hz: f64) -> StimulusSpec {
    StimulusSpec::grating(direction_deg, 0.04, tf_hz, 1.0, 0.0)
}

fn lum(spec: &StimulusSpec, az: f64, el: f64, t: f64) -> f64 {
    luminance(spec, az, el, t)
}

#[test]
fn gray_is_mean_gray_everywhere() {
    let g = ViewGeometry::default();
    let mut out = vec![0u8; g.pixels()];
    render(&StimulusSpec::Gray, 0.3, &g, &mut out);
    assert!(out.iter().all(|&p| p == MEAN_GRAY));
}

#[test]
fn grating_period_matches_spatial_frequency() {
    // sf 0.04 cpd -> a 25 deg period; with a 1 deg/pixel view, 25 pixels per cycle.
    let g = ViewGeometry {
        width: 100,
        height: 1,
        azimuth_deg: (0.0, 100.0),
        elevation_deg: (-0.5, 0.5),
    };
    let mut out = vec![0u8; 100];
    render(&grating(0.0, 0.0), 0.0, &g, &mut out);
    for x in 0..75 {
        assert!((out[x] as i32 - out[x + 25] as i32).abs() <= 1, "x={x}");
    }
    // Crest (6.5 deg, phase ~0.26 cycle) and trough (18.5 deg, ~0.74 cycle) half a period apart.
    assert!(out[6] > 250 && out[18] < 5, "{} {}", out[6], out[18]);
}

#[test]
fn drifting_grating_moves_along_its_direction() {
    // After 1/4 cycle of drift (t = 0.25/tf), the pattern sits a quarter period further on.
    let spec = grating(0.0, 2.0);
    let (az, el) = (10.0, 0.0);
    let later = lum(&spec, az + 25.0 / 4.0, el, 0.125);
    let now = lum(&spec, az, el, 0.0);
    assert!((later - now).abs() < 1e-9);
    // Direction 90 drifts upward.
    let up = grating(90.0, 2.0);
    assert!((lum(&up, 3.0, 5.0 + 6.25, 0.125) - lum(&up, 3.0, 5.0, 0.0)).abs() < 1e-9);
}

/// PsychoPy's documented grating, written from its docs and source, as an independent
/// definition (psychopy itself is not installed: it is a heavy install, not for CI).
///
/// `visual.GratingStim(tex="sin", units="deg", sf=SF, ori=ORI, phase=P, contrast=C)`:
/// - `tex="sin"`: one period of the texture is `sin(2π u − π/2)`, `u ∈ [0, 1)` along the
///   texture's x (psychopy `createTexture`: `numpy.sin(onePeriodY - pi/2)`); `"sqr"` is
///   `where(sin(2πu − π/2) > 0, 1, −1)`.
/// - `sf`: cycles per unit (deg); `phase`: "Phase of the stimulus in each dimension of the
///   texture ... NB phase has modulus 1 (rather than 360 or 2*pi)" — it offsets `u`, so the
///   texture coordinate at position `x′` (deg from the stimulus centre along its x axis) is
///   `u = sf · x′ + phase`; "setting phase=t*n drifts a stimulus at n Hz".
/// - `ori`: degrees, "0 is vertical, and positive values rotate clockwise": the texture's x
///   axis is the screen's x rotated clockwise by `ori`, so `x′ = x cos(ori) − y sin(ori)`.
/// - The colour value (−1..1, PsychoPy's rgb space) is `contrast · texture`; on a linearised
///   monitor with gray background, luminance fraction = (value + 1) / 2.
fn psychopy_grating(x: f64, y: f64, sf: f64, ori_deg: f64, phase: f64, contrast: f64) -> f64 {
    let o = ori_deg.to_radians();
    let xp = x * o.cos() - y * o.sin();
    let u = sf * xp + phase;
    let value = contrast * (TAU * u - std::f64::consts::FRAC_PI_2).sin();
    (value + 1.0) / 2.0
}

#[test]
fn grating_matches_psychopys_definition() {
    // Our direction θ is PsychoPy's ori = −θ (counter-clockwise vs clockwise, same x axis);
    // our phase φ (deg) at time t is PsychoPy's phase φ/360 + 1/4 − tf·t (its texture starts a
    // quarter cycle later: sin(2πu − π/2)).
    for (dir, sf, tf, c, ph) in [
        (0.0, 0.04, 2.0, 1.0, 0.0),
        (30.0, 0.08, 1.0, 0.5, 45.0),
        (135.0, 0.16, 4.0, 0.8, -90.0),
        (270.0, 0.02, 0.0, 0.3, 200.0),
    ] {
        let spec = StimulusSpec::grating(dir, sf, tf, c, ph);
        for t in [0.0, 0.1, 0.37] {
            for (az, el) in [(0.0, 0.0), (12.5, -3.0), (-40.0, 25.0), (61.0, 33.3)] {
                let ours = lum(&spec, az, el, t);
                let theirs = psychopy_grating(az, el, sf, -dir, ph / 360.0 + 0.25 - tf * t, c);
                assert!(
                    (ours - theirs).abs() < 1e-9,
                    "dir {dir} sf {sf} t {t} at ({az}, {el}): {ours} vs {theirs}"
                );
            }
        }
    }
}

#[test]
fn square_grating_and_aperture() {
    let mut s = GratingSpec {
        waveform: Waveform::Square,
        contrast: 0.5,
        tf_hz: 0.0,
        sf_cpd: 0.1,
        aperture: Some(Aperture {
            center_az_deg: 20.0,
            center_el_deg: 10.0,
            radius_deg: 15.0,
        }),
        ..GratingSpec::default()
    };
    let spec = StimulusSpec::Grating(s.clone());
    // Phase reference is the aperture centre: just right of it the first half cycle is bright.
    assert_eq!(lum(&spec, 21.0, 10.0, 0.0), 0.75);
    assert_eq!(lum(&spec, 26.0, 10.0, 0.0), 0.25);
    // Outside the aperture (great-circle distance > 15 deg): gray.
    assert_eq!(lum(&spec, 20.0, 26.0, 0.0), 0.5);
    assert_eq!(lum(&spec, 20.0, 24.9, 0.0), 0.75);
    s.aperture = None;
    assert_eq!(lum(&StimulusSpec::Grating(s), 20.0, 26.0, 0.0), 0.75);
}

#[test]
fn gabor_envelope() {
    let spec = StimulusSpec::Gabor(GaborSpec {
        center_az_deg: 10.0,
        center_el_deg: 5.0,
        sigma_deg: 4.0,
        direction_deg: 0.0,
        sf_cpd: 0.05,
        tf_hz: 0.0,
        contrast: 1.0,
        phase_deg: 90.0,
    });
    // Peak at the centre: sin(π/2) = 1.
    assert!((lum(&spec, 10.0, 5.0, 0.0) - 1.0).abs() < 1e-12);
    // One σ up (along the bars, same phase): envelope e^{-1/2}.
    let at_sigma = lum(&spec, 10.0, 9.0, 0.0);
    assert!(
        (at_sigma - (0.5 + 0.5 * (-0.5f64).exp())).abs() < 1e-12,
        "{at_sigma}"
    );
    assert!((lum(&spec, 60.0, 5.0, 0.0) - 0.5).abs() < 1e-9);
}

fn sparse() -> SparseNoiseSpec {
    SparseNoiseSpec {
        seed: 11,
        grid: Rect {
            az_deg: [-40.0, 40.0],
            el_deg: [-20.0, 20.0],
        },
        square_deg: 10.0,
        frame_s: 0.25,
        squares_per_frame: 5,
        contrast: 1.0,
    }
}

#[test]
fn sparse_noise_lights_the_requested_squares() {
    let mut p = Prepared::new(&StimulusSpec::SparseNoise(sparse())).unwrap();
    let count = |p: &mut Prepared, t: f64| {
        let c = p.frame(t);
        let mut lit = Vec::new();
        for r in 0..4 {
            for col in 0..8 {
                let l = content_luminance(&c, -35.0 + 10.0 * col as f64, 15.0 - 10.0 * r as f64);
                if l != 0.5 {
                    lit.push((r, col, l));
                }
            }
        }
        lit
    };
    let a = count(&mut p, 0.0);
    assert_eq!(a.len(), 5);
    assert!(a.iter().all(|&(_, _, l)| l == 0.0 || l == 1.0));
    assert_eq!(count(&mut p, 0.2499), a);
    assert_ne!(count(&mut p, 0.25), a);
    // Deterministic across preparations; outside the grid is gray.
    let mut q = Prepared::new(&StimulusSpec::SparseNoise(sparse())).unwrap();
    assert_eq!(count(&mut q, 0.1), a);
    assert_eq!(content_luminance(&q.frame(0.0), 45.0, 0.0), 0.5);
}

#[test]
fn sparse_grid_must_be_whole_squares() {
    let mut s = sparse();
    s.square_deg = 7.0;
    let e = s.validate().unwrap_err().to_string();
    assert!(
        e.contains("grid.az_deg") && e.contains("whole number"),
        "{e}"
    );
    s.square_deg = 10.0;
    s.squares_per_frame = 33;
    assert!(
        s.validate()
            .unwrap_err()
            .to_string()
            .contains("squares_per_frame")
    );
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("twinloop-stim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn movie_from_npy_plays_and_holds() {
    let dir = tmpdir("npy");
    let path = dir.join("clip.npy");
    // 3 frames of 2 x 4: frame k is uniform 10 + 100 k, except pixel (0, 0) = 255.
    let mut data = Vec::new();
    for k in 0..3u8 {
        for i in 0..8 {
            data.push(if i == 0 { 255 } else { 10 + 100 * k });
        }
    }
    crate::content::clip::write_npy_u8(&path, &[3, 2, 4], &data).unwrap();
    let spec = StimulusSpec::Movie(MovieSpec {
        path: path.clone(),
        frame_rate_hz: 10.0,
        area: Rect {
            az_deg: [0.0, 40.0],
            el_deg: [0.0, 20.0],
        },
        looped: false,
    });
    spec.validate().unwrap();
    let mut p = Prepared::new(&spec).unwrap();
    // Texel (row 0, col 0) centre is at (5, 15) deg; (row 1, col 3) at (35, 5).
    assert_eq!(to_level(content_luminance(&p.frame(0.0), 5.0, 15.0)), 255);
    assert_eq!(to_level(content_luminance(&p.frame(0.0), 35.0, 5.0)), 10);
    assert_eq!(to_level(content_luminance(&p.frame(0.1), 35.0, 5.0)), 110);
    assert_eq!(to_level(content_luminance(&p.frame(5.0), 35.0, 5.0)), 210);
    // Halfway between texel centres, bilinear.
    let mid = content_luminance(&p.frame(0.0), 10.0, 15.0);
    assert!((mid - (255.0 + 10.0) / 2.0 / 255.0).abs() < 1e-6, "{mid}");
    assert_eq!(content_luminance(&p.frame(0.0), -1.0, 15.0), 0.5);
    // Looping.
    let looped = StimulusSpec::Movie(MovieSpec {
        path,
        frame_rate_hz: 10.0,
        area: Rect {
            az_deg: [0.0, 40.0],
            el_deg: [0.0, 20.0],
        },
        looped: true,
    });
    let mut p = Prepared::new(&looped).unwrap();
    assert_eq!(to_level(content_luminance(&p.frame(0.3), 35.0, 5.0)), 10);
}

#[test]
fn clips_with_the_wrong_shape_or_dtype_are_named() {
    let dir = tmpdir("bad");
    let p2 = dir.join("flat.npy");
    crate::content::clip::write_npy_u8(&p2, &[4, 4], &[0; 16]).unwrap();
    let area = Rect {
        az_deg: [0.0, 1.0],
        el_deg: [0.0, 1.0],
    };
    let e = MovieSpec {
        path: p2.clone(),
        frame_rate_hz: 30.0,
        area,
        looped: false,
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("movie.path") && e.contains("[T, H, W]"), "{e}");
    // The same file is a fine image.
    ImageSpec { path: p2, area }.validate().unwrap();
    // float32 data.
    let pf = dir.join("float.npy");
    {
        use npyz::WriterBuilder;
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[1, 2, 2])
            .writer(std::fs::File::create(&pf).unwrap())
            .begin_nd()
            .unwrap();
        w.extend([0.0f32; 4]).unwrap();
        w.finish().unwrap();
    }
    let e = MovieSpec {
        path: pf,
        frame_rate_hz: 30.0,
        area,
        looped: false,
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("dtype") && e.contains("uint8"), "{e}");
    let e = MovieSpec {
        path: dir.join("missing.npy"),
        frame_rate_hz: 30.0,
        area,
        looped: false,
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot open"), "{e}");
}

#[test]
fn movie_from_png_folder() {
    let dir = tmpdir("png");
    for k in 0..2u8 {
        let px: Vec<u8> = (0..6).map(|i| i * 40 + k).collect();
        crate::content::clip::write_png(&dir.join(format!("f{k:03}.png")), 3, 2, &px).unwrap();
    }
    let spec = StimulusSpec::Movie(MovieSpec {
        path: dir.clone(),
        frame_rate_hz: 1.0,
        area: Rect {
            az_deg: [0.0, 3.0],
            el_deg: [0.0, 2.0],
        },
        looped: false,
    });
    let mut p = Prepared::new(&spec).unwrap();
    // Pixel (row 1, col 2) = 5 * 40 + k, centre at (2.5, 0.5) deg.
    assert_eq!(to_level(content_luminance(&p.frame(0.0), 2.5, 0.5)), 200);
    assert_eq!(to_level(content_luminance(&p.frame(1.0), 2.5, 0.5)), 201);
    // A frame of another size is named.
    crate::content::clip::write_png(&dir.join("f999.png"), 2, 2, &[0; 4]).unwrap();
    let e = Prepared::new(&spec).unwrap_err().to_string();
    assert!(e.contains("f999.png"), "{e}");
}

#[test]
fn twin_image_checks_its_size() {
    let mut s = TwinImageSpec {
        width: 3,
        height: 2,
        pixels: vec![0, 50, 100, 150, 200, 250],
        area: Rect {
            az_deg: [-30.0, 30.0],
            el_deg: [-10.0, 10.0],
        },
    };
    let spec = StimulusSpec::TwinImage(s.clone());
    let mut p = Prepared::new(&spec).unwrap();
    assert_eq!(to_level(content_luminance(&p.frame(0.0), 20.0, -5.0)), 250);
    s.pixels.pop();
    let e = s.validate().unwrap_err().to_string();
    assert!(
        e.contains("twin_image.pixels") && e.contains("height x width = 6"),
        "{e}"
    );
}

#[test]
fn flashing_dots_are_gray_between_flashes() {
    let s = FlashingDotsSpec {
        seed: 2,
        area: Rect {
            az_deg: [-10.0, 10.0],
            el_deg: [-10.0, 10.0],
        },
        n_dots: 3,
        dot_radius_deg: 2.0,
        on_s: 0.2,
        off_s: 0.3,
        polarity: Polarity::White,
        contrast: 0.8,
    };
    let mut p = Prepared::new(&StimulusSpec::FlashingDots(s)).unwrap();
    let FrameContent::Dots { dots, .. } = p.frame(0.1) else {
        panic!("dots during the flash")
    };
    let d = dots[0];
    assert_eq!(content_luminance(&p.frame(0.1), d.az_deg, d.el_deg), 0.9);
    assert_eq!(p.frame(0.3), FrameContent::Gray);
    let dots_at = |p: &mut Prepared, t: f64| match p.frame(t) {
        FrameContent::Dots { dots, .. } => dots.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_ne!(dots_at(&mut p, 0.6), dots_at(&mut p, 0.1));
}

#[test]
fn display_applies_gamma_and_patch() {
    use crate::photodiode::{PatchFrame, PhotodiodePatch};
    let proj = Projection::Linear(ViewGeometry {
        width: 8,
        height: 4,
        azimuth_deg: (-10.0, 10.0),
        elevation_deg: (-5.0, 5.0),
    });
    let gamma = GammaLut::inverse_power(2.0);
    let patch = PatchFrame {
        patch: PhotodiodePatch {
            size_px: 2,
            ..Default::default()
        },
        level: 1.0,
    };
    let mut out = vec![0u8; 32];
    render_display(&FrameContent::Gray, &proj, &gamma, Some(&patch), &mut out);
    // Bottom-left 2 x 2 white; the rest is gray through the LUT: 0.5^(1/2) = 0.7071 -> 180.
    assert_eq!(out[2 * 8], 255);
    assert_eq!(out[3 * 8 + 1], 255);
    assert_eq!(out[0], 180);
    assert_eq!(out[3 * 8 + 2], 180);
}

#[test]
fn specs_round_trip_through_toml() {
    let s = grating(45.0, 1.5);
    let text = toml::to_string(&s).unwrap();
    assert!(text.contains("kind = \"grating\""));
    assert_eq!(toml::from_str::<StimulusSpec>(&text).unwrap(), s);
    // The original five-field form still parses.
    let old =
        "kind = \"grating\"\ndirection_deg = 90.0\nsf_cpd = 0.04\ntf_hz = 2.0\ncontrast = 1.0\n";
    assert_eq!(
        toml::from_str::<StimulusSpec>(old).unwrap(),
        StimulusSpec::grating(90.0, 0.04, 2.0, 1.0, 0.0)
    );
    for spec in [
        StimulusSpec::SparseNoise(sparse()),
        StimulusSpec::PinkNoise(PinkNoiseSpec {
            seed: 1,
            exponent: 1.0,
            contrast: 1.0,
            texel_deg: 1.0,
            size_texels: 64,
            refresh_hz: 2.0,
        }),
        StimulusSpec::Gabor(GaborSpec {
            center_az_deg: 0.0,
            center_el_deg: 0.0,
            sigma_deg: 5.0,
            direction_deg: 0.0,
            sf_cpd: 0.1,
            tf_hz: 1.0,
            contrast: 1.0,
            phase_deg: 0.0,
        }),
    ] {
        let text = toml::to_string(&spec).unwrap();
        assert_eq!(
            toml::from_str::<StimulusSpec>(&text).unwrap(),
            spec,
            "{text}"
        );
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let typo = "kind = \"grating\"\ndirection_deg = 90.0\nsf_cpd = 0.04\ntf_hz = 2.0\ncontrast = 1.0\nconstrast = 1\n";
    let e = toml::from_str::<StimulusSpec>(typo)
        .unwrap_err()
        .to_string();
    assert!(e.contains("constrast"), "{e}");
    let typo = "kind = \"pink_noise\"\nseed = 1\ncontrast = 1.0\nexponnent = 2\n";
    assert!(toml::from_str::<StimulusSpec>(typo).is_err());
}

#[test]
fn invalid_parameters_name_the_field() {
    let bad = StimulusSpec::grating(0.0, -1.0, 1.0, 0.5, 0.0);
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("sf_cpd"), "{e}");
    let bad = RandomDotsSpec {
        seed: 0,
        area: Rect {
            az_deg: [-60.0, 60.0],
            el_deg: [-30.0, 30.0],
        },
        density_per_deg2: 10.0,
        dot_radius_deg: 1.0,
        direction_deg: 0.0,
        speed_dps: 10.0,
        coherence: 0.5,
        lifetime_frames: 5,
        update_hz: 60.0,
        polarity: Polarity::White,
        contrast: 1.0,
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("random_dots.density_per_deg2") && e.contains("72000 dots"),
        "{e}"
    );
}

#[test]
fn specs_outside_the_field_of_view_are_rejected() {
    let fov = Projection::Linear(ViewGeometry::default()).field_of_view();
    let gabor = StimulusSpec::Gabor(GaborSpec {
        center_az_deg: 80.0,
        center_el_deg: 0.0,
        sigma_deg: 5.0,
        direction_deg: 0.0,
        sf_cpd: 0.1,
        tf_hz: 1.0,
        contrast: 1.0,
        phase_deg: 0.0,
    });
    assert!(gabor.validate().is_ok());
    let e = gabor.validate_for(&fov).unwrap_err().to_string();
    assert!(
        e.contains("gabor.center") && e.contains("field of view"),
        "{e}"
    );
    let mut s = sparse();
    s.grid = Rect {
        az_deg: [70.0, 90.0],
        el_deg: [-20.0, 20.0],
    };
    let e = StimulusSpec::SparseNoise(s)
        .validate_for(&fov)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sparse_noise.grid"), "{e}");
}

#[test]
fn trial_lists_schedule_gray_between_trials() {
    let text = r#"
gray_s = 0.5
[[trials]]
duration_s = 1.0
spec = { kind = "grating", direction_deg = 90, sf_cpd = 0.04, tf_hz = 2, contrast = 1 }
[[trials]]
duration_s = 0.25
spec = { kind = "gray" }
"#;
    let list: TrialList = toml::from_str(text).unwrap();
    list.validate(None).unwrap();
    let fps = 60.0;
    assert_eq!(list.total_frames(fps), 30 + 60 + 30 + 15 + 30);
    assert_eq!(list.at_frame(29, fps), Showing::Gray);
    assert_eq!(
        list.at_frame(30, fps),
        Showing::Trial { index: 0, frame: 0 }
    );
    assert_eq!(
        list.at_frame(89, fps),
        Showing::Trial {
            index: 0,
            frame: 59
        }
    );
    assert_eq!(list.at_frame(90, fps), Showing::Gray);
    assert_eq!(
        list.at_frame(120, fps),
        Showing::Trial { index: 1, frame: 0 }
    );
    assert_eq!(list.at_frame(135, fps), Showing::Gray);
    let empty: TrialList = toml::from_str("trials = []").unwrap();
    assert!(
        empty
            .validate(None)
            .unwrap_err()
            .to_string()
            .contains("trials.trials")
    );
}
