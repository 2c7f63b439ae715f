//! The inception protocol in the NWB file (issue #18): every image its verify blocks showed
//! (MEIs, best pool stimuli, library bests, random controls) as `GrayscaleImage`s of one
//! `Images` container in `/stimulus/templates/inception_images`, and the per-target verdict as
//! a `DynamicTable` at `/analysis/inception_targets`. Images come from the log's design notes,
//! the table from `summary.json`'s verdict, as the session wrote them.

use hdf5_metno::Group;
use ndarray::ArrayView2;
use serde_json::Value;

use super::h5::{self, CORE, Column, HDMF, Result};
use super::session::SessionContents;
use crate::stages::decide::inception::design::DesignedStimulus;
use crate::stages::decide::inception::records::{Contrast, Role};

/// The `Images` container's name under `/stimulus/templates`.
pub const IMAGES: &str = "inception_images";
/// The table's name under `/analysis`.
pub const TABLE: &str = "inception_targets";

/// An image's dataset name: its round and its log id, `/` (HDF5's separator) as `_`.
pub fn image_name(round: u32, id: &str) -> String {
    format!("r{round}_{}", id.replace('/', "_"))
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Mei {
            contrast: Contrast::Low,
        } => "MEI at the low-contrast budget",
        Role::Mei {
            contrast: Contrast::Full,
        } => "MEI at the full-contrast budget",
        Role::BestPool => "best pool stimulus by measured response (the key baseline)",
        Role::LibraryBest => "the twin's predicted best of the screened library",
        Role::Random => "random pool control",
    }
}

/// Writes both, when the session ran the protocol; returns the images written.
pub fn write(templates: &Group, analysis: &Group, c: &SessionContents) -> Result<usize> {
    let images = c
        .data
        .log
        .as_ref()
        .map_or(&[][..], |l| &l.inception_images[..]);
    let inception = c.data.summary.as_ref().and_then(|s| s.inception.as_ref());
    if images.is_empty() && inception.is_none() {
        return Ok(0);
    }
    if !images.is_empty() {
        let g = h5::group(templates, IMAGES, Some(("Images", CORE)))?;
        h5::attr_text(
            &g,
            "description",
            "the inception protocol's verify images as shown (8-bit, rows x columns, row 0 at \
             the top, stretched over the twin's view): each one's log id, round, role, target \
             and the twin's predicted response of every target, logged before it was shown",
        )?;
        for (round, s) in images {
            image(&g, *round, s)?;
        }
    }
    if let Some(inc) = inception {
        table(analysis, inc, images)?;
    }
    Ok(images.len())
}

fn image(g: &Group, round: u32, s: &DesignedStimulus) -> Result<()> {
    let (h, w) = (s.height as usize, s.width as usize);
    let view = ArrayView2::from_shape((h, w), &s.pixels)
        .map_err(|e| h5::other(format!("image {}: {e}", s.id.0)))?;
    let ds = h5::array(g, &image_name(round, &s.id.0), view)?;
    h5::typed(&ds, "GrayscaleImage", CORE)?;
    let target = s
        .tag
        .target
        .map_or("every target".into(), |t| format!("target {t}"));
    let predicted: Vec<String> = s.predicted.iter().map(|p| format!("{p}")).collect();
    h5::attr_text(
        &ds,
        "description",
        &format!(
            "{} (log id {}, round {round}, {target}); predicted response of each target: [{}]",
            role_text(s.tag.role),
            s.id.0,
            predicted.join(", ")
        ),
    )
}

