//! `.npy` output: float32, C order, the layout numpy, suite2p and our offline tools exchange.

use npyz::WriterBuilder;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Write `data` (row-major, `shape.iter().product()` values) as a float32 `.npy`.
pub fn write_f32(
    path: &Path,
    shape: &[u64],
    data: impl Iterator<Item = f32>,
) -> std::io::Result<()> {
    let file = BufWriter::new(File::create(path)?);
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(file)
        .begin_nd()?;
    w.extend(data)?;
    w.finish()
}
