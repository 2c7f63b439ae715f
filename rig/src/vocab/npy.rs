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

/// Read a float32 `.npy` (C order): its shape and values.
pub fn read_f32(path: &Path) -> std::io::Result<(Vec<u64>, Vec<f32>)> {
    let npy = npyz::NpyFile::new(std::io::BufReader::new(File::open(path)?))?;
    let shape = npy.shape().to_vec();
    if npy.order() != npyz::Order::C {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "Fortran-ordered array; expected C order",
        ));
    }
    let data = npy.into_vec::<f32>()?;
    Ok((shape, data))
}
