//! `.npy` files as `np.save` writes them: format 1.0, a header dict padded to 64 bytes, then
//! the raw little-endian data, or for object arrays the pickle of the whole array (what
//! `np.load(..., allow_pickle=True)` reads back).

use super::pickle::dumps;
use super::value::{ArrayData, NdArray, PyValue};

/// The bytes of `a` saved as a `.npy` file.
pub fn npy_bytes(a: &NdArray) -> Vec<u8> {
    let (type_str, order) = a.data.dtype();
    // np.save writes object arrays with descr '|O' (not '|O8').
    let descr = match a.data {
        ArrayData::Object(_) => "|O".to_string(),
        _ => format!("{order}{type_str}"),
    };
    let shape = match a.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", a.shape[0]),
        _ => format!(
            "({})",
            a.shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + a.data.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match &a.data {
        ArrayData::Object(_) => out.extend_from_slice(&dumps(&PyValue::Array(a.clone()))),
        other => out.extend_from_slice(&other.raw_bytes()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_and_names_the_dtype() {
        let a = NdArray::matrix(2, 3, ArrayData::F32(vec![0.0; 6]));
        let b = npy_bytes(&a);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let h = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(h.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(h.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
    }
}
