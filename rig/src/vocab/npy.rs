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

/// The values a `.npy` header's `'shape'` claims, read from the header text before `npyz`
/// sees it: `npyz` multiplies the dimensions unchecked (a wrap, or a panic in debug builds),
/// so a hostile header such as `(2**40, 2**40)` must be caught first. `None` when there is no
/// readable shape (left to `npyz` to refuse) or when the product overflows `u64`.
pub fn claimed_values(header: &[u8]) -> Option<u64> {
    let text = &header[..header.len().min(1 << 16)];
    let key = text.windows(7).position(|w| w == b"'shape'")?;
    let open = key + text[key..].iter().position(|&b| b == b'(')?;
    let close = open + text[open..].iter().position(|&b| b == b')')?;
    let dims = std::str::from_utf8(&text[open + 1..close]).ok()?;
    dims.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .try_fold(1u64, |n, d| n.checked_mul(d.parse().ok()?))
}

/// Refuses a file whose header claims more values than it has bytes (each value is at least
/// one byte), naming the file; an overflowing claim is refused the same way.
pub fn check_claimed_size(path: &Path, bytes_in_file: u64, header: &[u8]) -> std::io::Result<()> {
    let has_shape = header.windows(7).any(|w| w == b"'shape'");
    match claimed_values(header) {
        Some(n) if n <= bytes_in_file => Ok(()),
        None if !has_shape => Ok(()),
        claimed => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: its header claims {} values but the file holds {bytes_in_file} bytes; the \
                 file is truncated or its header is damaged",
                path.display(),
                claimed.map_or("more than 2^64".into(), |n| n.to_string())
            ),
        )),
    }
}

/// Read a float32 `.npy` (C order): its shape and values.
pub fn read_f32(path: &Path) -> std::io::Result<(Vec<u64>, Vec<f32>)> {
    let bytes = std::fs::read(path)?;
    check_claimed_size(path, bytes.len() as u64, &bytes)?;
    let npy = npyz::NpyFile::new(&bytes[..])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claimed_size_is_read_with_overflow_checks() {
        let h = |shape: &str| format!("\u{93}NUMPY {{'descr': '<f4', 'shape': {shape}, }}");
        assert_eq!(claimed_values(h("(2, 100)").as_bytes()), Some(200));
        assert_eq!(claimed_values(h("(5,)").as_bytes()), Some(5));
        assert_eq!(claimed_values(h("()").as_bytes()), Some(1));
        let huge = h("(1099511627776, 1099511627776)");
        assert_eq!(claimed_values(huge.as_bytes()), None);
        let p = Path::new("x.npy");
        let e = check_claimed_size(p, 1000, huge.as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("x.npy") && e.to_string().contains("2^64"),
            "{e}"
        );
        assert!(check_claimed_size(p, 1000, h("(2, 1000)").as_bytes()).is_err());
        assert!(check_claimed_size(p, 1000, h("(2, 100)").as_bytes()).is_ok());
    }
}
