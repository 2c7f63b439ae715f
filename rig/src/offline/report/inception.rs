//! The inception loop's section: per round the one-line verdict, per target the MEI (low
//! contrast) and every control, measured mean ± SEM against the twin's prediction, Welch's test
//! against the best pool stimulus with its Benjamini–Hochberg q, and the selectivity matrix with
//! its permutation test. Read from `summary.json`'s `inception`, as the session wrote it.
//! Figures: per round, measured means ± SEM beside the twin's predictions; per target its MEIs
//! beside its controls as the verify block showed them (the pixels of the log's design notes,
//! inline PNGs); the selectivity matrix as a heat map.

use super::html::{esc, figure, num};
use super::plots::{self, Axes, ErrorSeries, cell_color};
use crate::backbone::image::gray_png_data_uri;
use crate::stages::decide::inception::design::DesignedStimulus;
use crate::stages::decide::inception::records::{Contrast, Role};
use serde_json::Value;
use std::fmt::Write;

/// Images are drawn this many times their size (they are a few dozen pixels wide).
const IMAGE_SCALE: u32 = 3;

/// `mean ± sem (n)` of a logged `MeanSem`.
fn mean_sem(v: &Value) -> String {
    let f = |k: &str| v.get(k).and_then(Value::as_f64);
    match (f("mean"), f("sem"), v.get("n").and_then(Value::as_u64)) {
        (Some(m), Some(s), Some(n)) => format!("{} ± {} ({n})", num(m), num(s)),
        (Some(m), None, Some(n)) => format!("{} ({n})", num(m)),
        _ => "—".into(),
    }
}

fn opt_num(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64).map_or("—".into(), num)
}

fn role_name(role: &Value) -> String {
    let r = role.get("role").and_then(Value::as_str).unwrap_or("?");
    match role.get("contrast").and_then(Value::as_str) {
        Some(c) => format!("MEI ({c} contrast)"),
        None => r.replace('_', " "),
    }
}

/// The section; `images` are the log's designed images by round ([`super::data::LogData`]).
pub fn section(out: &mut String, inception: Option<&Value>, images: &[(u32, DesignedStimulus)]) {
    let Some(inc) = inception else {
        out.push_str(
            "<p class=\"missing\">Not recorded: the session had no <code>[inception]</code> \
             section, or ended before its summary.</p>",
        );
        return;
    };
    let _ = write!(
        out,
        "<p id=\"inception-phase\">Protocol ended in phase {}; designs that fell back to the \
         library's predicted best: {}; designs that came after their fallback: {}.</p>",
        esc(inc["phase"].as_str().unwrap_or("?")),
        inc["fallbacks"],
        inc["late_designs"]
    );
    for round in inc["rounds"].as_array().into_iter().flatten() {
        round_section(out, round);
        let r = round["round"].as_u64().unwrap_or(0) as u32;
        let mine: Vec<&DesignedStimulus> = images
            .iter()
            .filter(|(k, _)| *k == r)
            .map(|(_, s)| s)
            .collect();
        image_rows(out, round, &mine);
    }
}

/// MEIs first, then the key baseline, then the other controls.
fn rank(role: Role) -> u8 {
    match role {
        Role::Mei {
            contrast: Contrast::Low,
        } => 0,
        Role::Mei {
            contrast: Contrast::Full,
        } => 1,
        Role::BestPool => 2,
        Role::LibraryBest => 3,
        Role::Random => 4,
    }
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Mei {
            contrast: Contrast::Low,
        } => "MEI (low contrast)",
        Role::Mei {
            contrast: Contrast::Full,
        } => "MEI (full contrast)",
        Role::BestPool => "best pool (measured)",
        Role::LibraryBest => "library best (twin)",
        Role::Random => "random pool",
    }
}

