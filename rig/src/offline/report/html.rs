//! The report page: one HTML5 document with its styles inline and its figures as inline
//! `<svg>`, so it opens anywhere, offline, and can be mailed as one file.
//!
//! Every section is always present, under the heading in [`SECTIONS`]; a section whose data
//! the session does not hold says "not recorded" and why. Numbers a test or a script may
//! want to pick out carry an `id`.

use std::fmt::Write;

use super::analysis::{Analysis, EXAMPLE_CELLS, HealthRow};
use super::plots::{self, Axes, ErrorSeries, LatencyBar, Panel, PlotError, Series};

/// The sections, in page order: `(id, heading)`.
pub const SECTIONS: [(&str, &str); 10] = [
    ("session", "Session"),
    (
        "inception",
        "Inception loop: MEIs against the best pool stimulus",
    ),
    ("accuracy", "Held-out accuracy of the twin"),
    ("information-gain", "Information gain of decisions"),
    ("adaptive-vs-random", "Adaptive vs random trials"),
    ("latency", "Latency"),
    ("drops", "Drops, skips and anomalies"),
    ("tuning", "Tuning of example cells"),
    ("test-block", "Repeated test block"),
    ("behaviour", "Pupil and running"),
];

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1000px;\
padding:1em 1.5em 3em;color:#222;line-height:1.4}\
h1{margin-bottom:.1em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}\
.sub{color:#666;margin-top:0;word-break:break-all}\
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}\
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}\
.missing{color:#8a6d3b;background:#fcf8e3;padding:.4em .7em;border-left:4px solid #e0c36c}\
.alert{background:#f2dede;color:#8a1f11;border-left:6px solid #c9302c;padding:.7em 1em;margin:1em 0}\
.notes{color:#555}figure{margin:.6em 0}svg{max-width:100%;height:auto}\
.bar{display:inline-block;height:.8em;background:#1f77b4;vertical-align:middle}\
nav a{margin-right:.8em}footer{margin-top:3em;color:#888;font-size:.85em}";

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for a table: four significant digits (all of the integer part), or a dash when
/// it is not finite.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

fn count(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

fn missing(out: &mut String, why: &str) {
    let _ = write!(out, "<p class=\"missing\">not recorded: {}</p>", esc(why));
}

pub(super) fn figure(out: &mut String, what: &str, svg: Result<String, PlotError>) {
    match svg {
        Ok(svg) => {
            let _ = write!(out, "<figure>{svg}</figure>");
        }
        Err(e) => {
            tracing::warn!(figure = what, error = %e, "figure not drawn");
            let _ = write!(
                out,
                "<p class=\"missing\">figure not drawn ({}): {}</p>",
                esc(what),
                esc(&e.to_string())
            );
        }
    }
}

/// The whole page.
pub fn page(a: &Analysis) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>twinloop report: {title}</title><style>{STYLE}</style></head><body>\
         <h1>twinloop session report</h1><p class=\"sub\">{title}</p>",
        title = esc(&a.title)
    );
    if let Some(note) = &a.cut_short {
        let _ = write!(
            out,
            "<div class=\"alert\" id=\"cut-short\"><strong>Session cut short.</strong> {}</div>",
            esc(note)
        );
    }
    if !a.notes.is_empty() {
        out.push_str("<ul class=\"notes\" id=\"notes\">");
        for note in &a.notes {
            let _ = write!(out, "<li>{}</li>", esc(note));
        }
        out.push_str("</ul>");
    }
    out.push_str("<nav>");
    for (id, heading) in SECTIONS {
        let _ = write!(out, "<a href=\"#{id}\">{}</a>", esc(heading));
    }
    out.push_str("</nav>");

    for (id, heading) in SECTIONS {
        let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", esc(heading));
        match id {
            "session" => session(&mut out, a),
            "inception" => {
                super::inception::section(&mut out, a.inception.as_ref(), &a.inception_images)
            }
            "accuracy" => accuracy(&mut out, a),
            "information-gain" => information_gain(&mut out, a),
            "adaptive-vs-random" => adaptive_vs_random(&mut out, a),
            "latency" => latency(&mut out, a),
            "drops" => drops(&mut out, a),
            "tuning" => tuning(&mut out, a),
            "test-block" => test_block(&mut out, a),
            "behaviour" => behaviour(&mut out, a),
            _ => {}
        }
        out.push_str("</section>");
    }
    let _ = write!(
        out,
        "<footer>Written by twinloop {} <code>report</code> from the session directory alone.</footer>\
         </body></html>",
        env!("CARGO_PKG_VERSION")
    );
    out.push('\n');
    out
}

fn session(out: &mut String, a: &Analysis) {
    out.push_str("<table class=\"facts\">");
    for f in &a.facts {
        let _ = write!(
            out,
            "<tr><th>{}</th><td id=\"{}\">{}</td></tr>",
            esc(f.label),
            f.id,
            esc(&f.value)
        );
    }
    out.push_str("</table>");
}

fn accuracy(out: &mut String, a: &Analysis) {
    if a.accuracy.is_empty() {
        let why = if a.decisions == 0 {
            "no decisions were logged"
        } else {
            "no decision carries the twin's held-out accuracy (no test block, too few test \
             repeats yet, or a session recorded before decisions carried it)"
        };
        return missing(out, why);
    }
    let (Some(last), Some(best)) = (
        a.accuracy.last(),
        a.accuracy
            .iter()
            .max_by(|x, y| x.cc_norm.total_cmp(&y.cc_norm)),
    ) else {
        return;
    };
    let _ = write!(
        out,
        "<p>CC<sub>norm</sub> on the repeated test block, as the selector logged it with each \
         decision: {n} evaluations; latest <span id=\"accuracy-latest\">{latest}</span> after \
         {lt} trials over {units} units, best {best} after {bt} trials.</p>",
        n = a.accuracy.len(),
        latest = num(last.cc_norm),
        lt = last.trials,
        units = last.units,
        best = num(best.cc_norm),
        bt = best.trials,
    );
    let series = [Series {
        name: "CC_norm".into(),
        color: plots::mode_color("adaptive"),
        points: a
            .accuracy
            .iter()
            .map(|p| (p.trials as f64, p.cc_norm))
            .collect(),
        line: true,
        markers: true,
    }];
    figure(
        out,
        "accuracy",
        plots::xy(
            Axes {
                title: "Held-out accuracy vs trials",
                x_desc: "trials decided",
                y_desc: "CC_norm",
            },
            &series,
            (900, 360),
        ),
    );
}

fn information_gain(out: &mut String, a: &Analysis) {
    if a.decisions == 0 {
        return missing(out, "no decisions were logged");
    }
    if a.scores.is_empty() {
        missing(
            out,
            "no decision carries a score (only adaptive decisions are scored)",
        );
    } else {
        let mut modes: Vec<&str> = a.scores.iter().map(|s| s.mode.as_str()).collect();
        modes.sort_unstable();
        modes.dedup();
        let series: Vec<Series> = modes
            .iter()
            .map(|&mode| Series {
                name: mode.to_string(),
                color: plots::mode_color(mode),
                points: a
                    .scores
                    .iter()
                    .filter(|s| s.mode == mode)
                    .map(|s| (s.trial as f64, s.score))
                    .collect(),
                line: false,
                markers: true,
            })
            .collect();
        let _ = write!(
            out,
            "<p><span id=\"scored-decisions\">{}</span> scored decisions: the chosen \
             stimulus's score under the objective, by trial, coloured by mode.</p>",
            a.scores.len()
        );
        figure(
            out,
            "scores",
            plots::xy(
                Axes {
                    title: "Score of the chosen stimulus vs trial",
                    x_desc: "trial",
                    y_desc: "score (information gain)",
                },
                &series,
                (900, 360),
            ),
        );
    }
    out.push_str(
        "<table id=\"mode-shares\"><tr><th>mode</th><th>decisions</th><th>share</th><th></th></tr>",
    );
    for (mode, n) in &a.modes {
        let share = *n as f64 / a.decisions.max(1) as f64 * 100.0;
        let color = plots::mode_color(mode);
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\" id=\"mode-{}\">{n}</td><td class=\"n\">{share:.1} %</td>\
             <td><span class=\"bar\" style=\"width:{w:.0}px;background:rgb({r},{g},{b})\"></span></td></tr>",
            esc(mode),
            esc(mode),
            w = share * 2.0,
            r = color.0,
            g = color.1,
            b = color.2,
        );
    }
    out.push_str("</table>");
}

fn adaptive_vs_random(out: &mut String, a: &Analysis) {
    let Some(c) = &a.comparison else {
        return missing(out, &a.comparison_missing);
    };
    out.push_str(
        "<p>Responses are window means (onset to onset + stimulus duration) of the logged \
         activity; the population mean is over all cells, the example mean over the cells of \
         the tuning section.</p><table id=\"comparison\"><tr><th>mode</th><th>decisions</th>\
         <th>trials with activity</th><th>mean population response</th>\
         <th>mean example-cell response</th></tr>",
    );
    for g in &c.groups {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            g.mode,
            g.trials,
            g.with_activity,
            g.mean_population.map_or_else(|| "–".into(), num),
            g.mean_examples.map_or_else(|| "–".into(), num),
        );
    }
    out.push_str("</table>");
    if c.scored == 0 {
        out.push_str(
            "<p>No adaptive decision logged alternatives, so chosen and alternative scores \
             cannot be compared.</p>",
        );
    } else {
        let _ = write!(
            out,
            "<p>Random trials are not scored by the selector. Over {} adaptive decisions, the \
             chosen stimulus scored <span id=\"mean-chosen\">{}</span> on average, the best \
             alternative not chosen <span id=\"mean-best-other\">{}</span> (difference {}).</p>",
            c.scored,
            num(c.mean_chosen),
            num(c.mean_best_other),
            num(c.mean_chosen - c.mean_best_other),
        );
    }
}

fn latency(out: &mut String, a: &Analysis) {
    let rows: Vec<_> = a.latency.iter().filter(|r| r.count > 0).collect();
    if rows.is_empty() {
        return missing(
            out,
            "no latency figures (summary.json and latency.json are written when a session ends)",
        );
    }
    out.push_str(
        "<table id=\"latency-table\"><tr><th>stage</th><th>count</th><th>p50 (µs)</th>\
         <th>p99 (µs)</th><th>p99.9 (µs)</th><th>max (µs)</th><th>mean (µs)</th></tr>",
    );
    for r in &rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td>\
             <td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td></tr>",
            esc(&r.stage),
            r.count,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            r.mean_us
        );
    }
    out.push_str("</table>");
    let bars: Vec<LatencyBar> = rows
        .iter()
        .map(|r| LatencyBar {
            stage: r.stage.clone(),
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            max_us: r.max_us,
        })
        .collect();
    figure(out, "latency", plots::latency_bars(&bars, 900));
}

