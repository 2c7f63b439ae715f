//! The embeddings and pairs tables as CSV (schema: `analysis/SCHEMA.md`). Plain comma-separated
//! values with a header, no quoting; `#` lines and blank lines are skipped. Every error names the
//! file, the line and the column.

use super::{Embedding, Pair};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const EMBEDDING_COLUMNS: [&str; 8] = [
    "cell_id",
    "core_id",
    "azimuth_deg",
    "elevation_deg",
    "cc_abs",
    "cc_max",
    "cell_type",
    "area",
];
const PAIR_COLUMNS: [&str; 5] = ["pre_id", "post_id", "l_d_um", "synapses", "projection"];

/// Reads both tables and checks them against each other: one core, every pair's cells known.
pub fn read_tables(embeddings: &Path, pairs: &Path) -> Result<(Vec<Embedding>, Vec<Pair>)> {
    let (emb, _) = read_embeddings(embeddings)?;
    let ids: HashSet<u64> = emb.iter().map(|e| e.cell_id).collect();
    let (pairs_rows, lines) = read_pairs(pairs)?;
    for (p, line) in pairs_rows.iter().zip(lines) {
        for (role, cell) in [("pre", p.pre_id), ("post", p.post_id)] {
            if !ids.contains(&cell) {
                return Err(Error::UnknownCell {
                    file: pairs.to_path_buf(),
                    line,
                    role,
                    cell,
                });
            }
        }
    }
    Ok((emb, pairs_rows))
}

/// Reads an embeddings table; also returns each row's line number.
pub fn read_embeddings(path: &Path) -> Result<(Vec<Embedding>, Vec<usize>)> {
    let csv = Csv::read(path)?;
    let cols: Vec<usize> = EMBEDDING_COLUMNS
        .iter()
        .map(|c| csv.column(c))
        .collect::<Result<_>>()?;
    // Feature columns f0, f1, ... in order, none missing.
    let n_features = csv
        .header
        .iter()
        .filter(|h| feature_index(h).is_some())
        .count();
    if n_features == 0 {
        return Err(csv.missing("f0"));
    }
    let feature_cols: Vec<usize> = (0..n_features)
        .map(|k| csv.column(&format!("f{k}")))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(csv.rows.len());
    let mut seen = HashSet::new();
    let mut core: Option<(String, usize)> = None;
    for (line, fields) in &csv.rows {
        let line = *line;
        let e = Embedding {
            cell_id: csv.parse(line, fields, cols[0], "cell_id")?,
            core_id: fields[cols[1]].to_string(),
            azimuth_deg: csv.finite(line, fields, cols[2], "azimuth_deg")?,
            elevation_deg: csv.finite(line, fields, cols[3], "elevation_deg")?,
            cc_abs: csv.finite(line, fields, cols[4], "cc_abs")?,
            cc_max: csv.finite(line, fields, cols[5], "cc_max")?,
            cell_type: fields[cols[6]].to_string(),
            area: fields[cols[7]].to_string(),
            features: feature_cols
                .iter()
                .enumerate()
                .map(|(k, &c)| csv.finite(line, fields, c, &format!("f{k}")))
                .collect::<Result<_>>()?,
        };
        match &core {
            None => core = Some((e.core_id.clone(), line)),
            Some((c, _)) if *c != e.core_id => {
                return Err(Error::MixedCores {
                    file: csv.file.clone(),
                    first: c.clone(),
                    second: e.core_id,
                    line,
                });
            }
            _ => {}
        }
        if !seen.insert(e.cell_id) {
            return Err(csv.error(
                line,
                "cell_id",
                format!("cell id {} appears twice", e.cell_id),
            ));
        }
        out.push(e);
    }
    if out.is_empty() {
        return Err(csv.error(1, "cell_id", "the table has no rows".into()));
    }
    Ok((out, csv.rows.iter().map(|r| r.0).collect()))
}