/// One image as the verify block showed it, with its role and the twin's prediction for
/// `target` (all targets' for a shared control).
fn image_figure(out: &mut String, s: &DesignedStimulus, target: Option<usize>) {
    let predicted = match target {
        Some(k) => s.predicted.get(k).map_or("—".into(), |&p| num(p)),
        None => s
            .predicted
            .iter()
            .map(|&p| num(p))
            .collect::<Vec<_>>()
            .join(", "),
    };
    match gray_png_data_uri(s.width, s.height, &s.pixels) {
        Ok(uri) => {
            let _ = write!(
                out,
                "<figure class=\"stim\"><img src=\"{uri}\" width=\"{}\" height=\"{}\" \
                 alt=\"{}\" style=\"image-rendering: pixelated\"><figcaption>{}<br><code>{}</code>\
                 <br>predicted {}</figcaption></figure>",
                s.width * IMAGE_SCALE,
                s.height * IMAGE_SCALE,
                esc(&s.id.0),
                role_label(s.tag.role),
                esc(&s.id.0),
                esc(&predicted)
            );
        }
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"missing\">image {} not drawn: {}</p>",
                esc(&s.id.0),
                esc(&e.to_string())
            );
        }
    }
}

/// Per target its MEIs beside its controls; the shared random controls once.
fn image_rows(out: &mut String, round: &Value, images: &[&DesignedStimulus]) {
    if images.is_empty() {
        out.push_str(
            "<p class=\"missing\">No images: the log holds no design result for this round.</p>",
        );
        return;
    }
    let targets = round["targets"].as_array().map_or(0, Vec::len);
    out.push_str("<h4>Images shown in the verify block</h4>");
    for k in 0..targets {
        let mut mine: Vec<&&DesignedStimulus> = images
            .iter()
            .filter(|s| s.tag.target == Some(k as u32))
            .collect();
        mine.sort_by_key(|s| rank(s.tag.role));
        let cell = &round["targets"][k]["cell"];
        let _ = write!(
            out,
            "<div class=\"stim-row\" id=\"inception-images-{}-{k}\"><p>target {k}: cell ({}, {})</p>",
            round["round"], cell["plane"], cell["cell"]
        );
        for s in mine {
            image_figure(out, s, Some(k));
        }
        out.push_str("</div>");
    }
    let shared: Vec<&&DesignedStimulus> =
        images.iter().filter(|s| s.tag.target.is_none()).collect();
    if !shared.is_empty() {
        out.push_str("<div class=\"stim-row\"><p>shared controls (predicted: every target's)</p>");
        for s in shared {
            image_figure(out, s, None);
        }
        out.push_str("</div>");
    }
}