fn drops(out: &mut String, a: &Analysis) {
    if !a.has_log && !a.has_summary {
        return missing(out, "neither a record log nor a summary");
    }
    out.push_str(
        "<table id=\"health\"><tr><th></th><th>summary.json</th><th>in the record log</th></tr>",
    );
    for HealthRow {
        id,
        label,
        summary,
        log,
    } in &a.health
    {
        if summary.is_none() && log.is_none() {
            continue;
        }
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\" id=\"{id}-summary\">{}</td>\
             <td class=\"n\" id=\"{id}-log\">{}</td></tr>",
            esc(label),
            count(*summary),
            count(*log)
        );
    }
    out.push_str("</table>");
    if a.has_summary {
        out.push_str(
            "<p>The summary column is the daemon's counters; the log column counts the \
             anomaly (or decision) records in the log. Not every counted event is logged as an \
             anomaly (event bus drops never are), so the two can differ.</p>",
        );
    } else {
        out.push_str("<p>summary.json is missing: its counters are not recorded.</p>");
    }
    if !a.has_log {
        return;
    }
    let _ = write!(
        out,
        "<p><span id=\"anomalies-logged\">{}</span> anomaly records in the log",
        a.anomalies_logged
    );
    if a.anomaly_kinds.is_empty() {
        out.push_str(".</p>");
        return;
    }
    out.push_str(": ");
    let kinds: Vec<String> = a
        .anomaly_kinds
        .iter()
        .map(|(k, n)| format!("{n} {}", esc(k)))
        .collect();
    out.push_str(&kinds.join(", "));
    out.push_str(". The first:</p><ol id=\"first-anomalies\">");
    for anomaly in &a.first_anomalies {
        let _ = write!(
            out,
            "<li><code>{}</code> {}</li>",
            esc(&anomaly.kind),
            esc(&anomaly.detail)
        );
    }
    out.push_str("</ol>");
}

