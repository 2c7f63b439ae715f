//! The Python client package (`python/twinloop_client`) against the daemon's own definitions and
//! a running session: its constants are the daemon's (stream and dtype codes, the header
//! layout), headers cross between the two byte for byte, its offline checks pass, the shipped
//! bridge config drives a session through it, a device-clocked config without ticks is caught,
//! and its `Subscriber` decodes every stream a simulated session publishes into what the
//! session's log holds.
//!
//! The clean and hostile bridge streams through the client are `python_bridge.rs`
//! (`examples/bridge.py` is a user of the package). Needs a Python with pyzmq and numpy
//! (`TWINLOOP_PYTHON`); without them these tests fail, by design.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use twinloop_e2e::python::{python_command, repo_root, require_pyzmq, run_session_with_peer};
use twinloop_e2e::{bridge_test_config, fast_sim_config, hold_every_frame};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::config::{Config, Extraction};
use twinloop_rig::online::sources::zmq_ingest::IngestEnd;
use twinloop_rig::stages::clocks::TimeBase;
use twinloop_rig::vocab::protocol::{
    ClockDomain, Dtype, HEADER_LEN, Header, MAGIC, Stream, SyncCode, VERSION,
};
use twinloop_rig::vocab::records::{self, FlipRecord, RecordKind, RegistrationRecord};

fn client_script(name: &str) -> OsString {
    repo_root()
        .join("python/twinloop_client/tests")
        .join(name)
        .into_os_string()
}

/// Runs `python args...` with the client on its path; its stdout as JSON (panics on failure).
fn python_json(args: &[&str]) -> serde_json::Value {
    require_pyzmq();
    let out = python_command().args(args).output().expect("run Python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{stdout:?}: {e}"))
}

fn all_dtypes() -> Vec<Dtype> {
    (0..=u8::MAX).filter_map(Dtype::from_code).collect()
}

/// The snake_case name serde gives a code (the names the client uses too), from
/// `serde_json::to_value(code)`.
fn serde_name(v: serde_json::Result<serde_json::Value>) -> String {
    v.ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("a unit variant")
}

