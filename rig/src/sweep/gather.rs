//! Gathering: every shard checked, every row read into one table (`table.csv`), and a page
//! comparing the arms (`report.html`): each arm is a combination of the axes other than the
//! seed, and each metric is given as its mean with a 95% confidence interval over seeds.

use super::SweepError;
use super::paired::{against_random, t975};
use super::plan::Plan;
use super::shard::{self, ShardState};
use crate::backbone::session_log::write_atomic;
use crate::offline::report::analysis::mean_sem;
use crate::offline::report::html::esc;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const TABLE_FILE: &str = "table.csv";
pub const REPORT_FILE: &str = "report.html";

/// What gathering found and wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gathered {
    pub rows: usize,
    pub done: Vec<u32>,
    pub missing: Vec<u32>,
    /// Shards that failed, were killed, or whose files do not check out, with why.
    pub failed: Vec<(u32, String)>,
    pub table: PathBuf,
    pub report: PathBuf,
}

impl Gathered {
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.failed.is_empty()
    }
}

/// Reads every shard of the plan in `root`. Unless `partial` is set, a missing or failed shard is
/// an error listing them all, and nothing is written.
pub fn gather(plan: &Plan, root: &Path, partial: bool) -> Result<Gathered, SweepError> {
    let mut rows = Vec::new();
    let (mut done, mut missing, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for s in 0..plan.shards {
        match shard::state(plan, root, s) {
            ShardState::Done { rows: r } => {
                done.push(s);
                rows.extend(r);
            }
            ShardState::Missing => missing.push(s),
            ShardState::Partial => failed.push((
                s,
                "started and never finished (killed, or still running)".into(),
            )),
            ShardState::Failed(f) => failed.push((
                s,
                match f.job {
                    Some(j) => format!("job {j} failed: {}", f.error),
                    None => f.error,
                },
            )),
            ShardState::Corrupt(why) => failed.push((s, why)),
        }
    }
    let out = Gathered {
        rows: rows.len(),
        done,
        missing,
        failed,
        table: root.join(TABLE_FILE),
        report: root.join(REPORT_FILE),
    };
    if !out.complete() && !partial {
        return Err(SweepError::Incomplete {
            missing: out.missing.clone(),
            failed: out.failed.clone(),
        });
    }
    rows.sort_by_key(|r| r.get("job").and_then(Value::as_u64));
    let write = |path: &Path, text: String| {
        write_atomic(path, text.as_bytes()).map_err(|e| SweepError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    write(&out.table, csv(&rows, &plan.axes()))?;
    write(&out.report, page(plan, &rows, &out))?;
    Ok(out)
}

/// Columns: the job and shard, the axes in name order, then the metrics in name order.
fn columns(rows: &[Value], axes: &BTreeSet<String>) -> Vec<String> {
    let mut metrics = BTreeSet::new();
    for r in rows {
        if let Value::Object(o) = r {
            metrics.extend(o.keys().filter(|k| !axes.contains(*k)).cloned());
        }
    }
    metrics.remove("job");
    metrics.remove("shard");
    ["job".to_string(), "shard".to_string()]
        .into_iter()
        .chain(axes.iter().cloned())
        .chain(metrics)
        .collect()
}

fn cell(v: Option<&Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv(rows: &[Value], axes: &BTreeSet<String>) -> String {
    let cols = columns(rows, axes);
    let mut out = cols
        .iter()
        .map(|c| cell(Some(&Value::String(c.clone()))))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = cols.iter().map(|c| cell(r.get(c))).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn page(plan: &Plan, rows: &[Value], g: &Gathered) -> String {
    let axes = plan.axes();
    let arm_axes: Vec<&String> = axes.iter().filter(|a| a.as_str() != "seed").collect();
    let cols = columns(rows, &axes);
    let metrics: Vec<&String> = cols
        .iter()
        .filter(|c| !axes.contains(*c) && *c != "job" && *c != "shard")
        .filter(|c| {
            rows.iter()
                .any(|r| r.get(c.as_str()).is_some_and(Value::is_number))
        })
        .collect();
    let mut arms: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in rows {
        let key = arm_axes
            .iter()
            .map(|a| format!("{a} = {}", cell(r.get(a.as_str()))))
            .collect::<Vec<_>>()
            .join(", ");
        arms.entry(key).or_default().push(r);
    }
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sweep {name}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#eee}}\
         .warn{{color:#a00}}</style></head><body><h1>Sweep {name}</h1>\
         <p>{jobs} jobs ({kind:?}) in {shards} shards; {rows} rows gathered from {done} shards. \
         Each cell: mean [95% CI] over the arm's jobs (seeds), n in the last column.</p>",
        name = esc(&plan.name),
        jobs = plan.jobs.len(),
        kind = plan.kind,
        shards = plan.shards,
        rows = rows.len(),
        done = g.done.len(),
    );
    if !g.complete() {
        let _ = write!(
            h,
            "<p class=\"warn\">Partial: missing shards {:?}; failed {}.</p>",
            g.missing,
            esc(&format!("{:?}", g.failed))
        );
    }
    h.push_str("<table><tr><th>arm</th>");
    for m in &metrics {
        let _ = write!(h, "<th>{}</th>", esc(m));
    }
    h.push_str("<th>n</th></tr>");
    for (arm, members) in &arms {
        let _ = write!(
            h,
            "<tr><td style=\"text-align:left\">{}</td>",
            esc(if arm.is_empty() { "all" } else { arm })
        );
        for m in &metrics {
            let values: Vec<f64> = members
                .iter()
                .filter_map(|r| r.get(m.as_str()).and_then(Value::as_f64))
                .collect();
            let text = match mean_sem(&values) {
                Some(ms) => match ms.sem {
                    Some(sem) => {
                        let half = t975((ms.n - 1) as f64) * sem;
                        format!(
                            "{:.4} [{:.4}, {:.4}]",
                            ms.mean,
                            ms.mean - half,
                            ms.mean + half
                        )
                    }
                    None => format!("{:.4}", ms.mean),
                },
                None => "–".into(),
            };
            let _ = write!(h, "<td>{}</td>", esc(&text));
        }
        let _ = write!(h, "<td>{}</td></tr>", members.len());
    }
    h.push_str("</table>");
    let axes: Vec<String> = axes.iter().cloned().collect();
    let metrics: Vec<String> = metrics.iter().map(|m| m.to_string()).collect();
    let paired = against_random(rows, &axes, &metrics);
    if !paired.is_empty() {
        h.push_str(
            "<h2>Against random, paired by seed</h2><p>Each arm minus the random run with the \
             same seed and other axes: mean difference [95% CI], and the seeds in which the arm \
             was ahead.</p><table><tr><th>arm</th><th>metric</th><th>difference</th>\
             <th>ahead</th></tr>",
        );
        for d in &paired {
            let diff = match d.ci95 {
                Some(c) => format!("{:+.4} [{:+.4}, {:+.4}]", d.mean, d.mean - c, d.mean + c),
                None => format!("{:+.4}", d.mean),
            };
            let _ = write!(
                h,
                "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
                esc(&d.arm),
                esc(&d.metric),
                esc(&diff),
                d.ahead,
                d.pairs
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}
