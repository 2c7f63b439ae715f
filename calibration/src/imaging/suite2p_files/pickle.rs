//! A minimal pickle encoder (protocol 3, what `np.save` uses) for [`PyValue`]s.
//!
//! numpy arrays go through numpy's own reduce path, so `pickle.load` rebuilds them exactly as
//! it rebuilds arrays numpy pickled itself:
//! `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` then `__setstate__` with
//! `(1, shape, dtype, False, data)`, where the dtype is `numpy.dtype(type_str, False, True)`
//! with state `(3, byteorder, None, None, None, -1, -1, flags)` and `data` the raw bytes, or a
//! list of the elements for an object array. `numpy.core` is the name numpy 1.x pickles under;
//! numpy 2 still resolves it (it pickles under `numpy._core`, which 1.x cannot read).
//!
//! No memo is written (nothing is shared between values), so every opcode is one of: PROTO,
//! GLOBAL, MARK, TUPLE/TUPLE1-3/EMPTY_TUPLE, REDUCE, BUILD, BININT, LONG1, BINFLOAT,
//! SHORT_BINBYTES/BINBYTES, BINUNICODE, NONE, NEWTRUE/NEWFALSE, EMPTY_DICT, SETITEMS,
//! EMPTY_LIST, APPENDS, STOP.

use super::value::{ArrayData, NdArray, PyValue};

const PROTO: u8 = 0x80;
const GLOBAL: u8 = b'c';
const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const REDUCE: u8 = b'R';
const BUILD: u8 = b'b';
const BININT: u8 = b'J';
const LONG1: u8 = 0x8a;
const BINFLOAT: u8 = b'G';
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES: u8 = b'B';
const BINUNICODE: u8 = b'X';
const NONE: u8 = b'N';
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const EMPTY_DICT: u8 = b'}';
const SETITEMS: u8 = b'u';
const EMPTY_LIST: u8 = b']';
const APPENDS: u8 = b'e';
const STOP: u8 = b'.';

/// Items per MARK ... SETITEMS / APPENDS batch (as CPython's pickler batches).
const BATCH: usize = 1000;

/// The pickle of `v`, protocol 3.
pub fn dumps(v: &PyValue) -> Vec<u8> {
    let mut out = vec![PROTO, 3];
    value(&mut out, v);
    out.push(STOP);
    out
}

fn value(out: &mut Vec<u8>, v: &PyValue) {
    match v {
        PyValue::None => out.push(NONE),
        PyValue::Bool(b) => out.push(if *b { NEWTRUE } else { NEWFALSE }),
        PyValue::Int(i) => int(out, *i),
        PyValue::Float(f) => {
            out.push(BINFLOAT);
            out.extend_from_slice(&f.to_be_bytes());
        }
        PyValue::Str(s) => string(out, s),
        PyValue::List(items) => {
            out.push(EMPTY_LIST);
            for chunk in items.chunks(BATCH) {
                out.push(MARK);
                chunk.iter().for_each(|x| value(out, x));
                out.push(APPENDS);
            }
        }
        PyValue::Dict(items) => {
            out.push(EMPTY_DICT);
            for chunk in items.chunks(BATCH) {
                out.push(MARK);
                for (k, x) in chunk {
                    string(out, k);
                    value(out, x);
                }
                out.push(SETITEMS);
            }
        }
        PyValue::Array(a) => array(out, a),
    }
}

fn int(out: &mut Vec<u8>, i: i64) {
    if let Ok(small) = i32::try_from(i) {
        out.push(BININT);
        out.extend_from_slice(&small.to_le_bytes());
    } else {
        // Two's complement, little-endian, in the fewest bytes that keep the sign (as CPython).
        let b = i.to_le_bytes();
        let mut n = 8;
        while n > 1
            && ((b[n - 1] == 0 && b[n - 2] & 0x80 == 0)
                || (b[n - 1] == 0xff && b[n - 2] & 0x80 != 0))
        {
            n -= 1;
        }
        out.push(LONG1);
        out.push(n as u8);
        out.extend_from_slice(&b[..n]);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.push(BINUNICODE);
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() < 256 {
        out.push(SHORT_BINBYTES);
        out.push(b.len() as u8);
    } else {
        out.push(BINBYTES);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(b);
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(GLOBAL);
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn tuple_of_ints(out: &mut Vec<u8>, v: &[usize]) {
    match v.len() {
        0 => out.push(EMPTY_TUPLE),
        n => {
            if n > 3 {
                out.push(MARK);
            }
            v.iter().for_each(|&x| int(out, x as i64));
            out.push(match n {
                1 => TUPLE1,
                2 => TUPLE2,
                3 => TUPLE3,
                _ => TUPLE,
            });
        }
    }
}

/// `numpy.dtype(type_str, False, True)` with its state.
pub(crate) fn dtype(out: &mut Vec<u8>, data: &ArrayData) {
    let (type_str, order) = data.dtype();
    global(out, "numpy", "dtype");
    string(out, type_str);
    out.push(NEWFALSE);
    out.push(NEWTRUE);
    out.push(TUPLE3);
    out.push(REDUCE);
    // (3, byteorder, subarray, names, fields, elsize, alignment, flags): flags 63 for objects.
    out.push(MARK);
    int(out, 3);
    string(out, &order.to_string());
    out.extend_from_slice(&[NONE, NONE, NONE]);
    int(out, -1);
    int(out, -1);
    int(
        out,
        if matches!(data, ArrayData::Object(_)) {
            63
        } else {
            0
        },
    );
    out.push(TUPLE);
    out.push(BUILD);
}

fn array(out: &mut Vec<u8>, a: &NdArray) {
    global(out, "numpy.core.multiarray", "_reconstruct");
    global(out, "numpy", "ndarray");
    tuple_of_ints(out, &[0]);
    bytes(out, b"b");
    out.push(TUPLE3);
    out.push(REDUCE);
    // State: (1, shape, dtype, is_fortran, data).
    out.push(MARK);
    int(out, 1);
    tuple_of_ints(out, &a.shape);
    dtype(out, &a.data);
    out.push(NEWFALSE);
    match &a.data {
        ArrayData::Object(items) => value(out, &PyValue::List(items.clone())),
        other => bytes(out, &other.raw_bytes()),
    }
    out.push(TUPLE);
    out.push(BUILD);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-exact against CPython 3's `pickle.dumps(x, protocol=3)` for values whose encoding
    /// CPython and this encoder share (no memo involved).
    #[test]
    fn scalars_match_cpython_bytes() {
        // pickle.dumps(x, 3) for None, True, -2, 2**40, -2**40, 1.5, 'ab'
        assert_eq!(dumps(&PyValue::None), b"\x80\x03N.");
        assert_eq!(dumps(&PyValue::Bool(true)), b"\x80\x03\x88.");
        assert_eq!(dumps(&PyValue::Int(-2)), b"\x80\x03J\xfe\xff\xff\xff.");
        assert_eq!(
            dumps(&PyValue::Int(1 << 40)),
            b"\x80\x03\x8a\x06\x00\x00\x00\x00\x00\x01."
        );
        assert_eq!(
            dumps(&PyValue::Int(-(1 << 40))),
            b"\x80\x03\x8a\x06\x00\x00\x00\x00\x00\xff."
        );
        assert_eq!(
            dumps(&PyValue::Float(1.5)),
            b"\x80\x03G?\xf8\x00\x00\x00\x00\x00\x00."
        );
        assert_eq!(dumps(&"ab".into()), b"\x80\x03X\x02\x00\x00\x00ab.");
    }
}
