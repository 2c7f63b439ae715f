//! The Inception tile (#18): the protocol's notes, built from the protocol's own record types,
//! folded into the state and served; measured means and SEMs checked against closed forms,
//! images against the pixels the notes carry (decoded from the served PNG).

use super::*;
use crate::stages::decide::inception::design::{DesignMessage, DesignTimes, DesignedStimulus};
use crate::stages::decide::inception::records::{
    ChosenTarget, Contrast, PreRegistration, Role, RoleTag, StimulusId, TargetCell, TargetRule,
    VerifyTrial,
};
use crate::vocab::clock::RigTime;

fn note(event: &str, v: impl serde::Serialize) -> DashEvent {
    let mut v = serde_json::to_value(v).expect("json");
    v.as_object_mut()
        .expect("object")
        .insert("event".into(), event.into());
    DashEvent::Inception(v)
}

fn stim(
    id: &str,
    role: Role,
    target: Option<u32>,
    seed: u8,
    predicted: Vec<f64>,
) -> DesignedStimulus {
    DesignedStimulus {
        id: StimulusId(id.into()),
        tag: RoleTag { role, target },
        width: 6,
        height: 4,
        pixels: (0..24u8)
            .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
            .collect(),
        predicted,
    }
}

/// Two targets; target 0's MEI (low), target 0's best pool stimulus and one random control;
/// a verify block presenting them with known responses; the verdict line.
fn protocol() -> (Vec<DashEvent>, Vec<DesignedStimulus>) {
    let low = Role::Mei {
        contrast: Contrast::Low,
    };
    let stimuli = vec![
        stim("pool/3", Role::BestPool, Some(0), 3, vec![1.0, 0.5]),
        stim("pool/9", Role::Random, None, 5, vec![0.25, 0.75]),
        stim("mei/r1/t0/low", low, Some(0), 7, vec![2.5, 0.125]),
    ];
    let cell = |cell| TargetCell { plane: 0, cell };
    let mut events = vec![
        note(
            "inception.phase",
            json!({"at_ns": 0, "from": "Record { round: 1 }", "to": "Design { round: 1 }", "fallback": false, "trial": 40}),
        ),
        note(
            "inception.preregistration",
            PreRegistration {
                round: 1,
                at: RigTime::from_nanos(1),
                rule: TargetRule {
                    min_heldout_cc: 0.2,
                    max_targets: 2,
                },
                candidates: 30,
                targets: vec![
                    ChosenTarget {
                        cell: cell(4),
                        heldout_cc: 0.7,
                    },
                    ChosenTarget {
                        cell: cell(11),
                        heldout_cc: 0.5,
                    },
                ],
            },
        ),
        note(
            "inception.design_message",
            json!({"round": 1, "taken_at_trial": 41, "payload": DesignMessage::Screened {
                stimuli: stimuli[..2].to_vec(), times: DesignTimes::default() }}),
        ),
        note(
            "inception.design_message",
            json!({"round": 1, "taken_at_trial": 45, "payload": DesignMessage::Designed {
                stimuli: stimuli[2..].to_vec(), times: DesignTimes::default() }}),
        ),
    ];
    // Presentations 0..6: MEI, pool, random, MEI, pool, random; responses per target.
    let order = [2usize, 0, 1, 2, 0, 1];
    let responses = [
        [3.0, 0.0],
        [1.0, 9.0],
        [0.5, 2.0],
        [5.0, 0.0],
        [2.0, 9.0],
        [1.5, 4.0],
    ];
    for (i, (&s, r)) in order.iter().zip(responses).enumerate() {
        events.push(note(
            "inception.verify_trial",
            json!(VerifyTrial {
                round: 1,
                index: i as u32,
                stimulus: stimuli[s].id.clone(),
                roles: vec![stimuli[s].tag],
                predicted: stimuli[s].predicted.clone(),
            }),
        ));
        events.push(note(
            "inception.response",
            json!({"round": 1, "index": i, "measured": r}),
        ));
    }
    // A response to a presentation never announced is counted, not folded in.
    events.push(note(
        "inception.response",
        json!({"round": 1, "index": 99, "measured": [100.0, 100.0]}),
    ));
    events.push(note(
        "inception.verdict",
        json!({"phase": "Done", "rounds": [{"round": 1, "verdict": {"line": "MEI (low contrast) beat the best measured pool stimulus for 1 of 2 targets",
            "mei_low": {"selectivity": {"test": {"p_value": 0.5}}}}}]}),
    ));
    (events, stimuli)
}

fn by_id<'a>(target: &'a Value, id: &str) -> &'a Value {
    target["stimuli"]
        .as_array()
        .expect("stimuli")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {target}"))
}