/// Measured means ± SEM and the twin's predictions per target, for the MEI (low contrast),
/// the best pool stimulus and the library best.
fn means_figure(out: &mut String, round: &Value) {
    let v = &round["verdict"];
    let f = |x: &Value, k: &str| x.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let measured = |x: &Value| (f(x, "mean"), x.get("sem").and_then(Value::as_f64));
    let mei: Vec<&Value> = v["mei_low"]["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let lib: Vec<&Value> = v["library_best"]["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if mei.is_empty() && lib.is_empty() {
        return;
    }
    let col = cell_color;
    let series = vec![
        ErrorSeries {
            name: "MEI low: measured".into(),
            color: col(0),
            values: mei.iter().map(|t| measured(&t["challenger"])).collect(),
        },
        ErrorSeries {
            name: "MEI low: predicted".into(),
            color: col(1),
            values: mei
                .iter()
                .map(|t| (f(t, "predicted_challenger"), None))
                .collect(),
        },
        ErrorSeries {
            name: "best pool: measured".into(),
            color: col(2),
            values: mei.iter().map(|t| measured(&t["best_pool"])).collect(),
        },
        ErrorSeries {
            name: "best pool: predicted".into(),
            color: col(3),
            values: mei
                .iter()
                .map(|t| (f(t, "predicted_best_pool"), None))
                .collect(),
        },
        ErrorSeries {
            name: "library best: measured".into(),
            color: col(4),
            values: lib.iter().map(|t| measured(&t["challenger"])).collect(),
        },
    ];
    figure(
        out,
        "inception means",
        plots::error_bars(
            Axes {
                title: "Measured (mean ± SEM) and predicted responses per target",
                x_desc: "target",
                y_desc: "response",
            },
            &series,
            (760, 360),
        ),
    );
}

fn round_section(out: &mut String, round: &Value) {
    let r = &round["round"];
    let _ = write!(out, "<h3>Round {r}</h3>");
    if let Some(reason) = round["design_failed"].as_str() {
        let _ = write!(out, "<p>Design failed: {}.</p>", esc(reason));
    }
    let t = &round["design_times_s"];
    let _ = write!(
        out,
        "<p>Design time (s): refit {}, controls {}, library screen {}, MEIs {}.</p>",
        opt_num(t.get("refit_s")),
        opt_num(t.get("controls_s")),
        opt_num(t.get("screen_s")),
        opt_num(t.get("mei_s"))
    );
    let v = &round["verdict"];
    if !v.is_object() {
        out.push_str("<p class=\"missing\">No verify block was shown.</p>");
        return;
    }
    let _ = write!(
        out,
        "<p id=\"inception-verdict-{r}\"><strong>{}</strong></p>",
        esc(v.get("line").and_then(Value::as_str).unwrap_or(""))
    );
    let mei = &v["mei_low"];
    let targets = round["targets"].as_array().cloned().unwrap_or_default();
    out.push_str(
        "<table><thead><tr><th>target</th><th>cell (plane, index)</th><th>held-out CC</th>\
         <th>MEI low: measured</th><th>predicted</th><th>best pool: measured</th>\
         <th>predicted</th><th>Welch t</th><th>p</th><th>BH q</th><th>controls: measured / \
         predicted</th></tr></thead><tbody>",
    );
    for tv in mei["targets"].as_array().into_iter().flatten() {
        let k = tv["target"].as_u64().unwrap_or(0) as usize;
        let cell = targets.get(k).map_or("—".into(), |c| {
            format!("({}, {})", c["cell"]["plane"], c["cell"]["cell"])
        });
        let cc = targets
            .get(k)
            .map_or("—".into(), |c| opt_num(c.get("heldout_cc")));
        let controls: Vec<String> = tv["controls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}: {} / {}",
                    esc(&role_name(&c["role"])),
                    esc(c["stimulus"].as_str().unwrap_or("")),
                    mean_sem(&c["measured"]),
                    opt_num(c.get("predicted"))
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{k}</td><td>{cell}</td><td>{cc}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            mean_sem(&tv["challenger"]),
            opt_num(tv.get("predicted_challenger")),
            mean_sem(&tv["best_pool"]),
            opt_num(tv.get("predicted_best_pool")),
            opt_num(tv["welch"].get("t")),
            opt_num(tv["welch"].get("p_value")),
            opt_num(tv.get("q")),
            controls.join("<br>")
        );
    }
    out.push_str("</tbody></table>");
    means_figure(out, round);
    let sel = &mei["selectivity"];
    if sel.is_object() {
        let matrix: Vec<Vec<f64>> = sel["matrix"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                row.as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let n = matrix.len() as u32;
        figure(
            out,
            "selectivity matrix",
            plots::heatmap(
                Axes {
                    title: "Selectivity: mean response of target i to target j's MEI (low)",
                    x_desc: "MEI of target j",
                    y_desc: "response of target i",
                },
                &matrix,
                (360 + 24 * n.min(30), 320 + 24 * n.min(30)),
            ),
        );
        out.push_str("<p>Selectivity: row i, column j is target i's mean response to target j's MEI (low contrast).</p><table><tbody>");
        for row in sel["matrix"].as_array().into_iter().flatten() {
            out.push_str("<tr>");
            for x in row.as_array().into_iter().flatten() {
                let _ = write!(out, "<td>{}</td>", opt_num(Some(x)));
            }
            out.push_str("</tr>");
        }
        let _ = write!(
            out,
            "</tbody></table><p>Permutation test (own MEI higher): p = {}.</p>",
            opt_num(sel["test"].get("p_value"))
        );
    }
    let lib = &v["library_best"];
    let _ = write!(
        out,
        "<p>The twin's library best against the same baseline: {}</p>",
        esc(&format!(
            "{} of {} targets significant, {} higher on mean, gain ratio {}",
            lib["significant"],
            lib["targets"].as_array().map_or(0, Vec::len),
            lib["higher"],
            opt_num(lib.get("gain_ratio"))
        ))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round's verdict renders its line, each target's numbers and the selectivity test; no
    /// inception section says so.
    #[test]
    fn a_verdict_renders_its_numbers() {
        let inc = serde_json::json!({
            "phase": "Done", "fallbacks": 0, "late_designs": 0,
            "rounds": [{
                "round": 1, "design_failed": null,
                "design_times_s": {"refit_s": 1.5, "controls_s": 0.1, "screen_s": 2.0, "mei_s": 0.5},
                "targets": [{"cell": {"plane": 0, "cell": 4}, "heldout_cc": 0.7}],
                "verdict": {
                    "line": "MEI (low contrast) beat the best measured pool stimulus for 1 of 1",
                    "mei_low": {"targets": [{
                        "target": 0,
                        "challenger": {"mean": 3.0, "sem": 0.5, "n": 10},
                        "best_pool": {"mean": 2.0, "sem": 0.25, "n": 10},
                        "predicted_challenger": 3.5, "predicted_best_pool": 2.5,
                        "welch": {"t": 1.79, "p_value": 0.04, "df": 13.2, "mean_difference": 1.0},
                        "q": 0.04,
                        "controls": [{"role": {"role": "random"}, "stimulus": "pool/9",
                                      "measured": {"mean": 1.0, "sem": 0.1, "n": 10}, "predicted": 1.2}]
                    }],
                    "selectivity": {"matrix": [[3.0, 1.0], [1.5, 2.5]], "test": {"p_value": 0.25}}},
                    "library_best": {"significant": 0, "higher": 1, "targets": [{}], "gain_ratio": 0.5}
                }
            }]
        });
        let mei = DesignedStimulus {
            id: crate::stages::decide::inception::records::StimulusId("mei/r1/t0/low".into()),
            tag: crate::stages::decide::inception::records::RoleTag {
                role: Role::Mei {
                    contrast: Contrast::Low,
                },
                target: Some(0),
            },
            width: 4,
            height: 2,
            pixels: vec![0, 40, 80, 120, 160, 200, 240, 255],
            predicted: vec![3.5],
        };
        let mut out = String::new();
        section(&mut out, Some(&inc), &[(1, mei.clone()), (2, mei)]);
        // Round 1's image once (round 2 is not in the summary), the means figure and the
        // selectivity heat map drawn.
        assert_eq!(out.matches("data:image/png;base64,").count(), 1, "{out}");
        assert!(out.contains("alt=\"mei/r1/t0/low\"") && out.contains("predicted 3.500"));
        assert!(out.contains("Measured (mean ± SEM) and predicted"), "{out}");
        assert!(out.contains("Selectivity: mean response"), "{out}");
        assert_eq!(out.matches("<svg").count(), 2, "{out}");
        for want in [
            "beat the best measured pool stimulus for 1 of 1",
            "(0, 4)",
            "MEI low: measured",
            "random pool/9",
            "p = 0.2500",
            "refit 1.500",
        ] {
            assert!(out.contains(want), "{want}: {out}");
        }
        let mut none = String::new();
        section(&mut none, None, &[]);
        assert!(none.contains("Not recorded"), "{none}");
    }
}