fn examples_missing(a: &Analysis) -> &'static str {
    if a.trials == 0 {
        "no trials were shown"
    } else {
        "fewer than two trials have activity in their stimulus window"
    }
}

fn window_text(a: &Analysis) -> String {
    format!(
        "from onset to onset + {} s{}",
        a.stimulus_s,
        if a.stimulus_s_from_config {
            ""
        } else {
            " (assumed)"
        }
    )
}

fn tuning(out: &mut String, a: &Analysis) {
    if a.examples.is_empty() || a.tuning.is_empty() {
        return missing(out, examples_missing(a));
    }
    let _ = write!(
        out,
        "<p>The {} cells (of {}) whose responses vary most over the {} trials with activity; \
         for each stimulus, sorted by name, the mean over its presentations of the activity \
         averaged {}.</p>",
        a.examples.len().min(EXAMPLE_CELLS),
        a.response_cells,
        a.responded_trials,
        window_text(a)
    );
    out.push_str("<table id=\"example-cells\"><tr><th>cell</th><th>response variance</th></tr>");
    for e in &a.examples {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&e.label),
            num(e.variance)
        );
    }
    out.push_str("</table>");
    let panels: Vec<Panel> = a
        .examples
        .iter()
        .enumerate()
        .map(|(k, e)| Panel {
            title: e.label.clone(),
            color: plots::cell_color(k),
            values: a
                .tuning
                .iter()
                .map(|t| t.means.get(k).copied().unwrap_or(f64::NAN))
                .collect(),
        })
        .collect();
    figure(
        out,
        "tuning",
        plots::bar_panels(&panels, "stimulus # (table below)", "mean activity", 3, 960),
    );
    out.push_str(
        "<table id=\"tuning-table\"><tr><th>#</th><th>stimulus</th><th>presentations</th>",
    );
    for e in &a.examples {
        let _ = write!(out, "<th>{}</th>", esc(&e.label));
    }
    out.push_str("</tr>");
    for (i, t) in a.tuning.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td class=\"n\">{i}</td><td>{}</td><td class=\"n\">{}</td>",
            esc(&t.name),
            t.presentations
        );
        for m in &t.means {
            let _ = write!(out, "<td class=\"n\">{}</td>", num(*m));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn test_block(out: &mut String, a: &Analysis) {
    if a.test_block.is_empty() {
        let why = if a.trials == 0 {
            "no trials were shown"
        } else if a.examples.is_empty() {
            examples_missing(a)
        } else {
            "no test-block trials were shown"
        };
        return missing(out, why);
    }
    let _ = write!(
        out,
        "<p>Each test stimulus's response (activity averaged {}) for the example cells: mean \
         ± s.e.m. over its repeats.</p>",
        window_text(a)
    );
    let series: Vec<ErrorSeries> = a
        .examples
        .iter()
        .enumerate()
        .map(|(k, e)| ErrorSeries {
            name: e.label.clone(),
            color: plots::cell_color(k),
            values: a
                .test_block
                .iter()
                .map(|t| t.cells.get(k).map_or((f64::NAN, None), |c| (c.mean, c.sem)))
                .collect(),
        })
        .collect();
    figure(
        out,
        "test block",
        plots::error_bars(
            Axes {
                title: "Test-block responses (mean ± s.e.m.)",
                x_desc: "test stimulus # (table below)",
                y_desc: "mean activity",
            },
            &series,
            (900, 380),
        ),
    );
    out.push_str("<table id=\"test-table\"><tr><th>#</th><th>test stimulus</th><th>repeats</th>");
    for e in &a.examples {
        let _ = write!(out, "<th>{}</th>", esc(&e.label));
    }
    out.push_str("</tr>");
    for (i, t) in a.test_block.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td class=\"n\">{i}</td><td>{}</td><td class=\"n\">{}</td>",
            esc(&t.name),
            t.repeats
        );
        for c in &t.cells {
            let sem = c.sem.map_or_else(|| "–".into(), num);
            let _ = write!(
                out,
                "<td class=\"n\">{} ± {sem} (n={})</td>",
                num(c.mean),
                c.n
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn behaviour(out: &mut String, a: &Analysis) {
    if a.behaviour_frames == 0 {
        return missing(out, "no behaviour records in the log");
    }
    let _ = write!(
        out,
        "<p><span id=\"behaviour-frames\">{}</span> imaging frames with behaviour; time from the \
         first imaging frame.</p>",
        a.behaviour_frames
    );
    for (what, points, title, y_desc, color) in [
        (
            "pupil",
            &a.pupil,
            "Pupil radius",
            "radius (px)",
            plots::cell_color(0),
        ),
        (
            "running",
            &a.speed,
            "Running speed",
            "treadmill (cm/s)",
            plots::cell_color(1),
        ),
    ] {
        if points.is_empty() {
            missing(out, &format!("no {what} values (all frames missing it)"));
            continue;
        }
        let series = [Series {
            name: title.to_string(),
            color,
            points: points.clone(),
            line: true,
            markers: false,
        }];
        figure(
            out,
            what,
            plots::xy(
                Axes {
                    title,
                    x_desc: "time (s)",
                    y_desc,
                },
                &series,
                (900, 280),
            ),
        );
    }
}