#[test]
fn the_tile_fills_in_as_the_verify_block_runs() {
    let (events, _) = protocol();
    let mut state = DashState::new(8, 30.0);
    assert!(
        state.snapshot()["inception"].is_null(),
        "no protocol, no tile"
    );
    let verdict_at = events.len() - 1;
    for (k, e) in events.into_iter().enumerate() {
        if k == verdict_at {
            let before = state.snapshot();
            assert!(before["inception"]["rounds"][0]["line"].is_null());
        }
        state.apply(e);
    }
    let snap = state.snapshot();
    let inc = &snap["inception"];
    assert_eq!(state.event_counts().1, 0, "{snap}");
    assert_eq!(inc["phase"], "Done");
    assert_eq!(inc["unmatched_responses"], 1);
    let round = &inc["rounds"][0];
    assert_eq!(round["design"], "designed");
    assert_eq!(round["responses"], 6);
    assert_eq!(round["selectivity_p"], 0.5);
    assert!(
        round["line"]
            .as_str()
            .unwrap()
            .starts_with("MEI (low contrast) beat")
    );
    let t0 = &round["targets"][0];
    assert_eq!(t0["cell"], json!({"plane": 0, "cell": 4}));
    // Target 0's row: its MEI first, then its best pool stimulus, then the shared control.
    let ids: Vec<&str> = t0["stimuli"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mei/r1/t0/low", "pool/3", "pool/9"]);
    // Mean and sample SEM (n - 1) of {3, 5}: 4 ± 1; of {1, 2}: 1.5 ± 0.5.
    let mei = by_id(t0, "mei/r1/t0/low");
    assert_eq!(mei["predicted"], 2.5);
    assert_eq!(mei["measured"], json!({"mean": 4.0, "sem": 1.0, "n": 2}));
    assert_eq!(
        by_id(t0, "pool/3")["measured"],
        json!({"mean": 1.5, "sem": 0.5, "n": 2})
    );
    // The random control is shown for both targets; target 1 sees its own responses: {2, 4}.
    let t1 = &round["targets"][1];
    let ids: Vec<&str> = t1["stimuli"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pool/9"], "target 1 has no stimuli of its own here");
    let random = by_id(t1, "pool/9");
    assert_eq!(random["predicted"], 0.75);
    assert_eq!(random["measured"], json!({"mean": 3.0, "sem": 1.0, "n": 2}));
}

#[test]
fn malformed_notes_are_rejected_not_folded() {
    let mut state = DashState::new(8, 30.0);
    // A design result before its round's pre-registration, a note without an event, an
    // unknown event, a pre-registration that is not one.
    for bad in [
        json!({"event": "inception.design_message", "round": 3, "payload": {"message": "failed", "reason": "x"}}),
        json!({"round": 1}),
        json!({"event": "inception.nonsense"}),
        json!({"event": "inception.preregistration", "round": "one"}),
    ] {
        state.apply(DashEvent::Inception(bad));
    }
    assert_eq!(state.event_counts(), (4, 4));
    let inc = &state.snapshot()["inception"];
    assert_eq!(inc["rounds"], json!([]), "{inc}");
}

/// `/inception.png` serves each image the notes carried, pixel for pixel; a bad query is a
/// 400 naming what it needs; an unknown image a 404.
#[tokio::test]
async fn inception_images_are_served_as_pngs() {
    let dash = Dashboard::start(loopback()).expect("start");
    let feed = dash.feed();
    let (events, stimuli) = protocol();
    for e in events {
        feed.send(e);
    }
    let addr = target(&dash);
    let snap = loop {
        let r = wait_for_ok(addr, "/snapshot.json").await;
        let v: Value = serde_json::from_slice(&r.body).expect("snapshot");
        if v["inception"]["rounds"][0]["line"].is_string() {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for t in snap["inception"]["rounds"][0]["targets"]
        .as_array()
        .unwrap()
    {
        for s in t["stimuli"].as_array().unwrap() {
            let path = format!("/inception.png?round=1&stimulus={}", s["stimulus"]);
            let r = wait_for_ok(addr, &path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            let (info, px) = decode_png(&r.body);
            let want = stimuli.iter().find(|d| d.id.0 == s["id"]).unwrap();
            assert_eq!((info.width, info.height), (want.width, want.height));
            assert_eq!(info.color_type, png::ColorType::Grayscale);
            assert_eq!(px, want.pixels, "{path}");
        }
    }
    let r = get(addr, "/inception.png?round=1", &[]).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("round=R&stimulus=I"), "{}", r.text());
    let r = get(addr, "/inception.png?round=2&stimulus=0", &[]).await;
    assert_eq!(r.status, 404);
    dash.shutdown();
}