/// Reads a pairs table; also returns each row's line number.
pub fn read_pairs(path: &Path) -> Result<(Vec<Pair>, Vec<usize>)> {
    let csv = Csv::read(path)?;
    let cols: Vec<usize> = PAIR_COLUMNS
        .iter()
        .map(|c| csv.column(c))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(csv.rows.len());
    for (line, fields) in &csv.rows {
        let l_d_um = csv.finite(*line, fields, cols[2], "l_d_um")?;
        if l_d_um <= 0.0 {
            return Err(csv.error(
                *line,
                "l_d_um",
                format!("{l_d_um} µm: proximity pairs have a positive length"),
            ));
        }
        out.push(Pair {
            pre_id: csv.parse(*line, fields, cols[0], "pre_id")?,
            post_id: csv.parse(*line, fields, cols[1], "post_id")?,
            l_d_um,
            synapses: csv.parse(*line, fields, cols[3], "synapses")?,
            projection: fields[cols[4]].to_string(),
        });
    }
    Ok((out, csv.rows.iter().map(|r| r.0).collect()))
}

/// Writes an embeddings table (feature columns f0..f{D-1} after the fixed ones).
pub fn write_embeddings(path: &Path, rows: &[Embedding]) -> Result<()> {
    let d = rows.first().map_or(0, |e| e.features.len());
    let mut s = EMBEDDING_COLUMNS.join(",");
    for k in 0..d {
        let _ = write!(s, ",f{k}");
    }
    s.push('\n');
    for e in rows {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{}",
            e.cell_id,
            e.core_id,
            e.azimuth_deg,
            e.elevation_deg,
            e.cc_abs,
            e.cc_max,
            e.cell_type,
            e.area
        );
        for v in &e.features {
            let _ = write!(s, ",{v}");
        }
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|source| Error::Io {
        file: path.to_path_buf(),
        source,
    })
}

/// Writes a pairs table.
pub fn write_pairs(path: &Path, rows: &[Pair]) -> Result<()> {
    let mut s = PAIR_COLUMNS.join(",");
    s.push('\n');
    for p in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            p.pre_id, p.post_id, p.l_d_um, p.synapses, p.projection
        );
    }
    std::fs::write(path, s).map_err(|source| Error::Io {
        file: path.to_path_buf(),
        source,
    })
}

fn feature_index(h: &str) -> Option<usize> {
    h.strip_prefix('f')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
}

/// A parsed CSV: header and (line number, fields) rows.
struct Csv {
    file: PathBuf,
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Csv {
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let file = path.to_path_buf();
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((_, head)) = lines.next() else {
            return Err(Error::Table {
                file,
                line: 1,
                column: String::new(),
                reason: "empty file: no header".into(),
            });
        };
        let header: Vec<String> = head.split(',').map(|h| h.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (line, l) in lines {
            if l.contains('"') {
                return Err(Error::Table {
                    file,
                    line,
                    column: String::new(),
                    reason: "quoted fields are not supported".into(),
                });
            }
            let fields: Vec<String> = l.split(',').map(|f| f.trim().to_string()).collect();
            if fields.len() != header.len() {
                return Err(Error::Table {
                    file,
                    line,
                    column: String::new(),
                    reason: format!("{} fields, the header has {}", fields.len(), header.len()),
                });
            }
            rows.push((line, fields));
        }
        Ok(Self { file, header, rows })
    }

    fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| self.missing(name))
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingColumn {
            file: self.file.clone(),
            column: name.to_string(),
            header: self.header.join(","),
        }
    }

    fn error(&self, line: usize, column: &str, reason: String) -> Error {
        Error::Table {
            file: self.file.clone(),
            line,
            column: column.to_string(),
            reason,
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        line: usize,
        fields: &[String],
        col: usize,
        name: &str,
    ) -> Result<T> {
        fields[col].parse().map_err(|_| {
            self.error(
                line,
                name,
                format!(
                    "`{}` is not a valid {}",
                    fields[col],
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    fn finite(&self, line: usize, fields: &[String], col: usize, name: &str) -> Result<f64> {
        let v: f64 = self.parse(line, fields, col, name)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.error(line, name, format!("`{}` is not finite", fields[col])))
        }
    }
}
