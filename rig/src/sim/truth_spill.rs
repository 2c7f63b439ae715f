//! Per-frame truth rows (one value per cell per imaging frame), kept in memory or spilled to a
//! file as they are made.
//!
//! A simulated session's truth grows by cells × 4 bytes per frame per array (spikes, rates,
//! calcium: 21 MiB a minute for 1,000 cells at 30 Hz). Kept in memory, an hours-long session
//! holds gigabytes it only needs at the end; spilled, it holds a write buffer, and the rows
//! already written survive a kill. The files on disk stay what [`super::truth`] documents:
//! [`FrameRows::write_npy_transposed`] turns the frame-major rows into `[cells, frames]` `.npy`
//! a block of cells at a time, within a fixed memory budget.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes of cell columns the transposition holds at once.
const TRANSPOSE_BUDGET_BYTES: usize = 64 << 20;

/// Frame-major rows of `cols` f32 values.
pub(crate) struct FrameRows {
    cols: usize,
    rows: usize,
    memory: Vec<f32>,
    spill: Option<Spill>,
}

struct Spill {
    path: PathBuf,
    out: BufWriter<File>,
    /// The first write error: rows after it are dropped, and [`FrameRows::write_npy_transposed`]
    /// reports it (the simulator never stops a session over its own truth file).
    error: Option<std::io::Error>,
}

impl FrameRows {
    pub(crate) fn new(cols: usize, frames_hint: usize) -> FrameRows {
        FrameRows {
            cols,
            rows: 0,
            memory: Vec::with_capacity(frames_hint * cols),
            spill: None,
        }
    }

    /// From now on rows go to `path` (created; the rows kept so far are written first) and
    /// memory holds none.
    pub(crate) fn spill_to(&mut self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = BufWriter::new(File::create(path)?);
        for v in &self.memory {
            out.write_all(&v.to_le_bytes())?;
        }
        self.memory = Vec::new();
        self.spill = Some(Spill {
            path: path.to_path_buf(),
            out,
            error: None,
        });
        Ok(())
    }

    /// Appends one row; `row` yields exactly `cols` values.
    pub(crate) fn push(&mut self, row: impl Iterator<Item = f32>) {
        match &mut self.spill {
            None => self.memory.extend(row),
            Some(s) if s.error.is_none() => {
                for v in row {
                    if let Err(e) = s.out.write_all(&v.to_le_bytes()) {
                        s.error = Some(e);
                        break;
                    }
                }
            }
            Some(_) => {}
        }
        self.rows += 1;
    }

    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The rows kept in memory (empty once spilled), for tests.
    #[cfg(test)]
    pub(crate) fn in_memory(&self) -> &[f32] {
        &self.memory
    }

    /// Writes the rows as a `[cols, rows]` float32 `.npy` at `path`; a spilled file is read
    /// back a block of columns at a time and removed afterwards.
    pub(crate) fn write_npy_transposed(&mut self, path: &Path) -> std::io::Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        let shape = [cols as u64, rows as u64];
        let Some(spill) = &mut self.spill else {
            let v = &self.memory;
            let data = (0..cols).flat_map(move |c| (0..rows).map(move |r| v[r * cols + c]));
            return crate::vocab::npy::write_f32(path, &shape, data);
        };
        if let Some(e) = spill.error.take() {
            return Err(std::io::Error::new(
                e.kind(),
                format!("{}: truth rows were not written: {e}", spill.path.display()),
            ));
        }
        spill.out.flush()?;
        let block = (TRANSPOSE_BUDGET_BYTES / (4 * rows.max(1))).clamp(1, cols.max(1));
        let source = spill.path.clone();
        let mut failed: Option<std::io::Error> = None;
        let data = (0..cols).step_by(block).flat_map(|c0| {
            let c1 = (c0 + block).min(cols);
            match read_columns(&source, cols, rows, c0..c1) {
                Ok(v) => v,
                Err(e) => {
                    failed.get_or_insert(e);
                    vec![f32::NAN; (c1 - c0) * rows]
                }
            }
        });
        crate::vocab::npy::write_f32(path, &shape, data)?;
        if let Some(e) = failed {
            return Err(e);
        }
        std::fs::remove_file(&source)
    }
}