#[test]
fn the_clients_codes_and_header_layout_are_the_daemons() {
    let d = python_json(&["-m", "twinloop_client.protocol"]);
    assert_eq!(d["magic"].as_str().map(str::as_bytes), Some(&MAGIC[..]));
    assert_eq!(d["version"], VERSION);
    assert_eq!(d["header_len"], HEADER_LEN);

    let streams = d["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), Stream::ALL.len(), "every stream, no more");
    for s in streams {
        let code = s["code"].as_u64().expect("code") as u16;
        let rust = Stream::from_code(code).unwrap_or_else(|| panic!("no Rust stream {code}"));
        assert_eq!(s["topic"], rust.topic(), "{s}");
        assert_eq!(s["input"], rust.is_input(), "{s}");
        let allowed: BTreeSet<u64> = all_dtypes()
            .into_iter()
            .filter(|&dt| rust.allows(dt))
            .map(|dt| dt as u64)
            .collect();
        let client: BTreeSet<u64> = serde_json::from_value(s["dtypes"].clone()).expect("dtypes");
        assert_eq!(client, allowed, "dtypes of {rust}");
    }
    let dtypes = d["dtypes"].as_array().expect("dtypes");
    assert_eq!(dtypes.len(), all_dtypes().len());
    for dt in dtypes {
        let rust = Dtype::from_code(dt["code"].as_u64().expect("code") as u8).expect("a dtype");
        assert_eq!(dt["size"], rust.size_bytes(), "{dt}");
        assert_eq!(dt["name"], serde_name(serde_json::to_value(rust)), "{dt}");
    }
    let sync: BTreeMap<String, i64> = serde_json::from_value(d["sync_codes"].clone()).unwrap();
    let rust_sync: BTreeMap<String, i64> = (i64::from(i8::MIN)..=i64::from(i8::MAX))
        .filter_map(SyncCode::from_code)
        .map(|c| (serde_name(serde_json::to_value(c)), c as i64))
        .collect();
    assert_eq!(sync, rust_sync);
    let domains: BTreeMap<String, u8> = serde_json::from_value(d["clock_domains"].clone()).unwrap();
    let rust_domains: BTreeMap<String, u8> = (0..=u8::MAX)
        .filter_map(ClockDomain::from_code)
        .map(|c| (c.name().to_owned(), c.code()))
        .collect();
    assert_eq!(domains, rust_domains);

    // The client's offsets, read off a header the daemon encodes with a distinct value in
    // every field; together they tile the 64 bytes.
    let h = distinct_header();
    let bytes = h.encode();
    let mut covered = 0;
    for f in d["header_fields"].as_array().expect("header_fields") {
        let (name, offset) = (f[0].as_str().unwrap(), f[1].as_u64().unwrap() as usize);
        let want: Vec<u8> = match name {
            "magic" => MAGIC.to_vec(),
            "version" => VERSION.to_le_bytes().to_vec(),
            "stream" => h.stream.code().to_le_bytes().to_vec(),
            "dtype" => vec![h.dtype as u8],
            "ndim" => vec![h.ndim],
            "plane" => vec![h.plane],
            "channel" => vec![h.channel],
            "flags" => h.flags.to_le_bytes().to_vec(),
            "seq" => h.seq.to_le_bytes().to_vec(),
            "t_ns" => h.t_ns.to_le_bytes().to_vec(),
            "shape" => h.shape.iter().flat_map(|d| d.to_le_bytes()).collect(),
            "aux" => h.aux.to_le_bytes().to_vec(),
            "sent_ns" => h.sent_ns.to_le_bytes().to_vec(),
            other => panic!("the client names a field the daemon lacks: {other}"),
        };
        assert_eq!(offset, covered, "{name} follows the field before it");
        assert_eq!(&bytes[offset..offset + want.len()], &want[..], "{name}");
        covered += want.len();
    }
    assert_eq!(covered, HEADER_LEN);
}

fn distinct_header() -> Header {
    let mut h = Header::new(
        Stream::View,
        Dtype::U8,
        &[36, 64],
        0x0102_0304_0506_0708,
        -5,
    );
    h.plane = 3;
    h.channel = 4;
    h.flags = 0x0a0b_0c0d;
    h.aux = -1;
    h.sent_ns = 0x1122_3344_5566;
    h
}

#[test]
fn headers_cross_between_daemon_and_client_byte_for_byte() {
    let h = distinct_header();
    let hex: String = h.encode().iter().map(|b| format!("{b:02x}")).collect();
    let code = "import sys, json; from twinloop_client.protocol import Header; \
                h = Header.decode(bytes.fromhex(sys.argv[1])); \
                print(json.dumps({'hex': h.encode().hex(), 'stream': int(h.stream), \
                'dtype': int(h.dtype), 'shape': list(h.shape), 'seq': h.seq, 't_ns': h.t_ns, \
                'aux': h.aux, 'plane': h.plane, 'channel': h.channel, 'flags': h.flags, \
                'sent_ns': h.sent_ns}))";
    let v = python_json(&["-c", code, &hex]);
    assert_eq!(v["hex"], hex, "the client re-encodes the daemon's bytes");
    assert_eq!(v["stream"], h.stream.code());
    assert_eq!(v["dtype"], h.dtype as u8);
    assert_eq!(v["shape"], serde_json::json!([36, 64]));
    assert_eq!(v["seq"], h.seq);
    assert_eq!(v["t_ns"], h.t_ns);
    assert_eq!(v["aux"], h.aux);
    assert_eq!(
        (v["plane"].as_u64(), v["channel"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(v["flags"], h.flags);
    assert_eq!(v["sent_ns"], h.sent_ns);
}

#[test]
fn the_clients_offline_checks_pass() {
    let script = client_script("test_offline.py");
    let v = python_json(&[script.to_str().expect("a UTF-8 path")]);
    assert_eq!(v["ok"], true);
}

#[test]
fn a_session_from_the_shipped_bridge_config_takes_the_clients_stream_whole() {
    let out = tempfile::tempdir().expect("tempdir");
    let cfg = bridge_test_config(out.path(), 64, 64);
    cfg.validate().expect("still valid");
    // Fewer frames than the stage's ring holds: none can be skipped, however slow the machine.
    let frames = cfg.rings.stage_ring as u64 - 2;
    let args = move |ingest: &str, publish: &str| -> Vec<OsString> {
        let mut a = vec![repo_root().join("examples/bridge.py").into_os_string()];
        let n = frames.to_string();
        a.extend(
            [
                "--ingest",
                ingest,
                "--publish",
                publish,
                "--frames",
                &n,
                "--size",
                "64x64",
                "--check-grid",
                "16",
            ]
            .map(OsString::from),
        );
        a
    };
    let (output, s) = run_session_with_peer(&cfg, args, false);
    let report = output.report("bridge.py");
    assert_eq!(s.ingest_end, IngestEnd::SourceEnded);
    let c = &s.counters;
    assert_eq!((c.frames_in, c.frames_processed), (frames, frames), "{c:?}");
    assert_eq!(report["activity_received"], frames);
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    // On the rig clock nothing is mapped, so nothing is left unmapped either.
    for d in &s.clocks {
        assert_eq!(d.samples_unmapped, 0, "{d:?}");
    }
}

/// The trap of docs/protocol.md §0: a bridge config that puts the microscope on its device
/// clock (as `configs/sim.toml` does) and a bridge that sends no ticks. The heartbeats say so
/// (`clocks_ticking` false), the client warns, and `bridge.py` refuses to call that a success.
#[test]
fn a_bridge_without_clock_ticks_on_a_device_clocked_config_is_told() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut cfg = bridge_test_config(out.path(), 64, 64);
    cfg.clocks.two_photon = TimeBase::Device;
    // Past the 300 samples after which a device-clocked stream without ticks is flagged.
    let frames = 320u64;
    hold_every_frame(&mut cfg, frames);
    cfg.validate().expect("still valid");
    let args = move |ingest: &str, publish: &str| -> Vec<OsString> {
        let mut a = vec![repo_root().join("examples/bridge.py").into_os_string()];
        let n = frames.to_string();
        a.extend(
            [
                "--ingest",
                ingest,
                "--publish",
                publish,
                "--frames",
                &n,
                "--size",
                "64x64",
            ]
            .map(OsString::from),
        );
        a
    };
    let (output, s) = run_session_with_peer(&cfg, args, false);
    assert!(
        !output.status.success(),
        "bridge.py passed a session whose frames are off the rig clock:\n{}",
        output.stdout
    );
    assert!(
        output.stderr.contains("expects clock ticks"),
        "bridge.py says why: {}",
        output.stderr
    );
    assert!(
        output.stderr.contains("sends no ticks"),
        "the client warned: {}",
        output.stderr
    );
    let c = &s.counters;
    assert_eq!(c.frames_in, frames, "the frames still came in: {c:?}");
    assert_eq!(c.clock_domains_unticked, 1, "{c:?}");
    let d = s
        .clocks
        .iter()
        .find(|d| d.domain == ClockDomain::TwoPhoton)
        .expect("the two-photon clock's summary");
    assert_eq!(d.samples_unmapped, frames, "no tick, no mapping: {d:?}");
}

#[test]
fn a_two_plane_signed_microscope_on_its_own_clock_is_numbered_and_mapped() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut cfg = bridge_test_config(out.path(), 64, 64);
    cfg.imaging.planes = 2;
    cfg.clocks.two_photon = TimeBase::Device;
    let (frames, drift_ppm) = (600u64, 30.0);
    // Every frame gets its activity, however slow the machine (the peer checks them all).
    hold_every_frame(&mut cfg, frames);
    cfg.validate().expect("still valid");
    let args = move |ingest: &str, publish: &str| -> Vec<OsString> {
        let mut a = vec![client_script("bridge_planes_clocks.py")];
        let (n, ppm) = (frames.to_string(), drift_ppm.to_string());
        a.extend([ingest, publish, &n, "16", &ppm].map(OsString::from));
        a
    };
    let (output, s) = run_session_with_peer(&cfg, args, false);
    let report = output.report("bridge_planes_clocks.py");
    let c = &s.counters;
    assert_eq!(c.frames_in, frames, "{c:?}");
    assert_eq!(
        (c.gaps, c.missing),
        (0, 0),
        "each plane numbered on its own"
    );
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert_eq!((c.stage_skips, c.bus_drops), (0, 0), "{c:?}");
    assert_eq!(report["activity_received"], frames, "{report}");
    assert_eq!(
        c.sync_in,
        2 * frames.div_ceil(10),
        "a rig and a device tick per pulse"
    );
    let d = s
        .clocks
        .iter()
        .find(|d| d.domain == ClockDomain::TwoPhoton)
        .expect("the two-photon clock's summary");
    assert_eq!(d.samples_unmapped, 0, "{d:?}");
    assert!(d.samples_fitted > 0, "{d:?}");
    // The device runs `drift_ppm` fast: rig = dev / (1 + drift), exactly, on noise-free ticks.
    let rate = d.mapping.expect("a mapping").rate;
    let want = 1.0 / (1.0 + drift_ppm * 1e-6);
    assert!((rate - want).abs() < 1e-9, "rate {rate}, want {want}");
    assert_eq!(
        report["rate"].as_f64(),
        Some(rate),
        "the last published mapping"
    );
}

/// A short adaptive session with every output on: the imaging pipeline (registration, cells),
/// device clocks, behaviour, the simulated display's views and the twin's predictions.
fn every_output_config(out_dir: &std::path::Path) -> Config {
    let mut cfg = fast_sim_config(out_dir, 20.0);
    // The session waits for the subscriber to start while this timer runs.
    cfg.source.idle_timeout_s = 30.0;
    cfg.imaging.extraction = Extraction::Pipeline;
    cfg.imaging.width = 256;
    cfg.imaging.height = 256;
    cfg.sim.neurons = 150;
    cfg.imaging.pipeline.cells.calibration_frames = 120;
    cfg.imaging.pipeline.cells.min_frames = 100;
    cfg.trials.stimulus_s = 0.8;
    cfg.trials.gray_s = 0.4;
    cfg.trials.design.warmup_trials = 4;
    cfg.trials.design.test_every = 3;
    // Machine speed must not decide what is published: no decision deadline; frames at the
    // microscope's pace, so the imaging calibration (held frames, at most 160) keeps up; and
    // a stage ring that holds every frame of the session, so that a slow imaging stage skips
    // none. As fast as it could go, a loaded machine processed 280 of 600 frames, too few to
    // place any receptive field, and published no prediction.
    cfg.session.realtime = true;
    cfg.trials.design.deadline_ms = 0.0;
    cfg.trials.design.twin_refit_every = 0;
    let frames = (cfg.session.duration_s * cfg.imaging.frame_rate_hz).ceil() as u64;
    hold_every_frame(&mut cfg, frames);
    cfg.validate().expect("a valid config");
    cfg
}

/// A stage ring longer than the session's `frames` (all it will take): ingest never finds it
/// full, so the imaging stage skips no frame however slow the machine (the frame pool grows
/// to match).
fn json_records(
    recs: &[twinloop_rig::backbone::session_log::Record],
    kind: RecordKind,
) -> Vec<serde_json::Value> {
    recs.iter()
        .filter(|r| r.info.kind == kind as u16)
        .map(|r| records::decode_json("json", &r.payload).expect("a JSON record"))
        .collect()
}

#[test]
fn the_subscriber_decodes_every_stream_a_simulated_session_publishes() {
    let out = tempfile::tempdir().expect("tempdir");
    let cfg = every_output_config(out.path());
    let report_path = out.path().join("subscriber.json");
    let rp = report_path.clone().into_os_string();
    let args = move |_ingest: &str, publish: &str| {
        vec![client_script("subscribe_all.py"), publish.into(), rp]
    };
    let (output, s) = run_session_with_peer(&cfg, args, true);
    let summary = output.report("subscribe_all.py");
    assert_eq!(
        summary["never_seen"],
        serde_json::json!([]),
        "every output stream decoded at least once: {summary}"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("the report")).unwrap();
    let c = &s.counters;
    let dir = SessionDir::open(&s.session_dir).expect("the session directory");
    let (recs, _) = dir
        .open_log()
        .and_then(|l| l.read_to_end())
        .expect("the session log");
    let of = |kind: RecordKind| recs.iter().filter(move |x| x.info.kind == kind as u16);
    // The bus may drop under load (counted); each dropped message is one fewer received.
    let enough = |received: usize, logged: usize, what: &str| {
        assert!(
            received as u64 + c.bus_drops >= logged as u64 && received <= logged,
            "{what}: {received} received, {logged} logged, {} bus drops",
            c.bus_drops
        );
    };

    // Activity: every received vector is the logged one, bit for bit.
    let activity = r["activity"].as_object().expect("activity");
    let logged: BTreeMap<u64, Vec<f32>> = of(RecordKind::Activity)
        .map(|x| records::decode_activity(&x.payload).expect("activity record"))
        .map(|a| (a.frame_seq, a.values))
        .collect();
    enough(activity.len(), logged.len(), "activity");
    for (seq, values) in activity {
        let want = &logged[&seq.parse::<u64>().unwrap()];
        let got: Vec<f32> = values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert!(
            got.iter()
                .map(|v| v.to_bits())
                .eq(want.iter().map(|v| v.to_bits())),
            "activity of frame {seq}"
        );
    }
    // Predictions: one value per cell of a frame that had activity.
    let predictions = r["prediction"].as_object().expect("prediction");
    for (seq, n) in predictions {
        assert_eq!(n, logged[&seq.parse::<u64>().unwrap()].len(), "frame {seq}");
    }

    // Flips and views: the logged flips, each view at the twin's resolution on a flip.
    let flips: BTreeMap<u64, FlipRecord> = of(RecordKind::Flip)
        .map(|x| FlipRecord::decode(&x.payload).expect("flip record"))
        .map(|f| (f.display_frame, f))
        .collect();
    let got_flips = r["flips"].as_array().expect("flips");
    enough(got_flips.len(), flips.len(), "flips");
    for f in got_flips {
        let want = &flips[&f[0].as_u64().unwrap()];
        assert_eq!(f[1], want.t.as_nanos(), "{f}");
        assert_eq!(
            (f[2].as_i64(), f[3].as_bool()),
            (Some(want.trial), Some(want.onset))
        );
    }
    for v in r["views"].as_array().expect("views") {
        let flip = &flips[&v[0].as_u64().unwrap()];
        assert_eq!(
            (v[1].as_i64(), v[2].as_bool()),
            (Some(flip.trial), Some(flip.onset))
        );
        let shape = [cfg.display.view_height, cfg.display.view_width];
        assert_eq!(v[3], serde_json::json!(shape), "{v}");
    }

    // Decisions and onsets: the logged ones. The selector decides the first trials as the
    // session starts, before any subscriber can have joined (a subscriber misses what is
    // published before its subscription is live): those are missing at the front only.
    let decisions = json_records(&recs, RecordKind::Decision);
    let got = r["decisions"].as_array().expect("decisions");
    let received: BTreeSet<u64> = got.iter().filter_map(|d| d[0].as_u64()).collect();
    let first = *received.first().expect("a decision received");
    let missed_later: Vec<u64> = decisions
        .iter()
        .filter_map(|w| w["trial"].as_u64())
        .filter(|t| *t > first && !received.contains(t))
        .collect();
    assert!(
        missed_later.len() as u64 <= c.bus_drops,
        "decisions of trials {missed_later:?} were logged, not received; {} bus drops \
         (received {received:?})",
        c.bus_drops
    );
    eprintln!(
        "decisions: {} logged, {} received from trial {first}",
        decisions.len(),
        received.len()
    );
    for d in got {
        let want = decisions
            .iter()
            .find(|w| w["trial"] == d[0])
            .expect("logged");
        assert_eq!((&want["stimulus"], &want["mode"]), (&d[1], &d[2]), "{d}");
    }
    let onsets = json_records(&recs, RecordKind::Stimulus);
    let got = r["stimuli"].as_array().expect("stimuli");
    enough(got.len(), onsets.len(), "stimuli");
    for o in got {
        let want = onsets.iter().find(|w| w["trial"] == o[0]).expect("logged");
        assert_eq!(want["onset_t_ns"], o[2], "{o}");
        assert_eq!(want["display_frame"], o[3], "{o}");
    }

    // Clocks, cells, registration, behaviour: the logged records.
    let clocks = json_records(&recs, RecordKind::Clock);
    let got = r["clock"].as_array().expect("clock");
    enough(got.len(), clocks.len(), "clock updates");
    for u in got {
        let want = clocks
            .iter()
            .find(|w| w["domain"] == u[0] && w["generation"] == u[1])
            .unwrap_or_else(|| panic!("clock update {u} is logged"));
        assert_eq!((&want["state"], &want["mapping"]["rate"]), (&u[2], &u[3]));
        let domain = serde_json::from_value::<ClockDomain>(u[0].clone()).unwrap();
        assert_eq!(u[4], domain.code(), "the header's channel is the domain");
    }
    let cells = json_records(&recs, RecordKind::Cells);
    let got = r["cells"].as_array().expect("cells");
    assert_eq!(got.len(), cells.len(), "cells: once per plane");
    for (g, w) in got.iter().zip(&cells) {
        assert_eq!((&g["rows"], &g["offsets_s"]), (&w["rows"], &w["offsets_s"]));
        assert_eq!(g["rows"].as_array().map(Vec::len), Some(s.cells));
    }
    let registration: BTreeMap<u64, RegistrationRecord> = of(RecordKind::Registration)
        .map(|x| RegistrationRecord::decode(&x.payload).expect("registration record"))
        .map(|g| (g.frame_seq, g))
        .collect();
    let got = r["registration"].as_array().expect("registration");
    enough(got.len(), registration.len(), "registration");
    for g in got {
        let want = &registration[&g[0].as_u64().unwrap()];
        let shift = [want.registration.dy_px, want.registration.dx_px];
        assert_eq!(
            [g[2].as_f64().unwrap() as f32, g[3].as_f64().unwrap() as f32],
            shift
        );
    }
    let behaviour = json_records(&recs, RecordKind::Behaviour);
    let got = r["behaviour"].as_array().expect("behaviour");
    enough(got.len(), behaviour.len(), "behaviour");
    for b in got {
        let want = behaviour
            .iter()
            .find(|w| w["frame_seq"] == b[0])
            .expect("logged");
        assert_eq!((&want["t_ns"], &want["pupil"]), (&b[1], &b[2]), "{b}");
    }

    // Acks count two-photon frames from 0 and carry their hello's epoch as a u64 payload: the
    // simulated rig's hello names none, so 0 (an empty payload would decode as null).
    let acks = r["acks"].as_array().expect("acks");
    assert_eq!(
        acks.last().and_then(|a| a[0].as_u64()),
        Some(c.frames_in - 1),
        "the last ack is the last frame"
    );
    assert!(acks.iter().all(|a| a[1] == 0), "ack epochs: {acks:?}");
    let fin = &r["final_status"];
    assert_eq!(fin["state"], "ended");
    assert_eq!(fin["counters"]["frames_in"], c.frames_in);
    assert_eq!(fin["flow_window"], cfg.source.flow_window);
    assert_eq!(fin["counters"]["garbage_messages"], 0);
    // The simulated rig sends every device clock's ticks.
    assert_eq!(fin["clocks_ticking"], true);
    assert_eq!(fin["recording"], true);
}