/// One row per (round, target) of the MEI (low contrast) verdict.
fn table(analysis: &Group, inc: &Value, images: &[(u32, DesignedStimulus)]) -> Result<()> {
    let f = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let i = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(-1);
    let mut cols: [Vec<f64>; 13] = Default::default();
    let mut ints: [Vec<i64>; 6] = Default::default();
    let mut mei_image: Vec<String> = Vec::new();
    let mut pool_image: Vec<String> = Vec::new();
    for round in inc["rounds"].as_array().into_iter().flatten() {
        let r = round["round"].as_u64().unwrap_or(0) as u32;
        let v = &round["verdict"]["mei_low"];
        let ratio = f(v, "/gain_ratio");
        for tv in v["targets"].as_array().into_iter().flatten() {
            let k = tv["target"].as_u64().unwrap_or(0);
            let chosen = &round["targets"][k as usize];
            ints[0].push(i64::from(r));
            ints[1].push(k as i64);
            ints[2].push(i(chosen, "/cell/plane"));
            ints[3].push(i(chosen, "/cell/cell"));
            ints[4].push(i(tv, "/challenger/n"));
            ints[5].push(i(tv, "/best_pool/n"));
            let (mei, pool) = (f(tv, "/challenger/mean"), f(tv, "/best_pool/mean"));
            let (pm, pp) = (
                f(tv, "/predicted_challenger"),
                f(tv, "/predicted_best_pool"),
            );
            for (col, x) in cols.iter_mut().zip([
                f(chosen, "/heldout_cc"),
                mei,
                f(tv, "/challenger/sem"),
                pm,
                pool,
                f(tv, "/best_pool/sem"),
                pp,
                f(tv, "/welch/t"),
                f(tv, "/welch/p_value"),
                f(tv, "/q"),
                mei - pool,
                pm - pp,
                ratio,
            ]) {
                col.push(x);
            }
            let find = |want: fn(Role) -> bool| {
                images
                    .iter()
                    .find(|(rr, s)| *rr == r && s.tag.target == Some(k as u32) && want(s.tag.role))
                    .map_or(String::new(), |(rr, s)| image_name(*rr, &s.id.0))
            };
            mei_image.push(find(|r| {
                r == Role::Mei {
                    contrast: Contrast::Low,
                }
            }));
            pool_image.push(find(|r| r == Role::BestPool));
        }
    }
    let rows = ints[0].len();
    let g = h5::group(analysis, TABLE, Some(("DynamicTable", HDMF)))?;
    let [round, target, plane, cell, n_mei, n_pool] = &ints;
    let [
        cc,
        mei,
        mei_se,
        mei_pred,
        pool,
        pool_se,
        pool_pred,
        t,
        p,
        q,
        gain,
        pred_gain,
        ratio,
    ] = &cols;
    h5::dynamic_table(
        &g,
        "the inception verdict per target (MEI at low contrast against the best pool stimulus \
         by measured response): measured means with their standard errors (sample SD / \
         sqrt(n)), the twin's predictions logged before showing, Welch's t test and its \
         Benjamini-Hochberg q across the round's targets (summary.json's inception verdict)",
        rows,
        &[
            ("round", "design-verify round", Column::I64(round)),
            (
                "target",
                "index in the round's pre-registration",
                Column::I64(target),
            ),
            (
                "plane",
                "imaging plane of the target cell",
                Column::I64(plane),
            ),
            (
                "cell",
                "the target cell's index in its plane (its ROI)",
                Column::I64(cell),
            ),
            (
                "heldout_cc",
                "held-out CC_norm that chose it",
                Column::F64(cc),
            ),
            (
                "mei_measured_mean",
                "measured mean response to its MEI",
                Column::F64(mei),
            ),
            (
                "mei_measured_se",
                "standard error of that mean",
                Column::F64(mei_se),
            ),
            ("mei_n", "presentations measured", Column::I64(n_mei)),
            (
                "mei_predicted",
                "the twin's predicted response",
                Column::F64(mei_pred),
            ),
            (
                "best_pool_measured_mean",
                "measured mean response to the best pool stimulus",
                Column::F64(pool),
            ),
            (
                "best_pool_measured_se",
                "standard error of that mean",
                Column::F64(pool_se),
            ),
            ("best_pool_n", "presentations measured", Column::I64(n_pool)),
            (
                "best_pool_predicted",
                "the twin's predicted response",
                Column::F64(pool_pred),
            ),
            (
                "welch_t",
                "Welch's t of MEI minus best pool (NaN: untested)",
                Column::F64(t),
            ),
            (
                "p_value",
                "its p value, as the verdict computed it",
                Column::F64(p),
            ),
            ("q_value", "Benjamini-Hochberg q", Column::F64(q)),
            (
                "measured_gain",
                "measured mean MEI minus best pool",
                Column::F64(gain),
            ),
            (
                "predicted_gain",
                "predicted MEI minus best pool",
                Column::F64(pred_gain),
            ),
            (
                "round_gain_ratio",
                "the round's sum of measured over sum of predicted gains",
                Column::F64(ratio),
            ),
            (
                "mei_image",
                "its MEI's GrayscaleImage in /stimulus/templates/inception_images",
                Column::Text(&mei_image),
            ),
            (
                "best_pool_image",
                "its best pool stimulus's image there",
                Column::Text(&pool_image),
            ),
        ],
        &[],
    )
}
