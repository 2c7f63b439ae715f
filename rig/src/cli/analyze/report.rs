//! `twinloop analyze report`: one HTML page (no scripts, inline SVG) for a pair of tables:
//! binned synapse density against feature similarity and against RF distance per projection
//! type with the fitted model's curve, the slopes with their tests, and the cell-type and area
//! confusion matrices (when the embeddings carry labels).

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use twinloop_analysis::celltypes::{CellTypeOptions, DecodeScore, decode_cell_types};
use twinloop_analysis::wiring::{
    DensityCurve, Measure, WiringOptions, WiringReport, analyze, binned_density, table,
};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The embeddings table (`analysis/SCHEMA.md`).
    #[arg(long)]
    embeddings: PathBuf,
    /// The pairs table.
    #[arg(long)]
    pairs: PathBuf,
    /// Quantile bins per curve.
    #[arg(long, default_value_t = 8)]
    bins: usize,
    /// Side of a decoding fold's RF-position tile, degrees.
    #[arg(long, default_value_t = 20.0)]
    block_deg: f64,
    /// The page to write.
    #[arg(long)]
    out: PathBuf,
}

/// Names from the tables (projection types, classes, core id) as HTML text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 320.0;
const H: f64 = 200.0;
const PAD: f64 = 36.0;

/// One curve as an SVG: bins as dots (log density), the model as a line.
fn svg(c: &DensityCurve) -> String {
    let pts: Vec<(f64, f64, f64)> = c
        .bins
        .iter()
        .filter(|b| b.density_per_um > 0.0 && b.fitted_per_um > 0.0)
        .map(|b| (b.mean, b.density_per_um.ln(), b.fitted_per_um.ln()))
        .collect();
    let mut s = format!(r#"<svg width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">"#);
    if pts.is_empty() {
        s.push_str(r#"<text x="10" y="20">no synapses</text></svg>"#);
        return s;
    }
    let (x0, x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(p.1).min(p.2), b.max(p.1).max(p.2))
    });
    let span = |lo: f64, hi: f64| if hi > lo { hi - lo } else { 1.0 };
    let px = |x: f64| PAD + (x - x0) / span(x0, x1) * (W - 2.0 * PAD);
    let py = |y: f64| H - PAD - (y - y0) / span(y0, y1) * (H - 2.0 * PAD);
    let _ = write!(
        s,
        r##"<rect x="{PAD}" y="{PAD}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - 2.0 * PAD,
        H - 2.0 * PAD
    );
    let line: Vec<String> = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.2)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#c33" stroke-width="2"/>"##,
        line.join(" ")
    );
    for p in &pts {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#236"/>"##,
            px(p.0),
            py(p.1)
        );
    }
    let xlabel = match c.measure {
        Measure::FeatureSimilarity => "feature similarity",
        Measure::RfDistance => "RF distance (deg)",
    };
    let _ = write!(
        s,
        r#"<text x="{PAD}" y="{}" font-size="11">{xlabel}: {x0:.2} … {x1:.2}</text><text x="4" y="14" font-size="11">ln synapses/µm: {y0:.2} … {y1:.2}</text></svg>"#,
        H - 8.0
    );
    s
}

fn confusion(d: &DecodeScore) -> String {
    let mut s = format!(
        "<h3>{:?} from {:?}: balanced accuracy {:.3} (chance {:.3})</h3><table><tr><th>true \\ predicted</th>",
        d.target, d.input, d.balanced_accuracy, d.chance
    );
    for c in &d.classes {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr>");
    for (c, row) in d.classes.iter().zip(&d.confusion) {
        let _ = write!(s, "<tr><th>{}</th>", esc(c));
        for v in row {
            let _ = write!(s, "<td>{v}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

fn page(
    report: &WiringReport,
    curves: &[DensityCurve],
    decode: &Result<Vec<DecodeScore>>,
) -> String {
    let mut s = String::from(
        "<!doctype html><meta charset=\"utf-8\"><title>twinloop analyze</title><style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:2px 6px}table{border-collapse:collapse}figure{display:inline-block;margin:0.5em}</style>",
    );
    let _ = write!(
        s,
        "<h1>Wiring and cell types</h1><p>core <code>{}</code>: {} of {} cells pass CC_max/CC_abs, {} of {} pairs used.</p>",
        report.core_id,
        report.n_cells_kept,
        report.n_cells,
        report.n_pairs_used,
        report.n_pairs_input
    );
    s.push_str("<h2>Synapse density (synapses per µm of co-travel), binned; red: the model (its slope, level matched)</h2>");
    for c in curves {
        let _ = write!(
            s,
            "<figure>{}<figcaption>{} {:?}: β̂ = {:.3}</figcaption></figure>",
            svg(c),
            esc(&c.projection),
            c.measure,
            c.slope
        );
    }
    s.push_str("<h2>Slopes</h2><table><tr><th>scale</th><th>measure</th><th>projection</th><th>pairs</th><th>β̂</th><th>SE</th><th>p</th><th>BH q</th></tr>");
    for x in &report.slopes {
        let _ = write!(
            s,
            "<tr><td>{:?}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2e}</td><td>{:.2e}</td></tr>",
            x.scale,
            x.measure,
            x.projection,
            x.n_pairs,
            x.estimate,
            x.std_error,
            x.p_value,
            x.q_value
        );
    }
    s.push_str("</table><h2>Cell types and areas (spatially blocked folds)</h2>");
    match decode {
        Ok(scores) => scores.iter().for_each(|d| s.push_str(&confusion(d))),
        Err(e) => {
            let _ = write!(s, "<p>not decoded: {}</p>", esc(&e.to_string()));
        }
    }
    s
}

pub fn run(args: &ReportArgs) -> Result<()> {
    anyhow::ensure!(
        args.block_deg.is_finite() && args.block_deg > 0.0,
        "--block-deg {}: must be a positive number of degrees",
        args.block_deg
    );
    let (emb, pairs) = table::read_tables(&args.embeddings, &args.pairs)?;
    let options = WiringOptions::default();
    let report = analyze(&emb, &pairs, &options)?;
    let curves = binned_density(&emb, &pairs, &options, &report, args.bins)?;
    let blocks = super::rf_blocks(&emb, args.block_deg);
    // Unlabelled embeddings (one class) are a note on the page, not a failure of the report.
    let decode = decode_cell_types(
        &emb,
        &blocks,
        &CellTypeOptions {
            n_shuffles: 0,
            ..CellTypeOptions::default()
        },
    )
    .map_err(anyhow::Error::from);
    std::fs::write(&args.out, page(&report, &curves, &decode))
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{} curves, {} -> {}",
        curves.len(),
        if decode.is_ok() {
            "confusion matrices"
        } else {
            "no decoding"
        },
        args.out.display()
    );
    Ok(())
}
