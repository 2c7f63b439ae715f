use super::*;

#[test]
fn embedded_default_parses_and_validates() {
    let c = Config::default_sim();
    assert_eq!(c.source.kind, SourceKind::Sim);
    assert_eq!(c.session.duration_s, 90.0);
    assert_eq!(c.trials.policy, Policy::Adaptive);
    // 90 s of 2 s stimuli and 1 s gray: 30 trials, as the main job shows.
    assert_eq!(c.planned_trials(), Some(30));
}

#[test]
fn unknown_field_is_named() {
    let text = DEFAULT_SIM_TOML.replace("[imaging]", "[imaging]\nwidht = 3");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("widht"), "{e}");
}

#[test]
fn out_of_range_value_names_field_and_allowed() {
    let text = DEFAULT_SIM_TOML.replace("frame_rate_hz = 30.0", "frame_rate_hz = -3.0");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(
        e.contains("imaging.frame_rate_hz") && e.contains("positive"),
        "{e}"
    );
}

#[test]
fn several_planes_of_true_footprints_point_to_the_pipeline() {
    let text = DEFAULT_SIM_TOML
        .replace("planes = 1", "planes = 2")
        .replace(
            "extraction = \"pipeline\"",
            "extraction = \"truth_footprints\"",
        );
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(
        e.contains("imaging.extraction") && e.contains("\"pipeline\""),
        "{e}"
    );
    // The pipeline detects each plane's own cells: two simulated planes are fine.
    let text = DEFAULT_SIM_TOML.replace("planes = 1", "planes = 2");
    assert_eq!(
        Config::from_toml(&text, "t.toml").unwrap().imaging.planes,
        2
    );
}

#[test]
fn a_bad_design_setting_is_named() {
    let text = DEFAULT_SIM_TOML.replace("random_share = 0.5", "random_share = 1.5");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("trials.design.random_share"), "{e}");
    let text = DEFAULT_SIM_TOML.replace("decision_lead_s = 0.5", "decision_lead_s = 0.05");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(
        e.contains("trials.decision_lead_s") && e.contains("three imaging frame periods"),
        "{e}"
    );
    let text = DEFAULT_SIM_TOML.replace("response_wait_s = 0.2", "response_wait_s = -1.0");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("trials.response_wait_s"), "{e}");
    let text = DEFAULT_SIM_TOML.replace("objective = \"info_gain\"", "objective = \"bogus\"");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("bogus") && e.contains("info_gain"), "{e}");
}

#[test]
fn the_display_section_reads_a_live_monitor_and_names_bad_fields() {
    let gamma = (0..256)
        .map(|i| (i as f64 / 255.0).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let text = DEFAULT_SIM_TOML
        .replace(
            "backend = \"sim\"",
            &format!("backend = \"window\"\ngamma = {{ table = [{gamma}] }}"),
        )
        .replace(
            "[trials]\n",
            "[display.window]\nmonitor = \"DP-1\"\nfullscreen = false\n\
             [display.monitor]\nwidth_px = 2560\nheight_px = 1440\nwidth_cm = 60.0\n\
             height_cm = 34.0\ndistance_cm = 20.0\n[trials]\n",
        );
    let c = Config::from_toml(&text, "t.toml").unwrap();
    assert_eq!(c.display.backend, DisplayBackend::Window);
    assert_eq!(c.display.monitor.width_px, 2560);
    assert_eq!(
        c.display.window.monitor,
        Some(twinloop_stimulus::window::MonitorChoice::Name(
            "DP-1".into()
        ))
    );
    assert!(!c.display.window.fullscreen);
    assert!(c.display.gamma.is_some());
    let bad = text.replace("distance_cm = 20.0", "distance_cm = -1.0");
    let e = Config::from_toml(&bad, "t.toml").unwrap_err().to_string();
    assert!(e.contains("display.monitor.distance_cm"), "{e}");
    let bad = text.replace("backend = \"window\"", "backend = \"screen\"");
    let e = Config::from_toml(&bad, "t.toml").unwrap_err().to_string();
    assert!(e.contains("screen") && e.contains("offscreen"), "{e}");
}

#[test]
fn wrong_type_is_a_parse_error_with_location() {
    let text = DEFAULT_SIM_TOML.replace("duration_s = 90.0", "duration_s = \"long\"");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("duration_s") && e.contains("t.toml"), "{e}");
}

#[test]
fn twin_section_defaults_to_the_pretrained_core_and_names_a_missing_weights_file() {
    let c = Config::default_sim();
    assert_eq!(c.twin.core, CoreKind::Pretrained);
    assert_eq!(
        (c.twin.grid_rows, c.twin.grid_cols),
        (
            TwinSettings::default().grid_rows,
            TwinSettings::default().grid_cols
        )
    );
    // A manifest from before the section existed still parses.
    let mut json = serde_json::to_value(&c).unwrap();
    json.as_object_mut().unwrap().remove("twin");
    let old: Config = serde_json::from_value(json).unwrap();
    assert_eq!(old.twin, TwinSettings::default());
    let text = DEFAULT_SIM_TOML.replace("core = \"pretrained\"", "core = \"fnn\"");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("twin.weights") && e.contains("required"), "{e}");
    let text = DEFAULT_SIM_TOML.replace("grid_rows = 6", "grid_rows = 0");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("twin.grid_rows"), "{e}");
    let text = DEFAULT_SIM_TOML.replace("grid_cols = 10", "weigths = \"w.safetensors\"");
    let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
    assert!(e.contains("weigths"), "{e}");
}

#[test]
fn pool_smaller_than_its_rings_is_rejected() {
    let mut c = Config::default_sim();
    c.rings.frame_pool = 8;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("rings.frame_pool"), "{e}");
}