/// Columns `range` of a frame-major file of `rows` × `cols` f32, column-major
/// (`[range.len(), rows]`), in one sequential pass.
fn read_columns(
    path: &Path,
    cols: usize,
    rows: usize,
    range: std::ops::Range<usize>,
) -> std::io::Result<Vec<f32>> {
    let width = range.len();
    let mut out = vec![0.0f32; width * rows];
    let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut row = vec![0u8; cols * 4];
    for r in 0..rows {
        input.read_exact(&mut row).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{}: row {r} of {rows}: {e}", path.display()),
            )
        })?;
        for (k, c) in range.clone().enumerate() {
            let b = &row[c * 4..c * 4 + 4];
            out[k * rows + r] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(cols: usize, rows: usize, spill_after: Option<usize>, dir: &Path) -> FrameRows {
        let mut m = FrameRows::new(cols, 4);
        for r in 0..rows {
            if spill_after == Some(r) {
                m.spill_to(&dir.join("spill/rows.f32")).unwrap();
            }
            m.push((0..cols).map(|c| (r * 1000 + c) as f32));
        }
        m
    }

    /// Spilled before, during or never: the same `.npy`, bit for bit, and memory holds no row
    /// once spilled.
    #[test]
    fn spilled_rows_write_the_same_file_as_kept_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (cols, rows) = (7, 53);
        let mut kept = filled(cols, rows, None, dir.path());
        kept.write_npy_transposed(&dir.path().join("kept.npy"))
            .unwrap();
        let want = std::fs::read(dir.path().join("kept.npy")).unwrap();
        let (shape, v) = crate::vocab::npy::read_f32(&dir.path().join("kept.npy")).unwrap();
        assert_eq!(shape, [cols as u64, rows as u64]);
        assert_eq!(v[3 * rows + 5], 5003.0, "cell 3, frame 5");
        for at in [0, 20] {
            let mut m = filled(cols, rows, Some(at), dir.path());
            assert!(m.in_memory().is_empty());
            assert_eq!(m.rows(), rows);
            let out = dir.path().join(format!("spilled{at}.npy"));
            m.write_npy_transposed(&out).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), want, "spilled after {at}");
            assert!(!dir.path().join("spill/rows.f32").exists(), "removed");
        }
    }

    /// More columns than one block holds: the passes still stitch into one array.
    #[test]
    fn a_transposition_in_several_blocks_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let (cols, rows) = (5, 11);
        let mut m = filled(cols, rows, Some(0), dir.path());
        m.spill.as_mut().unwrap().out.flush().unwrap();
        let path = m.spill.as_ref().unwrap().path.clone();
        let mut stitched = Vec::new();
        for c0 in (0..cols).step_by(2) {
            stitched.extend(read_columns(&path, cols, rows, c0..(c0 + 2).min(cols)).unwrap());
        }
        let want: Vec<f32> = (0..cols)
            .flat_map(|c| (0..rows).map(move |r| (r * 1000 + c) as f32))
            .collect();
        assert_eq!(stitched, want);
    }

    /// A spill file cut short (a full disk, a kill) is reported naming the file and the row.
    #[test]
    fn a_truncated_spill_is_reported_not_padded() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = filled(3, 10, Some(0), dir.path());
        m.spill.as_mut().unwrap().out.flush().unwrap();
        let path = m.spill.as_ref().unwrap().path.clone();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(3 * 4 * 6 + 2).unwrap();
        let e = m
            .write_npy_transposed(&dir.path().join("out.npy"))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("rows.f32") && msg.contains("row 6 of 10"),
            "{msg}"
        );
    }
}
